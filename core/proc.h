/*
 * proc.h - the process runner behind kr_services.run_process.
 *
 * Runs a child in its own process group with the task's environment, in
 * the work dir or a given directory, under the stage's deadline.  With
 * KR_PROC_CAPTURE its stdout and stderr are passed through to the agent's
 * own stdout and stderr (they are the pod log) and shipped line by line
 * to the backend, secrets masked, long lines split with a marker.  The
 * child never waits on the backend: shipping only queues.  The parts are
 * in proc_*.c, each saying at its top what it does.
 */
#ifndef KR_PROC_H
#define KR_PROC_H

#include "keruta/plugin.h"
#include "util.h"

struct kr_agent;

/*
 * Run p to its end.  KR_OK when it ran (how it ended is in *r), KR_FAILED
 * with the agent's reason set when it could not be started.  a may be
 * NULL (no shipping, default limits).
 *
 * The environment is the agent's, then the task's "env" list, then p->env;
 * a later NAME=VALUE replaces an earlier one, a bare NAME removes it.  The
 * child gets /dev/null as stdin and no descriptor but 0, 1 and 2.  After
 * it ends, descendants that escaped its process group are killed and
 * reaped.  The shipped log is capped per process at the log_max_total
 * setting: the head is shipped live, then only a ring of the last lines
 * is kept and shipped at the end, after a line saying how much was cut.
 */
int kr_proc_run(struct kr_agent *a, kr_task *t, const kr_process *p, kr_process_result *r);


#endif
