/*
 * api_token.c - the API token never reaches task code, and scripts reach
 * keruta-api through the agent instead: `keruta-agent log`, `progress`
 * and `artifact` over KERUTA_AGENT_SOCKET.
 *
 * A hostile script looks for the token everywhere it could be: its
 * environment, the token file, the agent's /proc/PPID/environ, and writes
 * what it found into .keruta/doc, which collect uploads.  Neither the
 * uploads nor the shipped log may hold the token.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_util.h"

#define TOKEN "tok-5ecret-value-77"
#define GIT_TOKEN "git-5ecret-value-88"

static at_ctx C;
static char *token_file;

static void setup(void)
{
	const char *const args[] = {"--token", TOKEN, NULL};
	at_start(&C, args);
	/* the work dir must be reachable by the run_as user; the token's
	 * directory must not */
	cr_assert(chmod(C.dir, 0755) == 0);
	char *secret_dir = kt_path(C.dir, "secret");
	cr_assert(mkdir(secret_dir, 0700) == 0);
	token_file = kt_path(secret_dir, "token");
	kt_write_file(token_file, TOKEN "\n");
	cr_assert(chmod(token_file, 0600) == 0);
	free(secret_dir);
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nphases:\n  execute: [execute, collect]\n"
	                          "stages:\n  execute:\n    plugin: execute\n"
	                          "  collect:\n    plugin: collect\n") > 0);
	kt_write_file(C.pipeline, text);
	free(text);
}

static void teardown(void)
{
	at_stop(&C);
	free(token_file);
}

TestSuite(api_token, .init = setup, .fini = teardown, .timeout = 120);

/* The script: every place the token could be, into an artifact. */
static void seed_hunter(void)
{
	char *script = NULL;
	cr_assert(asprintf(&script,
	                   "#!/bin/sh\n"
	                   "mkdir -p .keruta/doc; out=.keruta/doc/found.txt\n"
	                   "env > .keruta/doc/env.txt\n"
	                   "env > $out\n"
	                   "cat '%s' >> $out 2>&1\n"
	                   "tr '\\000' '\\n' < /proc/$PPID/environ >> $out 2>&1\n"
	                   "echo \"token=$KERUTA_API_TOKEN git=$KERUTA_GIT_TOKEN\" >> $out\n"
	                   "echo \"printed: $(cat /proc/$PPID/environ 2>/dev/null | tr '\\000' ' ' | rev)\"\n"
	                   "K='%s'\n"
	                   "$K log WARN 'hello from the script'\n"
	                   "$K progress 40 halfway there\n"
	                   "echo 'report body' > /tmp/kt-report-$$.txt\n"
	                   "$K artifact /tmp/kt-report-$$.txt && rm -f /tmp/kt-report-$$.txt\n"
	                   "$K artifact '%s' && echo 'TOKEN FILE ACCEPTED'\n"
	                   "exit 0\n",
	                   token_file, kt_agent(), token_file) > 0);
	json_object *seed = json_object_new_object(), *scripts = json_object_new_object(),
	            *t1 = json_object_new_object();
	json_object_object_add(t1, "content", json_object_new_string(script));
	json_object_object_add(t1, "language", json_object_new_string("sh"));
	json_object_object_add(scripts, "t1", t1);
	json_object_object_add(seed, "scripts", scripts);
	at_control(&C, "/_control/seed", json_object_to_json_string(seed));
	json_object_put(seed);
	free(script);
}

/* Everything keruta-api received (bodies, uploads' bytes), as one text. */
static char *everything_received(void)
{
	json_object *st = at_get(&C, "/_control/state"), *ups, *t1;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	fputs(json_object_to_json_string(st), f);
	if (json_object_object_get_ex(st, "uploads", &ups) &&
	    json_object_object_get_ex(ups, "t1", &t1))
		for (size_t i = 0; i < json_object_array_length(t1); i++) {
			json_object *p;
			if (!json_object_object_get_ex(json_object_array_get_idx(t1, i), "path", &p))
				continue;
			char *data = kt_read_file(json_object_get_string(p), NULL);
			fprintf(f, "\n--- upload %zu\n%s", i, data ? data : "");
			free(data);
		}
	fclose(f);
	json_object_put(st);
	return out;
}

static void run_hunter(const char *const *args, kt_result *r)
{
	seed_hunter();
	const char *env[] = {"KERUTA_API_TOKEN=" TOKEN, "KERUTA_GIT_TOKEN=" GIT_TOKEN,
	                     "KERUTA_API_TOKEN_FILE=/nonexistent-but-secret-path", NULL};
	const char *argv[16];
	int n = 0;
	argv[n++] = "--api-token-file";
	argv[n++] = token_file;
	for (int i = 0; args && args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert_eq(at_agent(&C, r, argv, env, 60), 0, "stdout:\n%s\nstderr:\n%s", r->out, r->err);
}

Test(api_token, run_as_keeps_every_copy_of_the_token_from_the_script)
{
	if (geteuid() != 0)
		cr_skip_test("run_as needs the tests to run as root");
	kt_result r;
	const char *const args[] = {"--run-as", "65534", NULL};
	run_hunter(args, &r);
	char *found = kt_path(C.work, ".keruta/doc/found.txt");
	char *text = kt_read_file(found, NULL);
	cr_assert(text, "the script wrote nothing");
	cr_expect(!kt_contains(text, TOKEN), "the script found the token:\n%s", text);
	cr_expect(!kt_contains(text, GIT_TOKEN), "the script found the git token:\n%s", text);
	cr_expect(!kt_contains(text, "KERUTA_API_TOKEN_FILE"), "%s", text);
	cr_expect(kt_contains(text, "Permission denied"), "the token file and environ are closed:\n%s",
	          text);
	cr_expect(kt_contains(text, "KERUTA_AGENT_SOCKET="), "%s", text);
	cr_expect(!kt_contains(r.out, "TOKEN FILE ACCEPTED"), "%s", r.out);
	char *all = everything_received();
	cr_expect(!kt_contains(all, TOKEN), "keruta-api received the token: %s", all);
	cr_expect(!kt_contains(all, GIT_TOKEN), "keruta-api received the git token");
	char rev[sizeof(TOKEN)];
	for (size_t i = 0; i < sizeof(TOKEN) - 1; i++)
		rev[i] = TOKEN[sizeof(TOKEN) - 2 - i];
	rev[sizeof(TOKEN) - 1] = '\0';
	cr_expect(!kt_contains(all, rev), "keruta-api received the token reversed");
	cr_expect(!kt_contains(r.out, rev), "the pod log holds the token reversed");
	/* what the script sent through the agent arrived */
	cr_expect(kt_contains(all, "[WARN] hello from the script"), "%s", all);
	cr_expect(kt_contains(all, "\"progress\": \"40\""), "%s", all);
	cr_expect(kt_contains(all, "halfway there"), "%s", all);
	cr_expect(kt_contains(all, "report body"), "the artifact was uploaded: %s", all);
	free(all);
	free(text);
	free(found);
	kt_result_free(&r);
}

Test(api_token, without_run_as_the_environment_is_still_clean)
{
	kt_result r;
	run_hunter(NULL, &r);
	char *envf = kt_path(C.work, ".keruta/doc/env.txt");
	char *env = kt_read_file(envf, NULL);
	char *found = kt_path(C.work, ".keruta/doc/found.txt");
	char *text = kt_read_file(found, NULL);
	cr_assert(env && text, "the script wrote nothing");
	cr_expect(!kt_contains(env, TOKEN), "the environment holds the token:\n%s", env);
	cr_expect(!kt_contains(env, GIT_TOKEN), "the environment holds the git token:\n%s", env);
	cr_expect(!kt_contains(env, "KERUTA_API_TOKEN"), "%s", env);
	cr_expect(!kt_contains(env, "KERUTA_GIT_TOKEN"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_AGENT_SOCKET="), "%s", env);
	cr_expect(kt_contains(text, "token= git="), "the variables are empty:\n%s", text);
	free(text);
	free(found);
	free(env);
	free(envf);
	kt_result_free(&r);
}

Test(api_token, opting_in_passes_the_token_and_says_so)
{
	kt_result r;
	const char *const args[] = {"--pass-api-token-to-tasks", NULL};
	run_hunter(args, &r);
	char *found = kt_path(C.work, ".keruta/doc/found.txt");
	char *text = kt_read_file(found, NULL);
	cr_expect(kt_contains(text, "token=" TOKEN " git="), "%s", text);
	cr_expect(kt_contains(r.err, "pass_api_token_to_tasks"), "%s", r.err);
	free(text);
	free(found);
	kt_result_free(&r);
}

Test(api_token, the_script_commands_need_the_agent)
{
	kt_result r;
	const char *argv[] = {kt_agent(), "log", "INFO", "x", NULL};
	const char *env[] = {"KERUTA_AGENT_SOCKET=", NULL};
	cr_assert(kt_run(&r, argv, env, C.dir, NULL, 30) == 0);
	cr_expect_eq(r.status, 2);
	cr_expect(kt_contains(r.err, "KERUTA_AGENT_SOCKET is not set"), "%s", r.err);
	kt_result_free(&r);
	const char *bad[] = {kt_agent(), "progress", NULL};
	cr_assert(kt_run(&r, bad, NULL, C.dir, NULL, 30) == 0);
	cr_expect_eq(r.status, 2);
	cr_expect(kt_contains(r.err, "Usage: keruta-agent progress PERCENT"), "%s", r.err);
	kt_result_free(&r);
}

/* What the agent refuses over the channel, the script learns on stderr
 * with a non-zero exit; the task goes on. */
Test(api_token, the_channel_refuses_bad_requests_clearly)
{
	char *script = NULL;
	cr_assert(asprintf(&script,
	                   "#!/bin/sh\n"
	                   "K='%s'\n"
	                   "$K log LOUD x; echo \"log=$?\"\n"
	                   "$K progress 150; echo \"progress=$?\"\n"
	                   "$K progress ten; echo \"word=$?\"\n"
	                   "$K artifact .; echo \"dir=$?\"\n"
	                   "$K artifact /nonexistent/x; echo \"missing=$?\"\n"
	                   "$K log ERROR 'two' 'words'; echo \"ok=$?\"\n",
	                   kt_agent()) > 0);
	json_object *seed = json_object_new_object(), *scripts = json_object_new_object(),
	            *t1 = json_object_new_object();
	json_object_object_add(t1, "content", json_object_new_string(script));
	json_object_object_add(scripts, "t1", t1);
	json_object_object_add(seed, "scripts", scripts);
	at_control(&C, "/_control/seed", json_object_to_json_string(seed));
	json_object_put(seed);
	free(script);
	kt_result r;
	const char *env[] = {"KERUTA_API_TOKEN=" TOKEN, NULL};
	cr_assert_eq(at_agent(&C, &r, NULL, env, 60), 0, "%s", r.err);
	cr_expect(kt_contains(r.out, "log=1"), "%s", r.out);
	cr_expect(kt_contains(r.err, "LEVEL must be DEBUG, INFO, WARN or ERROR"), "%s", r.err);
	cr_expect(kt_contains(r.out, "progress=1"), "%s", r.out);
	cr_expect(kt_contains(r.out, "word=1"), "%s", r.out);
	cr_expect(kt_contains(r.err, "PERCENT must be a whole number from 0 to 100"), "%s", r.err);
	cr_expect(kt_contains(r.out, "dir=1"), "%s", r.out);
	cr_expect(kt_contains(r.err, "FILE must be a regular file"), "%s", r.err);
	cr_expect(kt_contains(r.out, "missing=1"), "%s", r.out);
	cr_expect(kt_contains(r.out, "ok=0"), "%s", r.out);
	cr_expect(kt_contains(r.out, "[ERROR] two words"), "%s", r.out);
	kt_result_free(&r);
}
