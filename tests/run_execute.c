/*
 * run_execute.c - the execute stage end to end: the real keruta-agent in
 * local mode (`execute --task-file ... --pipeline ...`), real child
 * processes, the events file and the termination log as evidence.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_common.h"

static char *read_work(kf *r, const char *name)
{
	char *p = kt_path(r->work, name);
	char *s = kt_read_file(p, NULL);
	free(p);
	return s;
}

Test(run_execute, env_vars_present_and_long_values_cut)
{
	kf r;
	size_t dlen = 5000;
	char *desc = malloc(dlen + 1);
	memset(desc, 'd', dlen);
	memcpy(desc + dlen - 3, "END", 3);
	desc[dlen] = '\0';
	char *task;
	cr_assert(asprintf(&task,
	                   "id: t-42\ntitle: \"Fix: the bug\"\ndescription: %s\npriority: 7\n"
	                   "status: PENDING\ncreatedAt: 2024-01-02T03:04:05Z\n"
	                   "updatedAt: 2024-01-03T00:00:00Z\nparentTaskId: t-41\n"
	                   "env:\n  FOO: bar baz\n  BIG: %s\n",
	                   desc, desc) > 0);
	kf_init(&r, task);
	rt_simple_pipeline(&r,
	                   "      env_max: 1KiB\n"
	                   "      command: |\n"
	                   "        env | grep -E '^(KERUTA_TASK_|KERUTA_PARENT_|KERUTA_REPOSITORY_ID|FOO=|BIG)' |\n"
	                   "          grep -v DESCRIPTION= | sort > env.out\n"
	                   "        printf '%s' \"$KERUTA_TASK_DESCRIPTION\" > desc.out\n"
	                   "        cat \"$KERUTA_TASK_DESCRIPTION_FILE\" > descfull.out\n"
	                   "        printf '%s' \"$BIG\" > big.out\n"
	                   "        pwd > pwd.out\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_assert_eq(res.status, 0, "agent failed: %s", res.err);

	char *env = read_work(&r, "env.out");
	cr_assert(env);
	cr_expect(kt_contains(env, "KERUTA_TASK_ID=t-42\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_TASK_TITLE=Fix: the bug\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_TASK_PRIORITY=7\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_TASK_STATUS=PENDING\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_TASK_CREATED_AT=2024-01-02T03:04:05Z\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_TASK_UPDATED_AT=2024-01-03T00:00:00Z\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_PARENT_TASK_ID=t-41\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_REPOSITORY_ID=\n"), "unset fields are empty: %s", env);
	cr_expect(kt_contains(env, "FOO=bar baz\n"), "%s", env);
	cr_expect(kt_contains(env, "KERUTA_TASK_DESCRIPTION_FILE="), "%s", env);
	cr_expect(kt_contains(env, "BIG_FILE="), "%s", env);

	size_t cut_len;
	char *p = kt_path(r.work, "desc.out");
	char *cut = kt_read_file(p, &cut_len);
	free(p);
	cr_assert(cut);
	cr_expect(cut_len < 1200 && cut_len > 1024, "cut value is %zu bytes", cut_len);
	cr_expect(strncmp(cut, desc, 1024) == 0);
	cr_expect(kt_contains(cut, "[truncated, full text in $KERUTA_TASK_DESCRIPTION_FILE]"), "%s",
	          cut);
	char *full = read_work(&r, "descfull.out");
	cr_assert(full);
	cr_expect_str_eq(full, desc);
	char *big = read_work(&r, "big.out");
	cr_expect(kt_contains(big, "[truncated, full text in $BIG_FILE]"));
	char *pwd = read_work(&r, "pwd.out");
	cr_expect(pwd && strncmp(pwd, r.work, strlen(r.work)) == 0, "ran in %s", pwd);

	free(pwd), free(big), free(full), free(cut), free(env), free(task), free(desc);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, task_script_is_written_and_run)
{
	kf r;
	kf_init(&r, "id: t-1\nscript: |\n  echo from-script\n  echo \"id=$KERUTA_TASK_ID\"\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "from-script\nid=t-1\n"), "%s", res.out);
	struct stat st;
	char *sh = kt_path(r.work, ".keruta/tasks/t-1/execute.sh");
	cr_assert_eq(stat(sh, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0700);
	char *status = rt_final_status(&r);
	cr_expect(status && strncmp(status, "COMPLETED", 9) == 0, "%s", status);
	free(status);
	free(sh);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, argv_list_runs_without_a_shell)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r, "      argv: [/bin/echo, \"a  b\", \"$HOME\"]\n", NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "a  b $HOME\n"), "%s", res.out);
	kt_result_free(&res);
	kf_free(&r);
}

/* --run-as as a uid alone (its group from the password database) or as
 * uid:gid: the task runs with exactly that user and group, keeping no
 * group of the agent's (root's group 0 least of all). */
Test(run_execute, run_as_takes_exactly_the_user_and_group_given)
{
	if (geteuid() != 0)
		cr_skip_test("run_as needs the tests to run as root");
	static const struct {
		const char *spec, *want;
	} cases[] = {{"65534", "ids 65534 65534 65534\n"}, {"65534:65533", "ids 65534 65533 65533\n"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kf r;
		kf_init(&r, NULL);
		cr_assert(chmod(r.dir, 0755) == 0 && chmod(r.work, 0777) == 0);
		rt_simple_pipeline(&r, "      argv: [/bin/sh, -c, 'echo ids $(id -u) $(id -g) $(id -G)']\n",
		                   NULL);
		const char *const args[] = {"--run-as", cases[i].spec, NULL};
		kt_result res;
		cr_assert_eq(kf_run(&r, &res, "execute", args, NULL, 60), 0);
		cr_expect_eq(res.status, 0, "%s: %s", cases[i].spec, res.err);
		cr_expect(kt_contains(res.out, cases[i].want), "--run-as %s gave: %s", cases[i].spec,
		          res.out);
		kt_result_free(&res);
		kf_free(&r);
	}
}

Test(run_execute, task_command_runs_in_place_of_the_script)
{
	kf r;
	kf_init(&r, "id: t-cmd\nscript: echo from-script\n"
	            "command: [/bin/sh, -c, 'echo \"id=$KERUTA_TASK_ID secret=$MY_SECRET\"; exit 3']\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n"
	               "settings:\n  secrets: [MY_SECRET]\n");
	const char *env[] = {"MY_SECRET=hunter2-long-secret", NULL};
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, env, 60), 0);
	cr_expect_eq(res.status, 1, "%s", res.err);
	cr_expect(kt_contains(res.out, "id=t-cmd secret=***\n"), "env and masking: %s", res.out);
	cr_expect(!kt_contains(res.out, "from-script"), "the script does not run: %s", res.out);
	rt_line *l;
	size_t n = rt_lines(&r, "stdout", &l);
	cr_assert_eq(n, 1, "the command's output is shipped as the task's log");
	cr_expect_str_eq(l[0].text, "id=t-cmd secret=***");
	rt_lines_free(l, n);
	char *status = rt_final_status(&r);
	cr_expect(status && strncmp(status, "FAILED", 6) == 0 && kt_contains(status, "exit code 3"),
	          "%s", status);
	free(status);
	char *sh = kt_path(r.work, ".keruta/tasks/t-cmd/execute.sh");
	cr_expect_neq(access(sh, F_OK), 0, "no script written");
	free(sh);
	kt_result_free(&res);
	kf_free(&r);

	kf_init(&r, "id: t-cmd2\ncommand: [/bin/echo, \"a  b\", \"$HOME\"]\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "a  b $HOME\n"), "no shell: %s", res.out);
	status = rt_final_status(&r);
	cr_expect(status && strncmp(status, "COMPLETED", 9) == 0, "%s", status);
	free(status);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, task_command_that_is_not_a_list_fails_clearly)
{
	kf r;
	kf_init(&r, "id: t-bad\ncommand: echo hi\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_neq(res.status, 0);
	/* the task file's own check finds it first, with its line and column */
	cr_expect(kt_contains(res.err, "task.yaml:2:10: 'command' must be a list"), "%s", res.err);
	cr_expect(!kt_contains(res.out, "hi\n"), "%s", res.out);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, no_command_and_no_script_fails_clearly)
{
	kf r;
	kf_init(&r, NULL);
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1);
	cr_expect(kt_contains(res.err, "no execute script"), "%s", res.err);
	kt_result_free(&res);
	kf_free(&r);
}

/* A file the agent cannot remove (immutable) where the task's area or its
 * env/ directory belongs: the stage fails, naming it, rather than run the
 * command without its area or without a variable. */
static void blocked_area_run(const char *task_yaml, const char *with, const char *blocked,
                             const char *named)
{
	kf r;
	kf_init(&r, task_yaml);
	rt_simple_pipeline(&r, with, NULL);
	char *path = kt_path(r.work, blocked), *mk = NULL;
	cr_assert(asprintf(&mk, "mkdir -p \"$(dirname '%s')\" && echo file > '%s'", path, path) > 0);
	cr_assert_eq(system(mk), 0);
	if (kt_immutable(path, 1) != 0) {
		kf_free(&r);
		cr_skip_test("needs root and a file system with the immutable attribute (chattr +i)");
	}
	kt_result res;
	int rc = kf_run(&r, &res, "execute", NULL, NULL, 60);
	kt_immutable(path, 0);
	cr_assert_eq(rc, 0);
	cr_expect_eq(res.status, 1, "%s", res.err);
	cr_expect(kt_contains(res.err, named), "%s", res.err);
	char *ran = kt_path(r.work, "ran.out");
	cr_expect_neq(access(ran, F_OK), 0, "the command ran:\n%s", res.err);
	kt_result_free(&res);
	free(path), free(mk), free(ran);
	kf_free(&r);
}

Test(run_execute, task_area_that_cannot_be_made_fails_before_the_command)
{
	blocked_area_run("id: t1\n", "      command: touch ran.out\n", ".keruta/tasks/t1",
	                 ".keruta/tasks/t1");
}

Test(run_execute, long_value_without_an_env_dir_fails_before_the_command)
{
	char big[201];
	memset(big, 'b', 200);
	big[200] = '\0';
	char *task = NULL;
	cr_assert(asprintf(&task, "id: t1\nenv:\n  BIG: %s\n", big) > 0);
	blocked_area_run(task, "      env_max: 64\n      command: touch ran.out\n",
	                 ".keruta/tasks/t1/env", "env");
	free(task);
}

Test(run_execute, missing_program_fails_clearly)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r, "      argv: [no-such-program-xyz, a]\n", NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1);
	cr_expect(kt_contains(res.err, "cannot run 'no-such-program-xyz'"), "%s", res.err);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, failure_runs_always_stage_and_reports_exit_code)
{
	kf r;
	kf_init(&r, NULL);
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute, mark, skipped]\n"
	               "stages:\n"
	               "  execute: {plugin: execute, with: {command: 'echo before; exit 3'}}\n"
	               "  mark: {plugin: run_always, when: always}\n"
	               "  skipped: {plugin: execute, with: {command: 'touch skipped.out'}}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1, "%s", res.err);

	char *mark = read_work(&r, ".keruta/always.txt");
	cr_assert(mark, "the when: always stage did not run: %s", res.err);
	cr_expect(kt_contains(mark, "failed_stage=execute\n"), "%s", mark);
	cr_expect(kt_contains(mark, "exit code 3"), "%s", mark);
	cr_expect(kt_contains(mark, "exit_code=3\n"), "%s", mark);
	char *skipped = read_work(&r, "skipped.out");
	cr_expect_null(skipped);

	char *status = rt_final_status(&r);
	cr_assert(status);
	cr_expect(strncmp(status, "FAILED\t", 7) == 0, "%s", status);
	cr_expect(kt_contains(status, "exit code 3"), "%s", status);

	char *term = kt_read_file(r.term, NULL);
	cr_assert(term, "no termination log");
	cr_expect(kt_contains(term, "\"status\":\"FAILED\""), "%s", term);
	cr_expect(kt_contains(term, "\"exitCode\":3"), "%s", term);
	cr_expect(kt_contains(term, "exit code 3"), "%s", term);
	free(term), free(status), free(mark);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, success_writes_termination_log)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r, "      command: 'exit 0'\n", NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	char *term = kt_read_file(r.term, NULL);
	cr_assert(term);
	cr_expect(kt_contains(term, "\"status\":\"COMPLETED\""), "%s", term);
	cr_expect(kt_contains(term, "\"exitCode\":0"), "%s", term);
	free(term);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, signal_death_is_named)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r, "      command: 'kill -SEGV $$'\n", NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1);
	char *term = kt_read_file(r.term, NULL);
	cr_expect(kt_contains(term, "killed by signal 11"), "%s", term);
	cr_expect(kt_contains(term, "\"exitCode\":139"), "%s", term);
	free(term);
	kt_result_free(&res);
	kf_free(&r);
}

/* The OOM killer cannot be called on demand here: the test points the
 * runner at a fake memory.events (KERUTA_CGROUP_MEMORY_EVENTS) whose
 * oom_kill counter the child raises just before it SIGKILLs itself, which
 * is what the kernel's counter does for a real OOM kill. */
Test(run_execute, oom_kill_is_reported_as_out_of_memory)
{
	kf r;
	kf_init(&r, NULL);
	char *ev = kt_path(r.dir, "memory.events");
	kt_write_file(ev, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
	rt_simple_pipeline(&r,
	                   "      command: 'printf \"low 0\\nhigh 0\\nmax 3\\noom 1\\noom_kill 1\\n\" > "
	                   "\"$KERUTA_CGROUP_MEMORY_EVENTS\"; kill -KILL $$'\n",
	                   NULL);
	char *env_ev;
	cr_assert(asprintf(&env_ev, "KERUTA_CGROUP_MEMORY_EVENTS=%s", ev) > 0);
	const char *env[] = {env_ev, NULL};
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, env, 60), 0);
	cr_expect_eq(res.status, 1);
	char *status = rt_final_status(&r);
	cr_expect(kt_contains(status, "out of memory (OOM killer)"), "%s", status);

	/* the same death without the counter moving is a plain signal */
	kt_write_file(ev, "oom_kill 0\n");
	rt_simple_pipeline(&r, "      command: 'kill -KILL $$'\n", NULL);
	kt_result res2;
	cr_assert_eq(kf_run(&r, &res2, "execute", NULL, env, 60), 0);
	char *status2 = rt_final_status(&r);
	cr_expect(!kt_contains(status2, "out of memory"), "%s", status2);
	cr_expect(kt_contains(status2, "killed by signal 9"), "%s", status2);
	free(status2), free(status), free(env_ev), free(ev);
	kt_result_free(&res2);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, grandchildren_are_killed_and_reaped)
{
	kf r;
	kf_init(&r, NULL);
	/* one in the group, one that ignores SIGTERM, one in its own session,
	 * one double-forked daemon; all keep the output pipes open */
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        sleep 300 & echo $! > g1.pid\n"
	                   "        (trap '' TERM; exec sleep 300) & echo $! > g2.pid\n"
	                   "        setsid sh -c 'echo $$ > g3.tmp; mv g3.tmp g3.pid; exec sleep 300' &\n"
	                   "        ( (setsid sh -c 'echo $$ > g4.tmp; mv g4.tmp g4.pid; exec sleep 300' &) & )\n"
	                   "        while [ ! -f g3.pid ] || [ ! -f g4.pid ]; do sleep 0.05; done\n"
	                   "        echo spawned\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_assert(!res.timed_out, "the agent waited for the grandchildren");
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "spawned\n"));
	const char *names[] = {"g1.pid", "g2.pid", "g3.pid", "g4.pid"};
	for (int i = 0; i < 4; i++) {
		pid_t pid = rt_read_pid(&r, names[i]);
		cr_assert(pid > 0, "%s missing", names[i]);
		if (rt_alive(pid))
			kill(pid, SIGKILL);
		cr_expect(!rt_alive(pid), "%s (pid %d) outlived the agent or was not reaped",
		          names[i], (int)pid);
	}
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, command_ignoring_sigterm_is_killed_after_grace)
{
	kf r;
	kf_init(&r, NULL);
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\nstages:\n"
	               "  execute:\n    plugin: execute\n    timeout: 1s\n"
	               "    with:\n      command: |\n"
	               "        trap '' TERM\n"
	               "        echo $$ > sh.pid\n"
	               "        while :; do sleep 1; done\n");
	kt_result res;
	const char *args[] = {"--grace-period", "1s", NULL};
	cr_assert_eq(kf_run(&r, &res, "execute", args, NULL, 60), 0);
	cr_assert(!res.timed_out);
	cr_expect_eq(res.status, 1);
	char *term = kt_read_file(r.term, NULL);
	cr_expect(kt_contains(term, "timed out after 1"), "%s", term);
	cr_expect(kt_contains(term, "signal 9"), "%s", term);
	pid_t sh = rt_read_pid(&r, "sh.pid");
	cr_expect(sh > 0 && !rt_alive(sh));
	free(term);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, with_timeout_stops_the_command)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r, "      timeout: 1s\n      command: 'sleep 30'\n", NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_assert(!res.timed_out);
	cr_expect_eq(res.status, 1);
	char *status = rt_final_status(&r);
	cr_expect(kt_contains(status, "did not finish within 1s"), "%s", status);
	free(status);
	kt_result_free(&res);
	kf_free(&r);
}

/* Read from fd until `needle` appears or timeout; returns what was read. */
static char *read_until(int fd, const char *needle, int timeout_ms)
{
	size_t cap = 65536, n = 0;
	char *buf = calloc(1, cap);
	for (int waited = 0; waited < timeout_ms && !strstr(buf, needle);) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, 100) <= 0) {
			waited += 100;
			continue;
		}
		ssize_t got = read(fd, buf + n, cap - n - 1);
		if (got <= 0)
			break;
		n += (size_t)got;
		buf[n] = '\0';
	}
	return buf;
}

/* Start the agent, wait for the command's "ready", send SIGTERM, wait for
 * the agent to exit; returns what stdout held up to "ready". */
static char *run_until_ready_then_sigterm(kf *r, const char *grace, kt_result *res)
{
	const char *args[] = {"--grace-period", grace, NULL};
	int out_fd, err_fd;
	pid_t pid = kf_spawn(r, "execute", args, NULL, &out_fd, &err_fd);
	cr_assert(pid > 0);
	char *seen = read_until(out_fd, "ready\n", 30000);
	cr_assert(kt_contains(seen, "ready\n"), "the command never said ready: %s", seen);
	kill(pid, SIGTERM);
	cr_assert_eq(kt_wait(res, pid, out_fd, err_fd, 30), 0);
	cr_assert(!res->timed_out, "the agent did not exit after SIGTERM");
	return seen;
}

static void sigterm_mid_run(const char *command_block, const char *grace, const char *expect_line)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r, command_block, NULL);
	kt_result res;
	char *seen = run_until_ready_then_sigterm(&r, grace, &res);
	cr_expect_eq(res.status, 1, "%s", res.err);
	char *status = rt_final_status(&r);
	cr_assert(status, "no final status; stderr: %s", res.err);
	cr_expect(strncmp(status, "FAILED\t", 7) == 0, "%s", status);
	cr_expect(kt_contains(status, "terminated"), "%s", status);
	rt_line *lines;
	size_t n = rt_lines(&r, "stdout", &lines);
	int ready = 0, after = 0;
	for (size_t i = 0; i < n; i++) {
		ready |= strcmp(lines[i].text, "ready") == 0;
		after |= expect_line && strcmp(lines[i].text, expect_line) == 0;
	}
	cr_expect(ready, "the lines before the signal were not shipped");
	if (expect_line)
		cr_expect(after, "the line written after SIGTERM was not shipped");
	char *term = kt_read_file(r.term, NULL);
	cr_expect(kt_contains(term, "terminated"), "%s", term);
	free(term);
	rt_lines_free(lines, n);
	free(status);
	free(seen);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_execute, sigterm_to_agent_stops_the_command_and_reports)
{
	sigterm_mid_run("      command: |\n"
	                "        trap 'echo got-term; exit 143' TERM\n"
	                "        echo ready\n"
	                "        while :; do sleep 0.1; done\n",
	                "5s", "got-term");
}

Test(run_execute, sigterm_to_agent_kills_a_command_that_ignores_it)
{
	sigterm_mid_run("      command: |\n"
	                "        trap '' TERM\n"
	                "        echo ready\n"
	                "        while :; do sleep 0.2; done\n",
	                "1s", NULL);
}

/* SIGTERM in the middle of execute: a `when: always` collect still runs
 * within the grace period and saves what the task wrote so far. */
Test(run_execute, sigterm_still_runs_always_stages_within_the_grace_period)
{
	kf r;
	kf_init(&r, NULL);
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute, collect, after]\n"
	               "stages:\n"
	               "  execute:\n    plugin: execute\n    with:\n      command: |\n"
	               "        echo partial > .keruta/doc/partial.txt\n"
	               "        echo ready\n"
	               "        while :; do sleep 0.1; done\n"
	               "  collect: {plugin: collect, when: always}\n"
	               "  after: {plugin: execute, with: {command: 'touch after.out'}}\n");
	kt_result res;
	char *seen = run_until_ready_then_sigterm(&r, "10s", &res);
	cr_expect_eq(res.status, 1, "%s", res.err);
	char *art = read_work(&r, ".keruta/artifacts/partial.txt");
	cr_expect(art && strcmp(art, "partial\n") == 0,
	          "the partial artifact was not collected after SIGTERM: %s", res.err);
	cr_expect(kt_contains(res.err, "[collect] passed"), "%s", res.err);
	char *after = read_work(&r, "after.out");
	cr_expect(!after, "an on_success stage ran after SIGTERM");
	char *status = rt_final_status(&r);
	cr_expect(status && strncmp(status, "FAILED\t", 7) == 0, "%s", status ? status : "");
	free(status);
	free(after);
	free(art);
	free(seen);
	kt_result_free(&res);
	kf_free(&r);
}

/* A flood of empty lines costs its records, not its bytes: the events
 * file stays within the log budget, and the last line (the tail) is kept. */
Test(run_execute, empty_line_flood_is_bounded_by_the_log_budget)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        head -c 2000000 /dev/zero | tr '\\0' '\\n'\n"
	                   "        echo the-last-line\n",
	                   "settings:\n  log_max_total: 1MiB\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 120), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	struct stat st;
	cr_assert_eq(stat(r.evpath, &st), 0);
	cr_expect(st.st_size < 2 * 1024 * 1024,
	          "2,000,000 empty lines made an events file of %lld bytes, over the 1 MiB budget",
	          (long long)st.st_size);
	char *ev = kt_read_file(r.evpath, NULL);
	cr_expect(kt_contains(ev, "the-last-line"), "the tail was not kept");
	cr_expect(kt_contains(ev, "of output cut here"), "the cut is not marked");
	free(ev);
	kt_result_free(&res);
	kf_free(&r);
}

/* Env names that are no file names and values cut inside a UTF-8
 * sequence: the full text goes to env/<NAME with '_' for other bytes>,
 * the cut value stays valid UTF-8, and a name of the longest length the
 * task file accepts (255 bytes) still gets its file. */
Test(run_execute, long_values_under_odd_names_and_utf8_are_cut_cleanly)
{
	kf r;
	char name[256];
	memset(name, 'N', 255);
	name[255] = '\0';
	/* "é" is two bytes: at env_max 101 the cut falls inside one */
	char value[401] = "";
	for (int i = 0; i < 200; i++)
		strcat(value, "\xc3\xa9");
	char *task = NULL;
	cr_assert(asprintf(&task, "id: t-1\nenv:\n  my.var-1: \"%s\"\n  %s: \"%s\"\n", value, name,
	                   value) > 0);
	kf_init(&r, task);
	/* no shell: sh would drop a variable whose name is no shell name */
	rt_simple_pipeline(&r, "      env_max: 101\n      argv: [env]\n", NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_assert_eq(res.status, 0, "%s", res.err);
	char *want = NULL;
	cr_assert(asprintf(&want, "\nmy.var-1=%.100s\xe2\x80\xa6[truncated, full text in "
	                          "$my.var-1_FILE]\n",
	                   value) > 0);
	cr_expect(kt_contains(res.out, want), "cut at 100 bytes, not inside a character: %s",
	          res.out);
	free(want);
	cr_assert(asprintf(&want, "\nmy.var-1_FILE=%s/.keruta/tasks/t-1/env/my_var_1\n", r.work) > 0);
	cr_expect(kt_contains(res.out, want), "%s", res.out);
	free(want);
	char *full = read_work(&r, ".keruta/tasks/t-1/env/my_var_1");
	cr_expect_str_eq(full, value);
	char *longf = NULL;
	cr_assert(asprintf(&longf, ".keruta/tasks/t-1/env/%s", name) > 0);
	char *full2 = read_work(&r, longf);
	cr_expect_str_eq(full2, value);
	free(longf), free(full2), free(full), free(task);
	kt_result_free(&res);
	kf_free(&r);
}

/* A directory where the full text of a long value goes: the stage fails
 * naming it, and the command does not run with a value cut silently. */
Test(run_execute, a_directory_in_place_of_an_env_file_fails_the_stage)
{
	kf r;
	char big[300];
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char *task = NULL;
	cr_assert(asprintf(&task, "id: t-1\nenv:\n  BIG: %s\n", big) > 0);
	kf_init(&r, task);
	rt_simple_pipeline(&r, "      env_max: 100\n      command: touch ran.out\n", NULL);
	char *blocker = kt_path(r.work, ".keruta/tasks/t-1/env/BIG");
	const char *mkdirs[] = {"mkdir", "-p", blocker, NULL};
	kt_result mk;
	cr_assert_eq(kt_run(&mk, mkdirs, NULL, NULL, NULL, 30), 0);
	cr_assert_eq(mk.status, 0, "%s", mk.err);
	kt_result_free(&mk);
	char *keep = kt_path(blocker, "keep");
	kt_write_file(keep, "x\n");
	free(keep);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1, "%s", res.err);
	cr_expect(kt_contains(res.err, "cannot create ") && kt_contains(res.err, "env/BIG"), "%s",
	          res.err);
	char *ran = kt_path(r.work, "ran.out");
	cr_expect(access(ran, F_OK) != 0, "the command ran");
	free(ran), free(blocker), free(task);
	kt_result_free(&res);
	kf_free(&r);
}

/* A second SIGTERM or SIGINT while the first one's grace period runs:
 * the agent stops waiting and kills the command that ignores the first,
 * rather than leave the operator waiting out the whole period. */
Test(run_execute, a_second_signal_ends_the_grace_period)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        trap '' TERM INT\n"
	                   "        echo ready\n"
	                   "        while :; do sleep 0.2; done\n",
	                   NULL);
	const char *args[] = {"--grace-period", "10m", NULL};
	int out_fd, err_fd;
	pid_t pid = kf_spawn(&r, "execute", args, NULL, &out_fd, &err_fd);
	cr_assert(pid > 0);
	char *seen = read_until(out_fd, "ready\n", 30000);
	cr_assert(kt_contains(seen, "ready\n"), "the command never said ready: %s", seen);
	kill(pid, SIGTERM);
	char *first = read_until(err_fd, "received SIGTERM", 30000);
	cr_assert(kt_contains(first, "received SIGTERM: stopping the task (grace period 600000 ms)"),
	          "%s", first);
	kill(pid, SIGINT);
	kt_result res;
	cr_assert_eq(kt_wait(&res, pid, out_fd, err_fd, 30), 0);
	cr_assert(!res.timed_out, "the agent waited out the grace period after a second signal");
	cr_expect_eq(res.status, 1, "%s", res.err);
	char *status = rt_final_status(&r);
	cr_expect(status && strncmp(status, "FAILED\t", 7) == 0 && kt_contains(status, "terminated"),
	          "%s", status ? status : "(none)");
	free(status);
	free(first);
	free(seen);
	kt_result_free(&res);
	kf_free(&r);
}

/* SIGUSR2, whose default action ends a process, reaching the agent (from
 * the task's own code, or an operator's `kill -USR2`): the agent goes on
 * and the task completes. */
Test(run_execute, a_stray_sigusr2_does_not_stop_the_agent)
{
	kf r;
	kf_init(&r, NULL);
	rt_simple_pipeline(&r,
	                   "      command: |\n"
	                   "        kill -USR2 $PPID\n"
	                   "        sleep 0.3\n"
	                   "        echo still-here\n",
	                   NULL);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(kt_contains(res.out, "still-here\n"), "%s", res.out);
	char *status = rt_final_status(&r);
	cr_expect(status && strncmp(status, "COMPLETED", 9) == 0, "%s", status ? status : "(none)");
	free(status);
	kt_result_free(&res);
	kf_free(&r);
}
