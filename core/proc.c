/*
 * proc.c - see proc.h: running one process to its end, from its
 * environment to the result.  The parts: proc_env.c (environment),
 * proc_path.c (PATH lookup), proc_runas.c (run_as), proc_spawn.c (the
 * child until exec), proc_output.c (output capture), proc_oom.c (OOM
 * counter).
 */
#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "chan.h"
#include "log.h"
#include "proc_env.h"
#include "proc_oom.h"
#include "proc_output.h"
#include "proc_path.h"
#include "proc_runas.h"
#include "proc_spawn.h"
#include "supervise.h"

/* Measured: a 1 MiB pipe moves 30-45 % more than the default 64 KiB. */
#define PIPE_SIZE (1 << 20)

static int fail(kr_agent *a, kr_task *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(kr_agent *a, kr_task *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kr_logv(KR_LOG_ERROR, kr_task_stage(t), fmt, ap);
	va_end(ap);
	if (a) {
		va_start(ap, fmt);
		kr_reason_vset(&a->reason, fmt, ap);
		va_end(ap);
	}
	return KR_FAILED;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int kr_proc_run(struct kr_agent *a, kr_task *t, const kr_process *p, kr_process_result *r)
{
	memset(r, 0, sizeof(*r));
	r->size = sizeof(*r);
	r->exit_code = -1;
	const char *label = p->label ? p->label : p->argv[0];
	const char *cwd = p->cwd ? p->cwd : kr_task_get(t, KR_TASK_WORK_DIR);
	int capture_on = (p->flags & KR_PROC_CAPTURE) != 0;
	int quiet = !capture_on && (p->flags & KR_PROC_QUIET);

	/* the task channel, once the work dir exists (init clones into it) */
	if (a && !a->chan_tried) {
		a->chan_tried = 1;
		a->chan = kr_chan_open(a, kr_task_get(t, KR_TASK_WORK_DIR));
	}
	kr_run_as ra;
	kr_error err = {0};
	if (kr_proc_run_as_prepare(a, t, &ra, kr_task_get(t, KR_TASK_WORK_DIR), &err) < 0)
		return fail(a, t, "%s", err.msg);
	char *owned[2];
	char **env = kr_proc_env(a, t, p, owned);
	char *prog = kr_proc_find_program(p->argv[0], env);
	if (!prog) {
		free(env), free(owned[0]), free(owned[1]);
		return fail(a, t, "%s: cannot run '%s': not found in PATH; install it or give its full path",
		            label, p->argv[0]);
	}

	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1};
	int ok = devnull >= 0 && pipe2(rep, O_CLOEXEC) == 0;
	if (ok && capture_on) {
		ok = pipe2(outp, O_CLOEXEC) == 0 && pipe2(errp, O_CLOEXEC) == 0;
		if (ok) {
			/* best effort: a smaller pipe still works, just slower */
			fcntl(outp[1], F_SETPIPE_SZ, PIPE_SIZE);
			fcntl(errp[1], F_SETPIPE_SZ, PIPE_SIZE);
		}
	}
	if (!ok) {
		int e = errno;
		close_fd(&devnull);
		close_fd(&outp[0]), close_fd(&outp[1]), close_fd(&errp[0]), close_fd(&errp[1]);
		close_fd(&rep[0]), close_fd(&rep[1]);
		free(env), free(owned[0]), free(owned[1]);
		free(prog);
		return fail(a, t, "%s: cannot set up the child's input and output: %s", label,
		            strerror(e));
	}
	int child_out = capture_on ? outp[1] : quiet ? devnull : -1;
	int child_err = capture_on ? errp[1] : quiet ? devnull : -1;

	int64_t oom_before = kr_proc_oom_kills();
	kr_proc_child ca = {devnull, child_out, child_err, rep[1], cwd, prog,
	                 (char *const *)p->argv, env, ra.active, ra.uid, ra.gid, ra.ngroups,
	                 ra.groups};
	pid_t pid = kr_proc_spawn(&ca);
	int fork_errno = errno;
	close_fd(&devnull);
	close_fd(&outp[1]);
	close_fd(&errp[1]);
	close_fd(&rep[1]);
	free(env), free(owned[0]), free(owned[1]);
	if (pid < 0) {
		close_fd(&outp[0]), close_fd(&errp[0]), close_fd(&rep[0]);
		free(prog);
		return fail(a, t, "%s: cannot start a process: %s", label, strerror(fork_errno));
	}
	if (p->timeout_ms)
		kr_supervise_deadline(pid, kr_now_ms() + p->timeout_ms);

	kr_proc_exec_err ee;
	ssize_t got;
	while ((got = read(rep[0], &ee, sizeof(ee))) < 0 && errno == EINTR)
		;
	close_fd(&rep[0]);
	if (got == (ssize_t)sizeof(ee)) {
		close_fd(&outp[0]), close_fd(&errp[0]);
		kr_supervise_wait(pid, 0, NULL);
		int rc = ee.what == 1 ? fail(a, t, "%s: cannot enter the directory %s: %s", label, cwd,
		                             strerror(ee.err))
		         : ee.what == 2 ? fail(a, t, "%s: cannot run %s: %s", label, prog,
		                               strerror(ee.err))
		         : ee.what == 4 ? fail(a, t, "%s: cannot become user %d:%d (run_as): %s",
		                               label, (int)ra.uid, (int)ra.gid, strerror(ee.err))
		                        : fail(a, t, "%s: cannot set up the child's descriptors: %s",
		                               label, strerror(ee.err));
		free(prog);
		return rc;
	}
	free(prog);
	kr_log(KR_LOG_DEBUG, kr_task_stage(t), "%s: started process %d", label, (int)pid);

	if (capture_on)
		kr_proc_capture(a, outp[0], errp[0], pid);

	/* without captured output, the channel is still served */
	while (!capture_on && a && a->chan && kr_supervise_ended(pid) != 1) {
		struct pollfd pf = {kr_chan_fd(a->chan), POLLIN, 0};
		if (poll(&pf, 1, KR_PROC_TICK_MS) > 0)
			kr_chan_serve(a->chan);
	}
	int timed_out = 0;
	int st = kr_supervise_wait(pid, 0, &timed_out);
	int left = kr_supervise_kill_strays(1000);
	if (left)
		kr_log(KR_LOG_WARN, kr_task_stage(t),
		       "%s: %d leftover process%s of the task could not be reaped", label, left,
		       left == 1 ? "" : "es");
	if (WIFEXITED(st)) {
		r->exit_code = WEXITSTATUS(st);
	} else if (WIFSIGNALED(st)) {
		r->signal = WTERMSIG(st);
		if (r->signal == SIGKILL && oom_before >= 0) {
			int64_t after = kr_proc_oom_kills();
			r->oom_killed = after > oom_before;
		}
	}
	int cancel = kr_supervise_cancelled();
	r->timed_out = timed_out || cancel == KR_CANCEL_TIMEOUT;
	r->cancelled = cancel == KR_CANCEL_SIGNAL;
	kr_log(KR_LOG_DEBUG, kr_task_stage(t), "%s: process %d ended (exit %d, signal %d%s%s%s)",
	       label, (int)pid, r->exit_code, r->signal, r->timed_out ? ", timed out" : "",
	       r->cancelled ? ", cancelled" : "", r->oom_killed ? ", OOM" : "");
	return KR_OK;
}