/*
 * core_edges.c - the core's checks at their edges, through the real
 * binary: a task keruta-api answers in the wrong shape, a plugin asking
 * for a process with no command, the poll loop of the process runner
 * failing, ...  Each test asserts what a user sees: the exit code, the
 * termination message, the log, a file that must (not) exist.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include "init_harness.c"

/* tests/fixtures/.libs: fx_ok and friends */
static char *fixtures(void)
{
	return kt_path(kt_builddir(), "tests/fixtures/.libs");
}

/* A pipeline of one fx_ok stage `a` in phase `phase` with `with` (the
 * body of a YAML flow mapping); its trace goes to dir/trace. */
static void fx_pipeline(kx *x, const char *phase, const char *with)
{
	char *phases = NULL, *stages = NULL;
	cr_assert(asprintf(&phases, "  %s: [a]\n", phase) > 0);
	cr_assert(asprintf(&stages, "  a: {plugin: fx_ok, with: {trace: '%s/trace', %s}}\n", x->dir,
	                   with) > 0);
	kx_pipeline(x, phases, stages);
	free(phases);
	free(stages);
}

/* `keruta-agent execute` on x's files, not waited for: stdout on out,
 * stdin and stderr on /dev/null; out < 0: 0, 1 and 2 all closed. */
static pid_t spawn_execute(kx *x, int out)
{
	const char *argv[] = {kt_agent(),   "execute",   "--pipeline", x->pipeline, "--task-file",
	                      x->task,      "--work-dir", x->work,     "--termination-log", x->term,
	                      "--events-file", x->evpath, "--log-format", "text", NULL};
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (out >= 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(out, 1);
			dup2(null, 2);
		} else {
			close(0);
			close(1);
			close(2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* The agent's API backend refuses a non-object itself; the launcher hands
 * keruta-api's answer to the task reader as it is. */
Test(core_edges, a_task_keruta_api_answers_as_a_list_is_refused_by_render)
{
	kt_api api;
	kx_api_start(&api);
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\"}]}");
	kx_api_control(&api, "/_control/fault",
	               "{\"match\":{\"method\":\"GET\",\"path_regex\":\"/tasks/t1$\"},"
	               "\"action\":\"status\",\"code\":200,\"body\":\"[{\\\"id\\\":\\\"t1\\\"}]\","
	               "\"times\":-1}");
	const char *argv[] = {kt_agent(), "render", "--task-id", "t1", "--api-url", api.url,
	                      "--log-format", "text", NULL};
	char *module = NULL;
	cr_assert(asprintf(&module, "KERUTA_LAUNCHER_MODULE=%s/.libs/launcher.so", kt_builddir()) > 0);
	const char *env[] = {module, "KERUTA_API_TOKEN", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, env, NULL, NULL, 60), 0);
	cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "task t1: a task must be a mapping (object), not a list"),
	          "%s", r.err);
	cr_expect_eq(r.out[0], '\0', "a manifest was rendered: %s", r.out);
	kt_result_free(&r);
	free(module);
	kt_api_stop(&api);
}

/* A task record from keruta-api (or a proxy in between) with a field of
 * the wrong kind fails the task naming the field, before any stage runs:
 * the reader ignores fields it does not know, not known ones that are
 * wrong. */
Test(core_edges, a_task_record_with_a_field_of_the_wrong_kind_fails_naming_it)
{
	static const char *const cases[][2] = {
	        {"{\"id\":\"c0\",\"title\":[\"a\"]}", "field 'title' must be a string or number, not a list"},
	        {"{\"id\":\"c1\",\"title\":\"a\\u0000b\"}", "field 'title' contains a NUL byte"},
	        {"{\"id\":\"c2\",\"command\":\"echo\"}",
	         "field 'command' must be a non-empty list of strings (program, arguments), not a scalar"},
	        {"{\"id\":\"c3\",\"command\":[\"\",\"x\"]}",
	         "entry 1 of 'command' must be a string without NUL bytes, and the program not empty"},
	        {"{\"id\":\"c4\",\"repository\":[1]}", "field 'repository' must be a mapping, not a list"},
	        {"{\"id\":\"c5\",\"repository\":{\"url\":[1]}}",
	         "field 'url' must be a string or number, not a list"},
	        {"{\"id\":\"c6\",\"documentIds\":\"d1\"}", "field 'documentIds' must be a list, not a scalar"},
	        {"{\"id\":\"c7\",\"documents\":[[1]]}",
	         "entry 1 of 'documents' must be an id or an object with an 'id'"},
	        {"{\"id\":\"c8\",\"environment\":[1]}",
	         "field 'environment' must be a mapping of names to values, not a list"},
	        {"{\"id\":\"c9\",\"env\":{\"A=B\":\"x\"}}",
	         "'env' entry 'A=B' must be NAME: value with a NAME free of '='"},
	        {"{\"id\":\"c10\",\"executeScript\":[\"x\"]}",
	         "field 'executeScript' must be a string or number, not a list"},
	        {"{\"id\":\"c11\",\"command\":[\"sh\",{\"a\":\"b\"}]}",
	         "entry 2 of 'command' must be a string without NUL bytes"},
	        {"{\"title\":\"no id\"}", "the task has no 'id' field"},
	};
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'touch ran']}}\n");
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"c0\"},{\"id\":\"c1\"},{\"id\":\"c2\"},{\"id\":\"c3\"},"
	               "{\"id\":\"c4\"},{\"id\":\"c5\"},{\"id\":\"c6\"},{\"id\":\"c7\"},{\"id\":\"c8\"},"
	               "{\"id\":\"c9\"},{\"id\":\"c10\"},{\"id\":\"c11\"},{\"id\":\"c12\"}]}");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[8], *fault = NULL;
		snprintf(id, sizeof(id), "c%zu", i);
		json_object *f = json_tokener_parse("{\"action\":\"status\",\"code\":200,\"times\":-1}");
		json_object *m = json_object_new_object();
		char *re = NULL;
		cr_assert(asprintf(&re, "/tasks/%s$", id) > 0);
		json_object_object_add(m, "method", json_object_new_string("GET"));
		json_object_object_add(m, "path_regex", json_object_new_string(re));
		json_object_object_add(f, "match", m);
		json_object_object_add(f, "body", json_object_new_string(cases[i][0]));
		fault = strdup(json_object_to_json_string(f));
		kx_api_control(&api, "/_control/fault", fault);
		const char *args[] = {"--task-id", id, NULL};
		kx_agent_api(&x, &api, "execute", args, NULL);
		cr_expect_eq(x.r.status, 1, "%s: exit %d: %s", id, x.r.status, x.log);
		cr_expect(kt_contains(x.log, cases[i][1]), "%s: '%s' not in: %s", id, cases[i][1], x.log);
		cr_expect(!kx_exists(x.work, "ran"), "%s: the task ran", id);
		free(fault);
		free(re);
		json_object_put(f);
	}
	kt_api_stop(&api);
	kx_free(&x);
}

Test(core_edges, a_plugin_asking_for_a_process_without_a_command_fails_its_stage)
{
	kx x;
	kx_setup(&x);
	fx_pipeline(&x, "execute", "action: empty-argv");
	char *fx = fixtures();
	const char *args[] = {"--plugin-dir", fx, NULL};
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 1, "exit %d (a crash is not a stage failure): %s", x.r.status, x.log);
	cr_expect(kt_contains(x.termtext, "\"reason\":\"run_process: no command given\""), "%s",
	          x.termtext);
	cr_expect(kt_contains(x.termtext, "\"stage\":\"a\""), "%s", x.termtext);
	free(fx);
	kx_free(&x);
}

/* A plugin passing NULL where a service wants a value (a name, a path, a
 * process, the task itself) gets a refusal it can act on, never a crash
 * of the agent; fx_ok checks every answer and fails naming a wrong one.
 * So do a file to upload that cannot be read and an area path with '..'
 * or a name over 255 bytes. */
Test(core_edges, services_refuse_null_arguments_without_a_crash)
{
	kx x;
	kx_setup(&x);
	kt_write_file(x.task, "id: t-1\ndocuments:\n  - {id: d1, name: a.md, content: hi}\n"
	                      "script: echo hi\n");
	/* with a timeout: time_left_ms has a deadline to count down to */
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  a: {plugin: fx_ok, timeout: 1h, with: {trace: '%s/trace', "
	                            "action: null-args}}\n",
	                   x.dir) > 0);
	kx_pipeline(&x, "  execute: [a]\n", stages);
	free(stages);
	char *fx = fixtures();
	const char *args[] = {"--plugin-dir", fx, NULL};
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d (a crash is not a refusal): %s", x.r.status, x.log);
	cr_expect(kt_contains(x.log, "every NULL argument was refused (read_file: "), "%s", x.log);
	cr_expect(!kt_contains(x.log, "answered a NULL argument wrongly"), "%s", x.log);
	cr_expect(kt_contains(x.log, "cannot read /nonexistent/a.txt to upload it: No such file"),
	          "%s", x.log);
	cr_expect(kt_contains(x.log, "cannot read / to upload it: Invalid argument"), "%s", x.log);
	free(fx);
	kx_free(&x);
}

/* A line whose last character takes 2, 3 or 4 bytes in UTF-8 (the whole
 * line ends exactly where the character does) is logged as it was
 * written, not with that character replaced as if it were cut short. */
Test(core_edges, lines_ending_in_a_multibyte_character_are_logged_intact)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, "
	            "'printf \"caf\\303\\251\\n\\342\\202\\254\\nok \\360\\237\\230\\200\\n\"']}}\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.events, "\"line\":\"caf\xc3\xa9\""), "%s", x.events);
	cr_expect(kt_contains(x.events, "\"line\":\"\xe2\x82\xac\""), "%s", x.events);
	cr_expect(kt_contains(x.events, "\"line\":\"ok \xf0\x9f\x98\x80\""), "%s", x.events);
	cr_expect(!kt_contains(x.events, "\\ufffd"), "%s", x.events);
	kx_free(&x);
}

/* The termination message is what `kubectl describe` shows: written
 * without a false alarm, and a failed write said in the log. */
Test(core_edges, the_termination_message_is_written_without_a_warning)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'exit 3']}}\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 1, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.termtext, "\"agentExitCode\":1,\"exitCode\":3,\"stage\":\"run\""),
	          "%s", x.termtext);
	cr_expect(!kt_contains(x.log, "cannot write the termination message"), "%s", x.log);
	kx_free(&x);
}

Test(core_edges, a_termination_message_that_cannot_be_written_is_said_in_the_log)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'exit 0']}}\n");
	const char *args[] = {"--termination-log", "/dev/full", NULL};
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.log, "cannot write the termination message to /dev/full: No space "
	                             "left on device"),
	          "%s", x.log);
	kx_free(&x);
}

/* The agent's stdout is a pod log the agent does not own: when it is a
 * full non-blocking pipe nobody reads, the agent gives up passing output
 * through after a while instead of waiting for a reader forever. */
Test(core_edges, a_full_non_blocking_stdout_does_not_stop_the_task, .timeout = 120)
{
	kx x;
	kx_setup(&x);
	/* 512 KiB of lines, far more than a pipe holds */
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, "
	            "'i=0; while [ $i -lt 8192 ]; do echo "
	            "line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; "
	            "echo last-line']}}\n");
	int p[2];
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK), 0);
	pid_t pid = spawn_execute(&x, p[1]);
	close(p[1]);
	int status = 0, done = 0;
	for (int i = 0; i < 600 && !done; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			done = 1;
		else
			usleep(100000);
	}
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	close(p[0]);
	cr_assert(done, "the agent waited for a reader of its stdout for 60 s");
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	char *events = kt_read_file(x.evpath, NULL);
	cr_expect(events && kt_contains(events, "last-line"), "the task's log lost its end");
	free(events);
	kx_free(&x);
}

/* A plugin's own read limit holds; with none, the agent's max_download. */
Test(core_edges, read_file_keeps_the_limit_a_plugin_gives)
{
	kx x;
	kx_setup(&x);
	char big[2049];
	memset(big, 'a', 2048);
	big[2048] = '\0';
	kx_write(x.dir, "big", big);
	char *with = NULL;
	cr_assert(asprintf(&with, "action: read, file: '%s/big', limit: 1KiB", x.dir) > 0);
	fx_pipeline(&x, "execute", with);
	char *fx = fixtures();
	const char *args[] = {"--plugin-dir", fx, NULL};
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 1, "a 2 KiB file read with a 1 KiB limit: exit %d: %s", x.r.status,
	             x.log);
	cr_expect(!kt_contains(x.log, "read 2048 bytes"), "%s", x.log);
	free(with);
	/* and 4 KiB is within its limit, whatever max_download says */
	cr_assert(asprintf(&with, "action: read, file: '%s/big', limit: 4KiB", x.dir) > 0);
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  a: {plugin: fx_ok, with: {trace: '%s/trace', %s}}\n", x.dir,
	                   with) > 0);
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nsettings: {max_download: 1KiB}\nphases:\n"
	                          "  execute: [a]\nstages:\n%s", stages) > 0);
	kt_write_file(x.pipeline, text);
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.log, "read 2048 bytes"), "%s", x.log);
	free(text);
	free(stages);
	free(with);
	free(fx);
	kx_free(&x);
}

Test(core_edges, read_file_without_a_limit_keeps_max_download)
{
	kx x;
	kx_setup(&x);
	char big[2049];
	memset(big, 'a', 2048);
	big[2048] = '\0';
	kx_write(x.dir, "big", big);
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nsettings: {max_download: 1KiB}\nphases:\n"
	                          "  execute: [a]\nstages:\n"
	                          "  a: {plugin: fx_ok, with: {trace: '%s/trace', action: read, "
	                          "file: '%s/big', limit: 0}}\n",
	                   x.dir, x.dir) > 0);
	kt_write_file(x.pipeline, text);
	char *fx = fixtures();
	const char *args[] = {"--plugin-dir", fx, NULL};
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 1, "a 2 KiB file read with max_download 1KiB: exit %d: %s",
	             x.r.status, x.log);
	cr_expect(!kt_contains(x.log, "read 2048 bytes"), "%s", x.log);
	free(text);
	free(fx);
	kx_free(&x);
}

/* What a script sends through the channel in local mode: a message of
 * several lines is one log line each (blank ones dropped); an artifact
 * sent twice under one name is kept twice; one over max_download is
 * refused and leaves nothing behind; a socket that is not there is
 * said with exit 3. */
static const char channel_script[] =
        "K=\"$1\"\n"
        "$K log INFO \"$(printf 'first\\n\\nsecond')\"; echo \"multi=$?\"\n"
        "echo one > r.txt; $K artifact r.txt; echo \"first=$?\"\n"
        "echo two > r.txt; $K artifact r.txt; echo \"again=$?\"\n"
        "head -c 100 /dev/zero > big.bin; $K artifact big.bin; echo \"big=$?\"\n"
        "KERUTA_AGENT_SOCKET=/nonexistent/agent.sock $K log INFO x; echo \"unreachable=$?\"\n";

Test(core_edges, the_channel_splits_lines_keeps_each_artifact_and_refuses_big_ones)
{
	kx x;
	kx_setup(&x);
	kx_write(x.dir, "script.sh", channel_script);
	char *text = NULL;
	cr_assert(asprintf(&text,
	                   "version: 1\nsettings:\n  max_download: 64\nphases:\n"
	                   "  execute: [run, collect]\nstages:\n"
	                   "  run: {plugin: execute, with: {argv: [/bin/sh, '%s/script.sh', '%s']}}\n"
	                   "  collect: {plugin: collect}\n",
	                   x.dir, kt_agent()) > 0);
	kt_write_file(x.pipeline, text);
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.r.out, "[INFO] first\n[INFO] second\n"), "%s", x.r.out);
	cr_expect(kt_contains(x.events, "multi=0"), "%s", x.events);
	cr_expect(kt_contains(x.events, "first=0"), "%s", x.events);
	cr_expect(kt_contains(x.events, "again=0"), "%s", x.events);
	cr_expect(kt_contains(x.events, "big=1"), "%s", x.events);
	cr_expect(kt_contains(x.log, "keruta-agent artifact: error: it is larger than max_download"),
	          "%s", x.log);
	cr_expect(kt_contains(x.events, "unreachable=3"), "%s", x.events);
	cr_expect(kt_contains(x.log, "keruta-agent log: cannot reach the agent at "
	                             "/nonexistent/agent.sock: No such file or directory"),
	          "%s", x.log);
	char *one = kx_read(x.arts, "r.txt", NULL), *two = kx_read(x.arts, "1-r.txt", NULL);
	cr_expect_str_eq(one ? one : "(none)", "one\n", "%s", x.log);
	cr_expect_str_eq(two ? two : "(none)", "two\n", "%s", x.log);
	cr_expect(!kx_exists(x.arts, "big.bin"), "the refused artifact was collected");
	cr_expect(!kx_exists(x.work, ".keruta/tasks/t-1/doc/big.bin"), "the refused artifact stayed");
	free(one);
	free(two);
	free(text);
	kx_free(&x);
}

/* A task doc/ nothing can be created in (immutable, so even root
 * cannot): `artifact` fails with the system's reason, the task goes on. */
Test(core_edges, an_artifact_the_channel_cannot_queue_fails_with_the_reason)
{
	kx x;
	kx_setup(&x);
	char *doc = kx_mk(x.work, ".keruta/tasks/t-1/doc/x");
	*strrchr(doc, '/') = '\0';
	if (kt_immutable(doc, 1) != 0) {
		free(doc);
		kx_free(&x);
		cr_skip_test("cannot make a directory immutable here (not root, or the file system "
		             "lacks the attribute)");
	}
	kx_write(x.dir, "script.sh", "echo one > r.txt; \"$1\" artifact r.txt; echo \"queued=$?\"\n");
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  run: {plugin: execute, with: {argv: [/bin/sh, '%s/script.sh', '%s']}}\n",
	                   x.dir, kt_agent()) > 0);
	kx_pipeline(&x, "  execute: [run]\n", stages);
	kx_agent(&x, "execute", NULL, NULL);
	kt_immutable(doc, 0);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.events, "queued=1"), "%s", x.events);
	cr_expect(kt_contains(x.log, "keruta-agent artifact: error: cannot queue it in the task's "
	                             "doc/ under "),
	          "%s", x.log);
	cr_expect(kt_contains(x.log, "/.keruta: Operation not permitted"), "%s", x.log);
	free(stages);
	free(doc);
	kx_free(&x);
}

/* The task channel's socket lives only as long as the agent. */
Test(core_edges, the_task_channel_socket_is_gone_after_the_run)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, "
	            "'test -S .keruta/agent.sock && echo socket-there']}}\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.events, "socket-there"), "no channel while the task ran: %s",
	          x.events);
	cr_expect(!kx_exists(x.work, ".keruta/agent.sock"), "the socket was left behind");
	kx_free(&x);
}

/* A work dir so deep that WORK/.keruta/agent.sock does not fit a socket
 * address (108 bytes): the channel lives in a directory of its own under
 * /tmp instead, and the script's `log` and `artifact` still reach the
 * agent; the directory is gone after the run. */
Test(core_edges, a_work_dir_too_deep_for_a_socket_keeps_the_channel_in_tmp)
{
	kx x;
	kx_setup(&x);
	char deep[121];
	memset(deep, 'w', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	char *parent = kt_path(x.dir, deep);
	cr_assert_eq(mkdir(parent, 0755), 0);
	free(x.work);
	x.work = kt_path(parent, "work");
	cr_assert_eq(mkdir(x.work, 0755), 0);
	char *stages = NULL;
	cr_assert(asprintf(&stages,
	                   "  run: {plugin: execute, with: {argv: [/bin/sh, -c, "
	                   "'echo \"$KERUTA_AGENT_SOCKET\" > sock.txt; "
	                   "test -S \"$KERUTA_AGENT_SOCKET\" && echo socket-there; "
	                   "%s log INFO from-the-script && echo report > r.txt && "
	                   "%s artifact r.txt']}}\n"
	                   "  collect: {plugin: collect}\n",
	                   kt_agent(), kt_agent()) > 0);
	kx_pipeline(&x, "  execute: [run, collect]\n", stages);
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	char *sock = kx_read(x.work, "sock.txt", NULL);
	cr_assert(sock, "the script did not run: %s", x.log);
	cr_expect(strncmp(sock, "/tmp/keruta-agent-", 18) == 0, "the socket is at %s", sock);
	cr_expect(kt_contains(x.events, "socket-there"), "no channel while the task ran: %s",
	          x.events);
	cr_expect(kt_contains(x.r.out, "[INFO] from-the-script"), "%s", x.log);
	char *art = kx_read(x.arts, "r.txt", NULL);
	cr_expect_str_eq(art ? art : "(not collected)", "report\n", "%s", x.log);
	/* the fallback directory is removed with the socket */
	char *slash = strrchr(sock, '/');
	if (slash) {
		*slash = '\0';
		struct stat st;
		cr_expect(lstat(sock, &st) != 0, "%s was left behind", sock);
	}
	free(art);
	free(sock);
	free(stages);
	free(parent);
	kx_free(&x);
}

/* Started with stdin, stdout and stderr closed (a careless supervisor),
 * the agent's own descriptors land on 0..2: the child still gets its
 * output captured, not sent to /dev/null or elsewhere. */
Test(core_edges, an_agent_started_with_0_1_2_closed_still_captures_output)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, "
	            "'echo to-stdout; echo to-stderr >&2']}}\n");
	pid_t pid = spawn_execute(&x, -1);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	char *events = kt_read_file(x.evpath, NULL);
	cr_assert(events, "no events file");
	cr_expect(kt_contains(events, "\"stream\":\"stdout\"") && kt_contains(events, "to-stdout"),
	          "%s", events);
	cr_expect(kt_contains(events, "to-stderr"), "%s", events);
	free(events);
	kx_free(&x);
}

/* The statuses keruta-api received for a task, as "S1,S2,...". */
static char *statuses(kt_api *api, const char *id)
{
	char *state = kx_api_state(api);
	json_object *o = json_tokener_parse(state), *all, *list;
	cr_assert(o, "state is not JSON: %s", state);
	char *out = strdup("");
	if (json_object_object_get_ex(o, "statuses", &all) &&
	    json_object_object_get_ex(all, id, &list)) {
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *st;
			if (!json_object_object_get_ex(json_object_array_get_idx(list, i), "status", &st))
				continue;
			char *more = NULL;
			cr_assert(asprintf(&more, "%s%s%s", out, *out ? "," : "",
			                   json_object_get_string(st)) > 0);
			free(out);
			out = more;
		}
	}
	json_object_put(o);
	free(state);
	return out;
}

/* A main container restarted after it reported: the task's record on the
 * work volume says so, and the new run sends no second status (keruta-api
 * itself still shows the task as PENDING: another client may have reset it). */
Test(core_edges, a_run_after_the_record_says_reported_sends_no_status)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	fx_pipeline(&x, "run", "action: pass");
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\",\"status\":\"PENDING\"}]}");
	kx_write(x.work, ".keruta/tasks/t1/outcome.json",
	         "{\"taskId\":\"t1\",\"command\":\"run\",\"status\":\"COMPLETED\",\"stage\":null,"
	         "\"reason\":null,\"errorCode\":null,\"reported\":\"COMPLETED\"}\n");
	char *fx = fixtures();
	const char *args[] = {"--task-id", "t1", "--plugin-dir", fx, NULL};
	kx_agent_api(&x, &api, "run", args, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	char *sent = statuses(&api, "t1");
	cr_expect_str_eq(sent, "", "statuses sent after COMPLETED was reported: %s", sent);
	cr_expect(kt_contains(x.log, "task t1 already has its final status COMPLETED"), "%s", x.log);
	cr_expect(kt_contains(x.termtext, "\"reported\":\"COMPLETED\""), "%s", x.termtext);
	free(sent);
	/* a record naming no terminal status is no report: this run sends one */
	kx_write(x.work, ".keruta/tasks/t1/outcome.json",
	         "{\"taskId\":\"t1\",\"command\":\"run\",\"status\":\"COMPLETED\",\"reported\":\"BOGUS\"}\n");
	kx_agent_api(&x, &api, "run", args, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	sent = statuses(&api, "t1");
	cr_expect_str_eq(sent, "IN_PROGRESS,COMPLETED", "%s", sent);
	free(sent);
	/* the new record: readable by the containers that follow, which may
	 * run as another user; nobody else may write it, nothing executes it */
	char *rec = kt_path(x.work, ".keruta/tasks/t1/outcome.json");
	struct stat st;
	mode_t mask = umask(0);
	umask(mask);
	cr_assert_eq(stat(rec, &st), 0, "%s", rec);
	cr_expect_eq(st.st_mode & 07777, 0644 & ~mask, "mode %o", (unsigned)(st.st_mode & 07777));
	free(rec);
	free(fx);
	kt_api_stop(&api);
	kx_free(&x);
}

/* init with a repository id and no task (the seeds' init container for
 * a repository): there is no task to report progress on, and a script's
 * `keruta-agent progress` says so with exit 1 rather than pretending. */
Test(core_edges, progress_without_a_task_is_refused_to_the_script)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_api_control(&api, "/_control/seed",
	               "{\"repositories\":[{\"id\":\"repo-1\",\"url\":\"file:///nonexistent-repo\"}]}");
	kx_write(x.dir, "script.sh", "\"$1\" progress 40 half; echo \"progress=$?\"\n");
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  run: {plugin: execute, with: {argv: [/bin/sh, '%s/script.sh', '%s']}}\n",
	                   x.dir, kt_agent()) > 0);
	kx_pipeline(&x, "  init: [run]\n", stages);
	const char *args[] = {"--repository-id", "repo-1", NULL};
	kx_agent_api(&x, &api, "init", args, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.log, "progress=1"), "%s", x.log);
	cr_expect(kt_contains(x.log, "this task reports to no keruta-api"), "%s", x.log);
	free(stages);
	kt_api_stop(&api);
	kx_free(&x);
}

/* keruta-api refusing a progress report: `keruta-agent progress` says
 * why with exit 1, and the task goes on to its final status. */
Test(core_edges, progress_keruta_api_refuses_is_said_to_the_script)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\"}]}");
	kx_write(x.dir, "script.sh", "\"$1\" progress 30 a third; echo \"progress=$?\"\n");
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  run: {plugin: execute, with: {argv: [/bin/sh, '%s/script.sh', '%s']}}\n",
	                   x.dir, kt_agent()) > 0);
	kx_pipeline(&x, "  execute: [run]\n", stages);
	kx_api_control(&api, "/_control/fault",
	               "{\"match\":{\"method\":\"PUT\",\"path_regex\":\"/tasks/t1/status$\"},"
	               "\"action\":\"status\",\"code\":400,\"times\":1,\"skip\":1}");
	const char *args[] = {"--task-id", "t1", NULL};
	kx_agent_api(&x, &api, "execute", args, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.r.out, "progress=1"), "%s", x.log);
	cr_expect(kt_contains(x.log, "keruta-agent progress: error: keruta-api did not take the "
	                             "progress: "),
	          "%s", x.log);
	char *sent = statuses(&api, "t1");
	cr_expect(kt_contains(sent, "COMPLETED"), "%s", sent);
	free(sent);
	free(stages);
	kt_api_stop(&api);
	kx_free(&x);
}

/* The channel checks what it is sent, not only what the `keruta-agent
 * progress` client checks: a script may write to the socket itself. */
static const char raw_progress[] =
        "import os, socket\n"
        "def ask(label, data):\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    s.connect(os.environ['KERUTA_AGENT_SOCKET'])\n"
        "    s.sendall(data)\n"
        "    s.shutdown(socket.SHUT_WR)\n"
        "    print('%s=%s' % (label, s.recv(4096).decode().strip()), flush=True)\n"
        "    s.close()\n"
        "ask('over', b'{\"cmd\": \"progress\", \"percent\": \"101\"}')\n"
        "ask('under', b'{\"cmd\": \"progress\", \"percent\": \"-1\"}')\n"
        "ask('half', b'{\"cmd\": \"progress\", \"percent\": \"50\", \"message\": \"half way\"}')\n"
        "ask('full', b'{\"cmd\": \"progress\", \"percent\": \"100\"}')\n"
        "ask('unknown', b'{\"cmd\": \"nope\"}')\n";

Test(core_edges, the_channel_takes_progress_from_0_to_100_only)
{
	kx x;
	kx_setup(&x);
	kx_write(x.dir, "client.py", raw_progress);
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  run: {plugin: execute, with: {argv: [python3, '%s/client.py']}}\n",
	                   x.dir) > 0);
	kx_pipeline(&x, "  execute: [run]\n", stages);
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.events, "over=error: PERCENT must be a whole number from 0 to 100"),
	          "%s", x.events);
	cr_expect(kt_contains(x.events, "under=error: PERCENT must be a whole number from 0 to 100"),
	          "%s", x.events);
	cr_expect(kt_contains(x.events, "half=ok"), "%s", x.events);
	cr_expect(kt_contains(x.events, "full=ok"), "%s", x.events);
	cr_expect(kt_contains(x.log, "progress 50%: half way"), "%s", x.log);
	cr_expect(kt_contains(x.events, "unknown=error: unknown request 'nope'"), "%s", x.events);
	free(stages);
	kx_free(&x);
}

Test(core_edges, read_file_of_a_missing_file_fails_the_stage_with_the_reason)
{
	kx x;
	kx_setup(&x);
	char *with = NULL;
	cr_assert(asprintf(&with, "action: read, file: '%s/missing', limit: 1KiB", x.dir) > 0);
	fx_pipeline(&x, "execute", with);
	char *fx = fixtures();
	const char *args[] = {"--plugin-dir", fx, NULL};
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 1, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.termtext, "\"reason\":\"read: No such file or directory\""), "%s",
	          x.termtext);
	cr_expect(!kt_contains(x.log, "read 0 bytes"), "%s", x.log);
	free(with);
	free(fx);
	kx_free(&x);
}

Test(core_edges, a_stray_argument_to_render_is_a_usage_error)
{
	const char *argv[] = {kt_agent(), "render", "stray", "--log-format", "text", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 60), 0);
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "unexpected argument 'stray' (see render --help)"), "%s", r.err);
	kt_result_free(&r);
}

/* `keruta-agent ARGS...` with env is refused with exit 2 and needle on
 * stderr (JSON when json is set: every line of it then is). */
static void usage_error(const char *const *args, const char *const *env, int json,
                        const char *needle)
{
	const char *argv[16] = {kt_agent()};
	int n = 1;
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, env, NULL, NULL, 60), 0);
	cr_expect_eq(r.status, 2, "%s: exit %d: %s", args[0] ? args[0] : "(none)", r.status, r.err);
	cr_expect(kt_contains(r.err, needle), "'%s' not in: %s", needle, r.err);
	if (json)
		cr_expect(r.err[0] == '{' && kt_contains(r.err, "\"level\":\"ERROR\""), "%s", r.err);
	cr_expect_eq(r.out[0], '\0', "%s", r.out);
	kt_result_free(&r);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The commands and forms a person rarely types still fail clearly. */
Test(core_edges, rarely_used_commands_refuse_bad_use_with_exit_2)
{
	const char *none[] = {NULL};
	usage_error(none, ARGS("KERUTA_LOG_FORMAT=text"), 0, "Usage: keruta-agent COMMAND [OPTIONS]");
	usage_error(none, ARGS("KERUTA_LOG_FORMAT=json"), 1, "no command given; see keruta-agent --help");
	usage_error(ARGS("nosuch", "--log-format=json"), ARGS("KERUTA_LOG_FORMAT=text"), 1,
	            "unknown command 'nosuch'; see keruta-agent --help");
	usage_error(ARGS("validate", "--no-such-option", "--log-format", "text"), NULL, 0,
	            "unknown option '--no-such-option' (see --help)");
	usage_error(ARGS("plugins", "--no-such-option", "--log-format", "text"), NULL, 0,
	            "unknown option '--no-such-option' (see --help)");
	usage_error(ARGS("render", "--pipeline", "/nonexistent/p.yaml", "--log-format", "text"), NULL,
	            0, "cannot read /nonexistent/p.yaml: No such file or directory");
}

/* `validate` with nothing named checks the installed pipeline file. */
Test(core_edges, validate_without_a_file_reads_the_installed_pipeline)
{
	const char *argv[] = {kt_agent(), "validate", "--log-format", "text", NULL};
	const char *env[] = {"KERUTA_PIPELINE", "KERUTA_TASK_FILE", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, env, NULL, NULL, 60), 0);
	if (r.status == 0) {
		kt_result_free(&r);
		cr_skip_test("a pipeline file is installed on this machine");
	}
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "/keruta-agent/pipeline.yaml: No such file or directory"), "%s",
	          r.err);
	kt_result_free(&r);
}

/* `--` ends the options: a --help after it is an argument, which a task
 * command does not take. */
Test(core_edges, help_after_double_dash_is_an_argument)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'touch ran']}}\n");
	const char *args[] = {"--", "--help", NULL};
	kx_agent(&x, "execute", args, NULL);
	cr_expect_eq(x.r.status, 2, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.r.err, "unexpected argument '--help' (see execute --help)"), "%s",
	          x.log);
	cr_expect(!kt_contains(x.r.out, "Usage:"), "help was shown: %s", x.r.out);
	cr_expect(!kx_exists(x.work, "ran"), "the task ran");
	kx_free(&x);
}

/* `--work-dir "$DIR"` with DIR unset: an empty work dir is refused, not
 * taken as the current directory for the task and as / for the agent's
 * own files (which put .keruta/ in the root of the file system). */
Test(core_edges, an_empty_work_dir_is_refused)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'touch ran']}}\n");
	const char *argv[] = {kt_agent(), "execute", "--pipeline", x.pipeline, "--task-file", x.task,
	                      "--work-dir", "", "--termination-log", x.term, "--log-format", "text",
	                      NULL};
	const char *env[] = {"KERUTA_WORK_DIR", "KERUTA_EVENTS_FILE", "KERUTA_ARTIFACTS_DIR", NULL};
	cr_assert_eq(kt_run(&x.r, argv, env, x.dir, NULL, 60), 0);
	cr_expect_eq(x.r.status, 2, "exit %d: %s", x.r.status, x.r.err);
	cr_expect(kt_contains(x.r.err, "the work dir is empty (flag); give the directory the task "
	                               "works in"),
	          "%s", x.r.err);
	cr_expect(!kx_exists(x.dir, "ran"), "the task ran in the current directory");
	kx_free(&x);
}

Test(core_edges, double_dash_version_prints_the_versions)
{
	const char *argv[] = {kt_agent(), "--version", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 60), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strncmp(r.out, "keruta-agent ", 13) == 0 && kt_contains(r.out, " (plugin ABI "),
	          "%s", r.out);
	cr_expect(kt_contains(r.out, "libyaml "), "%s", r.out);
	kt_result_free(&r);
}

/* The local backend's events file appends across runs; each run marks
 * its start once. */
Test(core_edges, each_local_run_marks_its_start_once)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'echo one; echo two']}}\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect_eq(kt_count(x.events, "\"type\":\"run-start\""), 1, "%s", x.events);
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(kt_count(x.events, "\"type\":\"run-start\""), 2, "%s", x.events);
	kx_free(&x);
}

/* A document stage's max_size bounds what the local backend copies or
 * writes: a file of exactly the limit passes, one byte more does not, and
 * inline text over it is refused too. */
static void local_limit(const char *task, int want, const char *needle)
{
	kx x;
	kx_setup(&x);
	kx_write(x.dir, "doc8.md", "12345678");
	kx_write(x.dir, "doc9.md", "123456789");
	kt_write_file(x.task, task);
	kx_pipeline(&x, "  init: [document]\n", "  document: {plugin: document, with: {max_size: 8}}\n");
	const char *args[] = {"--document-id", "a", NULL};
	kx_agent(&x, "init", args, NULL);
	cr_expect_eq(x.r.status, want, "exit %d for %s: %s", x.r.status, task, x.log);
	if (needle)
		cr_expect(kt_contains(x.log, needle), "'%s' not in: %s", needle, x.log);
	kx_free(&x);
}

Test(core_edges, local_documents_keep_the_size_limit)
{
	local_limit("id: t-1\ndocuments:\n  - {id: a, name: a.md, path: doc8.md}\n", 0, NULL);
	local_limit("id: t-1\ndocuments:\n  - {id: a, name: a.md, path: doc9.md}\n", 1,
	            "larger than the limit of 8 bytes");
	local_limit("id: t-1\ndocuments:\n  - {id: a, name: a.md, content: '123456789'}\n", 1,
	            "inline content of 9 bytes is over the limit of 8");
	local_limit("id: t-1\ndocuments:\n  - {id: a, name: a.md, content: '12345678'}\n", 0, NULL);
}

/* The upload record names each artifact by the SHA-256 of its content,
 * as sha256sum prints it, so a retried collect sends only what changed. */
Test(core_edges, the_upload_record_holds_the_sha256_of_each_artifact)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [run, collect]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, "
	            "'printf \"hello\\\\n\" > .keruta/doc/hello.txt; "
	            "head -c 1000 /dev/zero > .keruta/doc/zeros.bin']}}\n"
	            "  collect: {plugin: collect}\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	char *record = kx_read(x.work, ".keruta/tasks/t-1/uploads", NULL);
	cr_assert(record, "no upload record: %s", x.log);
	cr_expect(kt_contains(record, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 6 "),
	          "%s", record);
	cr_expect(kt_contains(record, "541b3e9daa09b20bf85fa273e5cbd3e80185aa4ec298e765db87742b70138a53 1000 "),
	          "%s", record);
	free(record);
	kx_free(&x);
}

/* The upload record is a help, not a condition: when it cannot be opened
 * (a directory stands there) or appended to (the file is over the
 * agent's file size limit), the artifact still goes and the log says
 * that a second collect would send it again. */
static const char record_stages[] =
        "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'echo a > .keruta/doc/a.txt']}}\n"
        "  collect: {plugin: collect}\n";

Test(core_edges, an_upload_record_that_cannot_be_opened_does_not_stop_the_upload)
{
	kx x;
	kx_setup(&x);
	free(kx_mk(x.work, ".keruta/tasks/t-1/uploads/x")); /* makes uploads/ a directory */
	kx_pipeline(&x, "  execute: [run, collect]\n", record_stages);
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.log, "cannot open the upload record: Is a directory; artifact a.txt "
	                             "is uploaded without an upload record"),
	          "%s", x.log);
	char *art = kx_read(x.arts, "a.txt", NULL);
	cr_expect_str_eq(art ? art : "(not copied)", "a\n", "%s", x.log);
	free(art);
	kx_free(&x);
}

Test(core_edges, an_upload_record_that_cannot_grow_does_not_stop_the_upload)
{
	kx x;
	kx_setup(&x);
	/* 40 KiB of lines that name nothing, over the 32 KiB limit below;
	 * every other file the agent writes stays under it */
	char junk[40 * 1024 + 1];
	for (size_t i = 0; i + 8 <= sizeof(junk) - 1; i += 8)
		memcpy(junk + i, "no-name\n", 8);
	junk[sizeof(junk) - 1] = '\0';
	kx_write(x.work, ".keruta/tasks/t-1/uploads", junk);
	kx_pipeline(&x, "  execute: [run, collect]\n", record_stages);
	/* SIGXFSZ ignored: a write over the limit fails with EFBIG */
	const char *argv[] = {"/bin/sh", "-c", "trap '' XFSZ; ulimit -f 64; exec \"$@\"", "sh",
	                      kt_agent(), "execute", "--pipeline", x.pipeline, "--task-file", x.task,
	                      "--work-dir", x.work, "--termination-log", x.term,
	                      "--artifacts-dir", x.arts, "--events-file", x.evpath,
	                      "--log-format", "text", NULL};
	const char *env[] = {"KERUTA_TASK_ID", "KERUTA_WORK_DIR", "KERUTA_BACKEND", "KERUTA_API_URL",
	                     NULL};
	cr_assert_eq(kt_run(&x.r, argv, env, x.dir, NULL, 60), 0);
	cr_expect_eq(x.r.status, 0, "exit %d: %s", x.r.status, x.r.err);
	cr_expect(kt_contains(x.r.err, "artifact a.txt was uploaded but cannot be recorded in "),
	          "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "/.keruta/tasks/t-1/uploads: File too large; a second "
	                               "collect would send it again"),
	          "%s", x.r.err);
	char *art = kx_read(x.arts, "a.txt", NULL);
	cr_expect_str_eq(art ? art : "(not copied)", "a\n", "%s", x.r.err);
	free(art);
	kx_free(&x);
}

/* The task's area is refused, not half used: an id that cannot name a
 * directory, and a .keruta that is a file. */
Test(core_edges, a_task_id_that_cannot_name_a_directory_fails_before_the_script)
{
	kx x;
	kx_setup(&x);
	kt_write_file(x.task, "id: '..'\n");
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'touch ran']}}\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 1, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.log, "task id '..' cannot name a directory"), "%s", x.log);
	cr_expect(!kx_exists(x.work, "ran"), "the script ran");
	kx_free(&x);
}

Test(core_edges, a_keruta_file_in_the_work_dir_fails_the_stage_saying_so)
{
	kx x;
	kx_setup(&x);
	kx_write(x.work, ".keruta", "a file of the repository\n");
	kx_pipeline(&x, "  execute: [run]\n",
	            "  run: {plugin: execute, with: {argv: [/bin/sh, -c, 'touch ran']}}\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_expect_eq(x.r.status, 1, "exit %d: %s", x.r.status, x.log);
	cr_expect(kt_contains(x.log, "/.keruta is not a directory (a symlink or file in the "
	                             "repository?)"),
	          "%s", x.log);
	cr_expect(!kx_exists(x.work, "ran"), "the script ran");
	kx_free(&x);
}
