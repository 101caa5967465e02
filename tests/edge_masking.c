/*
 * edge_masking.c - secret masking at its edges, through the real agent in
 * local mode: a secret split between two reads at every offset, bytes held
 * back because they could begin a secret (released at the end of output,
 * or when the next read shows they were not one), and credentials given
 * directly in the environment rather than through files.  What is checked
 * is what a user sees: the agent's stdout/stderr and the shipped log lines.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_common.h"

#define SECRET "tok-SECRET-1234567890"

/* The secret reaches the command through the task's env, so the command
 * line the agent logs never holds it; KERUTA_API_TOKEN registers it. */
#define TASK_WITH_SECRET "id: t-1\nenv:\n  T: " SECRET "\n"

static const char *const token_env[] = {"KERUTA_API_TOKEN=" SECRET, NULL};

static void expect_no_secret(kf *r, const kt_result *res)
{
	cr_expect(!kt_contains(res->out, "SECRET-12345"), "stdout shows the secret:\n%s", res->out);
	cr_expect(!kt_contains(res->err, "SECRET-12345"), "stderr shows the secret:\n%s", res->err);
	char *ev = kt_read_file(r->evpath, NULL);
	cr_assert(ev, "no events file");
	cr_expect(!kt_contains(ev, "SECRET-12345"), "a shipped line shows the secret:\n%s", ev);
	free(ev);
}

/* The command prints "L<k> " + the first k bytes of the secret, waits so
 * the agent reads them alone, then the rest and " E"; the same on stderr
 * with "M<k>".  Every k from 1 to len-1. */
Test(edge_masking, secret_split_at_every_offset)
{
	kf r;
	kf_init(&r, TASK_WITH_SECRET);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        k=1\n"
	                   "        while [ $k -lt ${#T} ]; do\n"
	                   "          p=`printf '%.*s' $k \"$T\"`\n"
	                   "          printf 'L%d %s' $k \"$p\"; sleep 0.03; printf '%s E\\n' \"${T#\"$p\"}\"\n"
	                   "          printf 'M%d %s' $k \"$p\" >&2; sleep 0.03; printf '%s E\\n' \"${T#\"$p\"}\" >&2\n"
	                   "          k=`expr $k + 1`\n"
	                   "        done\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, token_env, 90), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	size_t n = strlen(SECRET);
	rt_line *lo, *le;
	size_t no = rt_lines(&r, "stdout", &lo);
	size_t ne = rt_lines(&r, "stderr", &le);
	cr_expect_eq(no, n - 1, "%zu stdout lines shipped", no);
	cr_expect_eq(ne, n - 1, "%zu stderr lines shipped", ne);
	for (size_t k = 1; k < n; k++) {
		char want[32];
		snprintf(want, sizeof(want), "L%zu *** E", k);
		cr_expect(kt_contains(res.out, want), "split after %zu bytes: no '%s' on stdout:\n%s",
		          k, want, res.out);
		if (k - 1 < no)
			cr_expect_str_eq(lo[k - 1].text, want, "shipped stdout line %zu", k);
		snprintf(want, sizeof(want), "M%zu *** E", k);
		cr_expect(kt_contains(res.err, want), "split after %zu bytes: no '%s' on stderr:\n%s",
		          k, want, res.err);
		if (k - 1 < ne)
			cr_expect_str_eq(le[k - 1].text, want, "shipped stderr line %zu", k);
	}
	expect_no_secret(&r, &res);
	rt_lines_free(lo, no);
	rt_lines_free(le, ne);
	kt_result_free(&res);
	kf_free(&r);
}

/* Output that ends with what could be the start of a secret: the bytes
 * held back for the next read are the command's last words and must
 * still be written and shipped, once. */
Test(edge_masking, held_back_bytes_at_end_of_output_are_written)
{
	kf r;
	/* the texts come from the env: the agent logs the command line */
	kf_init(&r, TASK_WITH_SECRET "  A: tail tok-SECRET-123\n  B: err tok-\n");
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        printf '%s' \"$B\" >&2\n"
	                   "        printf '%s' \"$A\"\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, token_env, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect_eq(kt_count(res.out, "tail tok-SECRET-123"), 1, "stdout:\n%s", res.out);
	cr_expect_eq(kt_count(res.err, "err tok-"), 1, "stderr:\n%s", res.err);
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_expect_eq(n, 1, "%zu stdout lines shipped", n);
	if (n)
		cr_expect_str_eq(l[0].text, "tail tok-SECRET-123");
	rt_lines_free(l, n);
	n = rt_lines(&r, "stderr", &l);
	cr_expect_eq(n, 1, "%zu stderr lines shipped", n);
	if (n)
		cr_expect_str_eq(l[0].text, "err tok-");
	rt_lines_free(l, n);
	kt_result_free(&res);
	kf_free(&r);
}

/* Held-back bytes that turn out not to be the secret are written as they
 * were; a secret that starts inside bytes held back for an earlier false
 * start is still masked. */
Test(edge_masking, false_starts_pass_unchanged_and_overlaps_are_masked)
{
	kf r;
	kf_init(&r, TASK_WITH_SECRET);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        printf 'X tok-SECRET-12'; sleep 0.2; printf '3X Y\\n'\n"
	                   "        printf 'O tok-'; sleep 0.2; printf '%s Z\\n' \"$T\"\n"
	                   "        printf 'P tok-SECRET-'; sleep 0.2; printf 'tok-SECRET-'; sleep 0.2\n"
	                   "        printf '1234567890 Q\\n'\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, token_env, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "X tok-SECRET-123X Y\n"), "%s", res.out);
	cr_expect(kt_contains(res.out, "O tok-*** Z\n"), "%s", res.out);
	cr_expect(kt_contains(res.out, "P tok-SECRET-*** Q\n"), "%s", res.out);
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_assert_eq(n, 3, "%zu stdout lines shipped", n);
	cr_expect_str_eq(l[0].text, "X tok-SECRET-123X Y");
	cr_expect_str_eq(l[1].text, "O tok-*** Z");
	cr_expect_str_eq(l[2].text, "P tok-SECRET-*** Q");
	rt_lines_free(l, n);
	expect_no_secret(&r, &res);
	kt_result_free(&res);
	kf_free(&r);
}

/* git credentials given as the value of KERUTA_GIT_TOKEN or
 * KERUTA_GIT_PASSWORD (no file): the clone stage fails (nothing listens),
 * and a later stage that prints the same value shows the mask. */
static void credential_in_env(const char *var)
{
	kf r;
	kf_init(&r, "id: t-1\nrepository:\n  url: http://127.0.0.1:1/repo.git\n"
	            "env:\n  G: git-cred-0123456789\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [clone, show]\nstages:\n"
	               "  clone:\n    plugin: clone\n"
	               "  show:\n    plugin: execute\n    when: always\n    with:\n"
	               "      command: printf 'got %s.\\n' \"$G\"; printf 'err %s.\\n' \"$G\" >&2\n");
	char *cred;
	cr_assert(asprintf(&cred, "%s=git-cred-0123456789", var) > 0);
	const char *env[] = {cred, "KERUTA_GIT_USERNAME=alice", NULL};
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, env, 60), 0);
	cr_expect_neq(res.status, 0, "the clone cannot succeed: %s", res.err);
	cr_expect(kt_contains(res.out, "got ***.\n"), "%s: stdout:\n%s", var, res.out);
	cr_expect(kt_contains(res.err, "err ***.\n"), "%s: stderr:\n%s", var, res.err);
	cr_expect(!kt_contains(res.out, "0123456789") && !kt_contains(res.err, "0123456789"),
	          "%s shown:\n%s\n%s", var, res.out, res.err);
	char *ev = kt_read_file(r.evpath, NULL);
	cr_assert(ev);
	cr_expect(!kt_contains(ev, "0123456789"), "%s shipped:\n%s", var, ev);
	cr_expect(kt_contains(ev, "got ***."), "%s", ev);
	free(ev);
	free(cred);
	kt_result_free(&res);
	kf_free(&r);
}

Test(edge_masking, git_token_given_in_the_environment_is_masked)
{
	credential_in_env("KERUTA_GIT_TOKEN");
}

Test(edge_masking, git_password_given_in_the_environment_is_masked)
{
	credential_in_env("KERUTA_GIT_PASSWORD");
}
