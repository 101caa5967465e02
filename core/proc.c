/* proc.c - see proc.h.  (Capture and shipping of output: in progress.) */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "supervise.h"

extern char **environ;

int kr_proc_run(struct kr_agent *a, kr_task *t, const kr_process *p, kr_process_result *r)
{
	(void)a;
	memset(r, 0, sizeof(*r));
	r->size = sizeof(*r);
	r->exit_code = -1;
	const char *cwd = p->cwd ? p->cwd : kr_task_get(t, KR_TASK_WORK_DIR);
	pid_t pid = kr_supervise_fork();
	if (pid < 0) {
		kr_log(KR_LOG_ERROR, kr_task_stage(t), "cannot fork: %s", strerror(errno));
		return KR_FAILED;
	}
	if (pid == 0) {
		kr_supervise_child_reset();
		if (cwd && chdir(cwd) != 0) {
			dprintf(2, "keruta-agent: cannot enter %s: %s\n", cwd, strerror(errno));
			_exit(127);
		}
		for (const char *const *e = p->env; e && *e; e++)
			putenv((char *)*e);
		execvp(p->argv[0], (char *const *)p->argv);
		dprintf(2, "keruta-agent: cannot run %s: %s\n", p->argv[0], strerror(errno));
		_exit(127);
	}
	uint64_t deadline = p->timeout_ms ? kr_now_ms() + p->timeout_ms : 0;
	int timed_out = 0;
	int st = kr_supervise_wait(pid, deadline, &timed_out);
	if (WIFEXITED(st))
		r->exit_code = WEXITSTATUS(st);
	else if (WIFSIGNALED(st))
		r->signal = WTERMSIG(st);
	r->timed_out = timed_out || kr_supervise_cancelled() == KR_CANCEL_TIMEOUT;
	r->cancelled = kr_supervise_cancelled() == KR_CANCEL_SIGNAL;
	return KR_OK;
}
