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

/* keruta-api's script of task t1: content in language (NULL: none given). */
static void seed_script(const char *content, const char *language)
{
	json_object *seed = json_object_new_object(), *scripts = json_object_new_object(),
	            *t1 = json_object_new_object();
	json_object_object_add(t1, "content", json_object_new_string(content));
	if (language)
		json_object_object_add(t1, "language", json_object_new_string(language));
	json_object_object_add(scripts, "t1", t1);
	json_object_object_add(seed, "scripts", scripts);
	at_control(&C, "/_control/seed", json_object_to_json_string(seed));
	json_object_put(seed);
}

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
	seed_script(script, "sh");
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
	                   "$K log INFO \"$(head -c 70000 /dev/zero | tr '\\000' x)\"; "
	                   "echo \"long=$?\"\n"
	                   "$K log ERROR 'two' 'words'; echo \"ok=$?\"\n",
	                   kt_agent()) > 0);
	seed_script(script, NULL);
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
	cr_expect(kt_contains(r.out, "long=1"), "%s", r.out);
	cr_expect(kt_contains(r.err, "the agent takes at most 65536"), "%s", r.err);
	cr_expect(kt_contains(r.out, "ok=0"), "%s", r.out);
	cr_expect(kt_contains(r.out, "[ERROR] two words"), "%s", r.out);
	kt_result_free(&r);
}

/* The channel is an input from task code: a script may skip the client
 * and write anything to the socket.  Every hostile request gets an
 * answer ("error: ..."), none reaches outside the task's doc/, and the
 * agent keeps serving the script afterwards. */
static const char hostile_client[] =
        "import array, os, socket, sys\n"
        "path = os.environ['KERUTA_AGENT_SOCKET']\n"
        "def ask(label, data, fd=None):\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    s.connect(path)\n"
        "    try:\n"
        "        if fd is None:\n"
        "            s.sendall(data)\n"
        "        else:\n"
        "            s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,"
        " array.array('i', [fd]))])\n"
        "        s.shutdown(socket.SHUT_WR)\n"
        "        got = s.recv(4096).decode(errors='replace').strip()\n"
        "    except OSError as e:\n"
        "        got = 'closed: ' + e.strerror\n"
        "    s.close()\n"
        "    print('%s=%s' % (label, got), flush=True)\n"
        "ask('huge', b'{\"cmd\":\"log\",\"level\":\"INFO\",\"message\":\"' + b'x' * 300000 + b'\"}')\n"
        "ask('garbage', b'{\"cmd\": \"log\", ')\n"
        "ask('binary', bytes(range(256)))\n"
        "ask('deep', b'[' * 30000)\n"
        "ask('cmdlist', b'{\"cmd\": [\"log\"]}')\n"
        "ask('msgmap', b'{\"cmd\": \"log\", \"level\": \"INFO\", \"message\": {\"a\": 1}}')\n"
        "ask('nul', b'{\"cmd\": \"log\", \"level\": \"INFO\", \"message\": \"a\\\\u0000b\"}')\n"
        "ask('nofd', b'{\"cmd\": \"artifact\", \"name\": \"x.txt\"}')\n"
        "os.mkfifo('/tmp/kt-fifo-%d' % os.getpid())\n"
        "fifo = os.open('/tmp/kt-fifo-%d' % os.getpid(), os.O_RDWR | os.O_NONBLOCK)\n"
        "ask('fifo', b'{\"cmd\": \"artifact\", \"name\": \"f.txt\"}', fifo)\n"
        "os.unlink('/tmp/kt-fifo-%d' % os.getpid())\n"
        "d = os.open('.', os.O_RDONLY | os.O_DIRECTORY)\n"
        "ask('dirfd', b'{\"cmd\": \"artifact\", \"name\": \"d.txt\"}', d)\n"
        "ro = os.open('/tmp/kt-escape-%d' % os.getpid(), os.O_RDWR | os.O_CREAT, 0o600)\n"
        "os.write(ro, b'escaped?\\n')\n"
        "ask('dotdot', b'{\"cmd\": \"artifact\", \"name\": \"../../../escape.txt\"}', ro)\n"
        "ask('dots', b'{\"cmd\": \"artifact\", \"name\": \"..\"}', ro)\n"
        "os.unlink('/tmp/kt-escape-%d' % os.getpid())\n"
        "ask('alive', b'{\"cmd\": \"log\", \"level\": \"INFO\", \"message\": \"still served\"}')\n";

Test(api_token, the_channel_survives_hostile_requests)
{
	char *script = NULL;
	cr_assert(asprintf(&script, "#!/usr/bin/env python3\n%s", hostile_client) > 0);
	seed_script(script, "python");
	free(script);
	kt_result r;
	const char *env[] = {"KERUTA_API_TOKEN=" TOKEN, NULL};
	cr_assert_eq(at_agent(&C, &r, NULL, env, 60), 0, "%s", r.err);
	cr_expect_eq(r.status, 0, "the task failed:\n%s\n%s", r.out, r.err);
	/* a request over the limit is refused, or the connection dropped */
	cr_expect(kt_contains(r.out, "huge=error: ") || kt_contains(r.out, "huge=closed"), "%s",
	          r.out);
	cr_expect(!kt_contains(r.out, "xxxxxxxxxxxxxxxx"), "the huge message was logged: %s", r.out);
	static const char *const refused[] = {
	        "garbage=error: the request is not a JSON object",
	        "binary=error: the request is not a JSON object",
	        "deep=error: the request is not a JSON object",
	        "cmdlist=error: the request is not a JSON object",
	        "msgmap=error: no MESSAGE",
	        "nul=error: no MESSAGE",
	        "nofd=error: FILE must be a regular file",
	        "fifo=error: FILE must be a regular file",
	        "dirfd=error: FILE must be a regular file",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_expect(kt_contains(r.out, refused[i]), "expected '%s' in:\n%s", refused[i], r.out);
	cr_expect(kt_contains(r.out, "dotdot=ok"), "%s", r.out);
	cr_expect(kt_contains(r.out, "dots=ok"), "%s", r.out);
	cr_expect(kt_contains(r.out, "alive=ok"), "%s", r.out);
	cr_expect(kt_contains(r.out, "[INFO] still served"), "%s", r.out);
	/* a name with ../ lands in the task's doc/ as a plain name, and the
	 * bare ".." under the default name; nothing outside */
	static const char *const outside[] = {"escape.txt", "../escape.txt", "../../escape.txt",
	                                      ".keruta/escape.txt", ".keruta/tasks/escape.txt"};
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		char *p = kt_path(C.work, outside[i]);
		cr_expect(access(p, F_OK) != 0, "%s was written", p);
		free(p);
	}
	json_object *st = at_get(&C, "/_control/state");
	const char *all = json_object_to_json_string(st);
	cr_expect(kt_contains(all, "\"escape.txt\""), "the artifact was not uploaded: %s", all);
	cr_expect(kt_contains(all, "\"artifact\""), "the '..' artifact was not uploaded: %s", all);
	json_object_put(st);
	kt_result_free(&r);
}
