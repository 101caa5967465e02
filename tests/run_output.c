/*
 * run_output.c - what happens to a command's output: passed through to the
 * agent's stdout/stderr and shipped as log events, per stream in order,
 * secrets masked even when split across reads, binary and very long
 * lines survive, and the shipped total keeps head and tail.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_common.h"

/* Each "<prefix>1".."<prefix>n" appears in text, in that order. */
static int in_order(const char *text, const char *prefix, int n)
{
	const char *p = text;
	for (int i = 1; i <= n; i++) {
		char want[64];
		snprintf(want, sizeof(want), "%s%d\n", prefix, i);
		const char *hit = strstr(p, want);
		if (!hit || (hit != text && hit[-1] != '\n' && hit[-1] != ' '))
			return 0;
		p = hit + strlen(want);
	}
	return 1;
}

Test(run_output, streams_pass_through_and_ship_in_order)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        i=1\n"
	                   "        while [ $i -le 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(in_order(res.out, "out", 300), "stdout: %s", res.out);
	cr_expect(in_order(res.err, "err", 300), "stderr: %s", res.err);
	cr_expect(!kt_contains(res.out, "err1\n"));

	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_assert_eq(n, 300);
	for (size_t i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "out%zu", i + 1);
		cr_assert_str_eq(l[i].text, want);
	}
	rt_lines_free(l, n);
	n = rt_lines(&r, "stderr", &l);
	cr_assert_eq(n, 300);
	for (size_t i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "err%zu", i + 1);
		cr_assert_str_eq(l[i].text, want);
	}
	rt_lines_free(l, n);
	kt_result_free(&res);
	kf_free(&r);
}

#define BIG_LINES 100000 /* of 1,000 bytes: 100 MB */

typedef struct seq_check {
	long next;
	long bad;
} seq_check;

static int check_line(const char *s, size_t len, long want)
{
	char head[32];
	snprintf(head, sizeof(head), "%08ld ", want);
	if (len != 999 || memcmp(s, head, 9) != 0)
		return 0;
	for (size_t i = 9; i < len; i++)
		if (s[i] != 'x')
			return 0;
	return 1;
}

static void seq_fn(void *ctx, const rt_line *l)
{
	seq_check *c = ctx;
	if (strcmp(l->stream, "stdout") != 0)
		return;
	if (!check_line(l->text, l->len, c->next + 1))
		c->bad++;
	c->next++;
}

Test(run_output, hundred_megabytes_pass_through_in_order, .timeout = 300)
{
	kf r;
	kf_init(&r, NULL);
	char *with;
	cr_assert(asprintf(&with,
	                   "      command: |\n"
	                   "        awk 'BEGIN { s = \"\"; for (i = 0; i < 990; i++) s = s \"x\";"
	                   " for (i = 1; i <= %d; i++) printf \"%%08d %%s\\n\", i, s }'\n",
	                   BIG_LINES) > 0);
	rt_simple_pipeline(&r, with, "settings:\n  log_max_total: 200MB\n");
	/* the agent's stdout goes to a file, as a pod log would */
	char *out = kt_path(r.dir, "stdout.txt");
	char *cmd;
	cr_assert(asprintf(&cmd,
	                   "exec \"$0\" execute --task-file %s --pipeline %s --work-dir %s "
	                   "--termination-log %s > %s",
	                   r.task, r.pipeline, r.work, r.term, out) > 0);
	const char *argv[] = {"/bin/sh", "-c", cmd, kt_agent(), NULL};
	char plug[4096];
	snprintf(plug, sizeof(plug), "KERUTA_PLUGIN_PATH=%s/stages/.libs", kt_builddir());
	const char *env[] = {plug, "KERUTA_API_TOKEN", NULL};
	kt_result res;
	cr_assert_eq(kt_run(&res, argv, env, r.work, NULL, 280), 0);
	cr_assert(!res.timed_out);
	cr_expect_eq(res.status, 0, "%s", res.err);

	FILE *f = fopen(out, "r");
	cr_assert(f);
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	long n = 0, bad = 0;
	while ((got = getline(&line, &cap, f)) > 0) {
		if (n == BIG_LINES)
			break; /* the local backend's summary follows */
		if (got != 1000 || !check_line(line, 999, n + 1))
			bad++;
		n++;
	}
	free(line);
	fclose(f);
	cr_expect_eq(n, BIG_LINES);
	cr_expect_eq(bad, 0, "%ld lines out of order or damaged in the pass-through", bad);

	seq_check c = {0, 0};
	rt_events_each(&r, seq_fn, &c);
	cr_expect_eq(c.next, BIG_LINES, "%ld lines shipped", c.next);
	cr_expect_eq(c.bad, 0, "%ld shipped lines out of order or damaged", c.bad);
	free(cmd), free(out), free(with);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_output, secrets_split_across_reads_are_masked)
{
	kf r;
	/* the halves come from the task's env so that the command line the
	 * agent logs does not show them */
	kf_init(&r, "id: t-1\nenv:\n  T1: tok-SECRET-12\n  T2: \"34567890\"\n"
	            "  S1: another-sec\n  S2: ret-value\n");
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        printf 'A %s' \"$T1\"; sleep 0.3; printf '%s B\\n' \"$T2\"\n"
	                   "        printf 'C %s' \"$S1\" >&2; sleep 0.3; printf '%s D\\n' \"$S2\" >&2\n"
	                   "        printf 'E %s%s' \"$T1\" \"$T2\"\n",
	                   "settings:\n  secrets: [MY_SECRET]\n");
	const char *env[] = {"KERUTA_API_TOKEN=tok-SECRET-1234567890",
	                     "MY_SECRET=another-secret-value", NULL};
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, env, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "A *** B\n"), "%s", res.out);
	cr_expect(kt_contains(res.out, "E ***"), "%s", res.out);
	cr_expect(kt_contains(res.err, "C *** D\n"), "%s", res.err);
	cr_expect(!kt_contains(res.out, "SECRET") && !kt_contains(res.out, "34567890"), "%s",
	          res.out);
	cr_expect(!kt_contains(res.err, "another-sec") && !kt_contains(res.err, "ret-value"), "%s",
	          res.err);
	char *ev = kt_read_file(r.evpath, NULL);
	cr_assert(ev);
	cr_expect(!kt_contains(ev, "SECRET") && !kt_contains(ev, "34567890"), "%s", ev);
	cr_expect(!kt_contains(ev, "another-sec") && !kt_contains(ev, "ret-value"), "%s", ev);
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_assert_eq(n, 2);
	cr_expect_str_eq(l[0].text, "A *** B");
	cr_expect_str_eq(l[1].text, "E ***");
	rt_lines_free(l, n);
	n = rt_lines(&r, "stderr", &l);
	cr_assert_eq(n, 1);
	cr_expect_str_eq(l[0].text, "C *** D");
	rt_lines_free(l, n);
	free(ev);
	kt_result_free(&res);
	kf_free(&r);
}

/* A read ending just after a whole secret whose last byte equals its
 * first (one random token in 64) used to be cut inside the secret, and
 * both halves were written in clear. */
Test(run_output, secret_ending_like_it_begins_is_masked)
{
	kf r;
	kf_init(&r, NULL);
	char *child = kt_split_child(r.dir, "'token=eyJhbGciOie'", "'\\n'");
	char *with = NULL;
	cr_assert(asprintf(&with, "      argv: [python3, \"%s\"]\n", child) > 0);
	rt_simple_pipeline(&r, with, "settings:\n  secrets: [MY_SECRET]\n");
	free(with);
	free(child);
	const char *env[] = {"MY_SECRET=eyJhbGciOie", NULL};
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, env, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "token=***\n"), "%s", res.out);
	cr_expect(!kt_contains(res.out, "eyJ") && !kt_contains(res.out, "Oie"), "%s", res.out);
	cr_expect(!kt_contains(res.err, "eyJhbGciOie"), "%s", res.err);
	char *ev = kt_read_file(r.evpath, NULL);
	cr_assert(ev);
	cr_expect(!kt_contains(ev, "eyJ") && !kt_contains(ev, "Oie"), "%s", ev);
	free(ev);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_output, binary_output_passes_through_unchanged)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        head -c 300000 /dev/urandom > bin.dat\n"
	                   "        printf 'a\\000b\\377\\376\\n\\000' >> bin.dat\n"
	                   "        cat bin.dat; cat bin.dat >&2\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	size_t len;
	char *p = kt_path(r.work, "bin.dat");
	char *data = kt_read_file(p, &len);
	cr_assert(data && len == 300007);
	cr_expect(res.out_len >= len && memcmp(res.out, data, len) == 0,
	          "stdout differs from what the command wrote");
	cr_expect(memmem(res.err, res.err_len, data, len) != NULL,
	          "stderr does not hold what the command wrote");
	/* every event is one well-formed line */
	size_t elen;
	char *ev = kt_read_file(r.evpath, &elen);
	cr_assert(ev);
	cr_expect_eq(strlen(ev), elen, "NUL byte in the events file");
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_expect_gt(n, 100);
	rt_lines_free(l, n);
	free(ev), free(data), free(p);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_output, long_lines_are_split_with_a_marker)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        head -c 5000 /dev/zero | tr '\\000' x; echo\n"
	                   "        echo short\n"
	                   "        printf 'tail-without-newline'\n",
	                   "settings:\n  log_max_line: 1KiB\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	/* parts of at most 1 KiB, marks included: 995 bytes of text each but
	 * the last (25 bytes) */
	cr_assert_eq(n, 8, "%zu lines", n); /* 6 parts, short, tail */
	size_t xs = 0;
	for (size_t i = 0; i < 6; i++) {
		cr_expect_leq(l[i].len, 1024);
		if (i < 5)
			cr_expect(kt_contains(l[i].text, "[line continues]"), "%s", l[i].text);
		if (i > 0)
			cr_expect(strncmp(l[i].text, "[continued] ", 12) == 0, "%s", l[i].text);
		for (size_t k = 0; k < l[i].len; k++)
			xs += l[i].text[k] == 'x';
	}
	cr_expect_eq(xs, 5000);
	cr_expect_str_eq(l[6].text, "short");
	cr_expect_str_eq(l[7].text, "tail-without-newline");
	/* the pass-through is not split */
	cr_expect(res.out_len > 5000 && strspn(res.out, "x") == 5000);
	rt_lines_free(l, n);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_output, shipped_total_keeps_head_and_tail)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        echo first-err >&2\n"
	                   "        awk 'BEGIN { for (i = 1; i <= 20000; i++) printf \"line %d\\n\", i }'\n"
	                   "        echo last-err >&2\n",
	                   "settings:\n  log_max_total: 64KiB\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(in_order(res.out, "line ", 20000), "the pass-through lost lines");
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_assert_gt(n, 100);
	cr_expect_lt(n, 20000);
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += l[i].len;
	cr_expect_leq(bytes, 64 * 1024);
	cr_expect_str_eq(l[0].text, "line 1");
	cr_expect_str_eq(l[n - 1].text, "line 20000");
	/* head and tail are each contiguous */
	size_t gap = 0;
	for (size_t i = 1; i < n; i++) {
		int prev = atoi(l[i - 1].text + 5), cur = atoi(l[i].text + 5);
		cr_assert_gt(cur, prev);
		if (cur != prev + 1)
			gap++;
	}
	cr_expect_eq(gap, 1);
	rt_lines_free(l, n);
	n = rt_lines(&r, "agent", &l);
	int marker = 0;
	for (size_t i = 0; i < n; i++)
		marker |= kt_contains(l[i].text, "of output cut here");
	cr_expect(marker, "no line says what was cut");
	rt_lines_free(l, n);
	n = rt_lines(&r, "stderr", &l);
	cr_assert_eq(n, 2, "stderr lines: %zu", n);
	cr_expect_str_eq(l[0].text, "first-err");
	cr_expect_str_eq(l[1].text, "last-err");
	rt_lines_free(l, n);
	kt_result_free(&res);
	kf_free(&r);
}

/* The tail ring makes room by dropping its oldest chunks, a chunk's
 * header with it.  When the room still missing lies between a chunk's
 * length and that plus its header, the chunk must go whole: cutting more
 * bytes off its front than it holds broke the ring (a length wrapped
 * around, the tail came back as garbage or the agent crashed).  The
 * sizes make that happen: log_max_line 64 and log_max_total 8KiB give a
 * 2048-byte tail; 7 lines (420 bytes) reach it from the first write, then
 * 120 bytes, then 2024 bytes, each read alone (FIONREAD). */
static const char ring_child[] =
        "import fcntl, struct, sys, termios, time\n"
        "def drained(fd):\n"
        "    while struct.unpack('i', fcntl.ioctl(fd, termios.FIONREAD, b'0000'))[0]:\n"
        "        time.sleep(0.01)\n"
        "def lines(a, b): return b''.join((b'line %d ' % i).ljust(59, b'.') + b'\\n' for i in range(a, b))\n"
        "out = sys.stdout.buffer\n"
        "out.write(lines(1, 51)); out.flush(); drained(1)\n"
        "out.write(lines(51, 53)); out.flush(); drained(1)\n"
        "out.write(lines(53, 86) + b'the last line '.ljust(43, b'.') + b'\\n'); out.flush()\n";

/* s padded with dots to w bytes, as the child's lines are */
static const char *dotted(char *buf, const char *s, size_t w)
{
	size_t n = strlen(s);
	memcpy(buf, s, n);
	memset(buf + n, '.', w - n);
	buf[w] = '\0';
	return buf;
}

Test(run_output, tail_ring_drops_a_chunk_whole_when_short_by_less_than_its_header)
{
	kf r;
	kf_init(&r, NULL);
	char *script = kt_path(r.dir, "ring.py");
	kt_write_file(script, ring_child);
	char *with = NULL;
	cr_assert(asprintf(&with, "      command: python3 %s\n", script) > 0);
	rt_simple_pipeline(&r, with, "settings:\n  log_max_line: 64\n  log_max_total: 8KiB\n");
	free(with);
	free(script);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	char want[64];
	const char *first = strstr(res.out, dotted(want, "line 1 ", 59));
	const char *last = strstr(res.out, dotted(want, "the last line ", 43));
	cr_expect(first && last && last - first == 85 * 60, "the pass-through lost bytes");
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_assert_gt(n, 2);
	cr_expect_str_eq(l[0].text, dotted(want, "line 1 ", 59));
	cr_expect_str_eq(l[n - 1].text, dotted(want, "the last line ", 43));
	cr_expect_str_eq(l[n - 2].text, dotted(want, "line 85 ", 59));
	for (size_t i = 0; i < n; i++)
		cr_expect(strncmp(l[i].text, "line ", 5) == 0 || strncmp(l[i].text, "the last", 8) == 0,
		          "line %zu of the log is '%s'", i, l[i].text);
	rt_lines_free(l, n);
	kt_result_free(&res);
	kf_free(&r);
}

/* The error at the end of stderr survives a flood on stdout that arrives
 * after it in one read larger than the whole tail, and chunks come back
 * in the order they were read.  The child makes the order certain: it
 * writes each part only once the agent has read everything before it
 * (FIONREAD on its own end of the pipes). */
static const char flood_child[] =
        "import fcntl, struct, sys, termios, time\n"
        "def drained(fd):\n"
        "    while struct.unpack('i', fcntl.ioctl(fd, termios.FIONREAD, b'0000'))[0]:\n"
        "        time.sleep(0.01)\n"
        "out, err = sys.stdout.buffer, sys.stderr.buffer\n"
        "out.write(b''.join(b'head %d\\n' % i for i in range(1, 10001))); out.flush(); drained(1)\n"
        "err.write(b'fatal: the error\\n'); err.flush(); drained(2)\n"
        "out.write(b'flood\\n' * 60000 + b'after-flood\\n'); out.flush()\n";

Test(run_output, last_stderr_lines_survive_a_stdout_flood)
{
	kf r;
	kf_init(&r, NULL);
	char *script = kt_path(r.dir, "flood.py");
	kt_write_file(script, flood_child);
	char *with = NULL;
	cr_assert(asprintf(&with, "      command: python3 %s\n", script) > 0);
	rt_simple_pipeline(&r, with, "settings:\n  log_max_total: 64KiB\n");
	free(with);
	free(script);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	rt_line *l;
	size_t n = rt_lines(&r, "stderr", &l);
	cr_assert_eq(n, 1, "stderr lines: %zu", n);
	cr_expect_str_eq(l[0].text, "fatal: the error");
	rt_lines_free(l, n);
	/* the case at hand: the line was in the kept tail, not the head */
	char *events = kt_read_file(r.evpath, NULL);
	cr_assert_not_null(events);
	const char *cut = strstr(events, "of output cut here"), *fatal = strstr(events, "fatal: the error");
	cr_expect(cut && fatal && fatal > cut, "the stderr line was not in the tail:\n%.2000s", events);
	free(events);
	n = rt_lines(&r, "stdout", &l);
	cr_assert_gt(n, 2);
	cr_expect_str_eq(l[n - 1].text, "after-flood");
	cr_expect_str_eq(l[n - 2].text, "flood");
	rt_lines_free(l, n);
	kt_result_free(&res);
	kf_free(&r);
}
