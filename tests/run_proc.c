/*
 * run_proc.c - the process runner (core/proc.c) in process: descriptors,
 * environment, strays, timeouts and the OOM counter.  Needs the agent
 * struct only for settings and the (local) backend.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "krtest.h"
#include "proc.h"
#include "proc_oom.h"
#include "supervise.h"

static kr_agent A;
static char *dir;

static void setup(void)
{
	memset(&A, 0, sizeof(A));
	kr_reason_init(&A.reason);
	dir = kt_tmpdir();
	kr_error err = {0};
	A.settings = kr_settings_new();
	kr_settings_set(A.settings, KR_S_WORK_DIR, dir);
	char *ev = kt_path(dir, "events.jsonl");
	kr_settings_set(A.settings, KR_S_EVENTS_FILE, ev);
	free(ev);
	cr_assert_eq(kr_settings_finish(A.settings, &err), 0, "%s", err.msg);
	A.backend = kr_backend_local_create(A.settings, &err);
	cr_assert(A.backend);
	A.task = kr_task_new();
	kr_task_set_agent(A.task, &A);
	kr_task_set(A.task, KR_TASK_WORK_DIR, dir);
	cr_assert_eq(kr_supervise_start(500), 0);
}

static void teardown(void)
{
	kr_supervise_stop();
	A.backend->ops->destroy(A.backend);
	kr_task_free(A.task);
	kr_settings_free(A.settings);
	kt_rmrf(dir);
	free(dir);
}

TestSuite(run_proc, .init = setup, .fini = teardown, .timeout = 60);

static int run(const char *const *argv, const char *cwd, const char *const *env, uint32_t flags,
               uint64_t timeout_ms, kr_process_result *r)
{
	kr_process p = {.size = sizeof(p), .argv = argv, .cwd = cwd, .env = env,
	                .timeout_ms = timeout_ms, .flags = flags, .label = "test"};
	return kr_proc_run(&A, A.task, &p, r);
}

static int sh(const char *script, uint32_t flags, kr_process_result *r)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	return run(argv, NULL, NULL, flags, 0, r);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static char *read_in_dir(const char *name)
{
	char *p = kt_path(dir, name);
	char *s = kt_read_file(p, NULL);
	free(p);
	return s;
}

Test(run_proc, no_descriptor_leaks_in_the_agent)
{
	kr_process_result r;
	cr_assert_eq(sh("echo warm-up", KR_PROC_CAPTURE, &r), KR_OK); /* opens the events file */
	int before = count_fds();
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(sh("echo out; echo err >&2", KR_PROC_CAPTURE, &r), KR_OK);
		cr_assert_eq(sh("echo quiet", KR_PROC_QUIET, &r), KR_OK);
		cr_assert_eq(sh("exit 4", KR_PROC_CAPTURE, &r), KR_OK);
		cr_expect_eq(r.exit_code, 4);
		cr_assert_eq(sh("sleep 300 & setsid sleep 300 & echo started", KR_PROC_CAPTURE, &r),
		             KR_OK);
		const char *bad[] = {"/nonexistent/program", NULL};
		cr_expect_eq(run(bad, NULL, NULL, KR_PROC_CAPTURE, 0, &r), KR_FAILED);
		cr_expect(kt_contains(A.reason.text, "cannot run"), "%s", A.reason.text);
		const char *ok[] = {"true", NULL};
		cr_expect_eq(run(ok, "/nonexistent-dir", NULL, KR_PROC_CAPTURE, 0, &r), KR_FAILED);
		cr_expect(kt_contains(A.reason.text, "cannot enter the directory"), "%s", A.reason.text);
	}
	cr_expect_eq(count_fds(), before, "descriptors before %d, after %d", before, count_fds());
}

Test(run_proc, child_gets_only_standard_descriptors)
{
	int leaky = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, as a careless library would */
	cr_assert_geq(leaky, 3);
	kr_process_result r;
	cr_assert_eq(sh("exec ls /proc/self/fd > fds.txt", KR_PROC_CAPTURE, &r), KR_OK);
	cr_assert_eq(r.exit_code, 0);
	char *fds = read_in_dir("fds.txt");
	cr_expect_str_eq(fds, "0\n1\n2\n3\n"); /* 3: ls's own directory */
	cr_assert_eq(sh("exec cat > stdin.txt", KR_PROC_CAPTURE, &r), KR_OK);
	char *in = read_in_dir("stdin.txt");
	cr_expect_str_eq(in, "", "stdin is not /dev/null");
	free(in);
	free(fds);
	close(leaky);
}

Test(run_proc, environment_is_agent_then_task_then_process)
{
	setenv("KT_AGENT_ONLY", "agent", 1);
	setenv("KT_OVERRIDDEN", "agent", 1);
	setenv("KT_REMOVED", "agent", 1);
	/* the shared repository cache is the agent's, never a task's */
	setenv("KERUTA_GIT_CACHE", "/var/cache/keruta-git", 1);
	kr_task_list_add(A.task, KR_TASK_ENV, "KT_OVERRIDDEN=task");
	kr_task_list_add(A.task, KR_TASK_ENV, "KT_TASK_ONLY=task");
	kr_task_list_add(A.task, KR_TASK_ENV, "KT_BY_PROC=task");
	const char *env[] = {"KT_BY_PROC=proc", "KT_REMOVED", "KT_NEW=x=y", NULL};
	const char *argv[] = {"/bin/sh", "-c", "env | grep -e ^KT_ -e ^KERUTA_GIT_CACHE | sort > env.txt",
	                      NULL};
	kr_process_result r;
	cr_assert_eq(run(argv, NULL, env, KR_PROC_CAPTURE, 0, &r), KR_OK);
	char *out = read_in_dir("env.txt");
	cr_expect_str_eq(out, "KT_AGENT_ONLY=agent\nKT_BY_PROC=proc\nKT_NEW=x=y\n"
	                      "KT_OVERRIDDEN=task\nKT_TASK_ONLY=task\n");
	free(out);
}

/* The PATH lookup takes the first candidate that is a regular,
 * executable file, as execvp does: a directory or a file without the
 * execute bit of the same name earlier in PATH is passed over. */
Test(run_proc, path_lookup_skips_what_cannot_be_run)
{
	char *d1 = kt_path(dir, "p1"), *d2 = kt_path(dir, "p2"), *d3 = kt_path(dir, "p3");
	cr_assert_eq(mkdir(d1, 0755), 0);
	cr_assert_eq(mkdir(d2, 0755), 0);
	cr_assert_eq(mkdir(d3, 0755), 0);
	char *as_dir = kt_path(d1, "kt-prog"), *not_exec = kt_path(d2, "kt-prog"),
	     *real = kt_path(d3, "kt-prog");
	cr_assert_eq(mkdir(as_dir, 0755), 0);
	kt_write_file(not_exec, "#!/bin/sh\necho wrong > which.txt\n");
	chmod(not_exec, 0644);
	kt_write_file(real, "#!/bin/sh\necho right > which.txt\n");
	chmod(real, 0755);
	char *path = NULL;
	cr_assert(asprintf(&path, "PATH=%s:%s:%s:/usr/bin:/bin", d1, d2, d3) > 0);
	const char *env[] = {path, NULL};
	const char *argv[] = {"kt-prog", NULL};
	kr_process_result r;
	cr_assert_eq(run(argv, NULL, env, KR_PROC_CAPTURE, 0, &r), KR_OK, "%s", A.reason.text);
	cr_expect_eq(r.exit_code, 0);
	char *which = read_in_dir("which.txt");
	cr_expect_str_eq(which, "right\n");
	free(which);
	free(path);
	free(as_dir), free(not_exec), free(real);
	free(d1), free(d2), free(d3);
}

/* The process whose pid the file `name` in dir holds is gone (killed
 * here if not, so no test leaves it behind). */
static void expect_gone(const char *name)
{
	char *s = read_in_dir(name);
	cr_assert(s, "no %s", name);
	pid_t pid = atoi(s);
	free(s);
	int alive = kill(pid, 0) == 0;
	if (alive)
		kill(pid, SIGKILL);
	cr_expect(!alive, "%s (%d) is still there", name, (int)pid);
}

Test(run_proc, escaped_descendants_are_killed_and_reaped)
{
	kr_process_result r;
	/* the pid files appear only once setsid() is done */
	cr_assert_eq(sh("setsid sh -c 'echo $$ > a.tmp; mv a.tmp a.pid; exec sleep 300' & "
	                "( (setsid sh -c 'echo $$ > b.tmp; mv b.tmp b.pid; exec sleep 300' &) & ); "
	                "while [ ! -f a.pid ] || [ ! -f b.pid ]; do sleep 0.05; done",
	                KR_PROC_CAPTURE, &r),
	             KR_OK);
	cr_expect_eq(r.exit_code, 0);
	expect_gone("a.pid");
	expect_gone("b.pid");
}

Test(run_proc, process_timeout_sends_sigterm)
{
	const char *argv[] = {"sleep", "30", NULL};
	kr_process_result r;
	cr_assert_eq(run(argv, NULL, NULL, KR_PROC_CAPTURE, 300, &r), KR_OK);
	cr_expect(r.timed_out);
	cr_expect_eq(r.signal, SIGTERM);
	cr_expect_eq(r.exit_code, -1);
}

Test(run_proc, process_timeout_kills_after_grace)
{
	kr_process_result r;
	const char *argv[] = {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done", NULL};
	cr_assert_eq(run(argv, NULL, NULL, KR_PROC_CAPTURE, 200, &r), KR_OK);
	cr_expect(r.timed_out);
	cr_expect_eq(r.signal, SIGKILL);
	cr_expect(!r.oom_killed);
}

Test(run_proc, oom_counter_is_read_from_memory_events)
{
	char *f = kt_path(dir, "memory.events");
	setenv("KERUTA_CGROUP_MEMORY_EVENTS", f, 1);
	kt_write_file(f, "low 0\nhigh 2\nmax 5\noom 2\noom_kill 7\noom_group_kill 1\n");
	cr_expect_eq(kr_proc_oom_kills(), 7);
	kt_write_file(f, "oom_kill_other 3\noom_kill 12\n");
	cr_expect_eq(kr_proc_oom_kills(), 12);
	kt_write_file(f, "oom_control 0\nunder_oom 0\noom_kill 1\n"); /* cgroup v1 oom_control */
	cr_expect_eq(kr_proc_oom_kills(), 1);
	kt_write_file(f, "oom_kill many\n");
	cr_expect_eq(kr_proc_oom_kills(), -1);
	kt_write_file(f, "");
	cr_expect_eq(kr_proc_oom_kills(), -1);
	unlink(f);
	cr_expect_eq(kr_proc_oom_kills(), -1);
	/* a FIFO there is no counter, and is not waited on */
	cr_assert_eq(mkfifo(f, 0600), 0);
	cr_expect_eq(kr_proc_oom_kills(), -1);
	unlink(f);
	unsetenv("KERUTA_CGROUP_MEMORY_EVENTS");
	free(f);
}

/* A program that runs processes without the supervisor's threads (it never
 * called kr_supervise_start, or stopped them): each process is still
 * waited for with its exit code and output, and its escaped descendants
 * are still killed and reaped. */
Test(run_proc, processes_run_without_the_supervisor_threads)
{
	kr_supervise_stop();
	kr_process_result r;
	cr_assert_eq(sh("echo out; exit 3", KR_PROC_CAPTURE, &r), KR_OK);
	cr_expect_eq(r.exit_code, 3, "exit %d signal %d", r.exit_code, r.signal);
	cr_expect_eq(sh("exit 0", 0, &r), KR_OK);
	cr_expect_eq(r.exit_code, 0);
	cr_assert_eq(sh("setsid sh -c 'echo $$ > c.tmp; mv c.tmp c.pid; exec sleep 300' & "
	                "while [ ! -f c.pid ]; do sleep 0.05; done",
	                KR_PROC_CAPTURE, &r),
	             KR_OK);
	cr_expect_eq(r.exit_code, 0);
	expect_gone("c.pid");
	cr_assert_eq(kr_supervise_start(500), 0); /* for teardown */
}
