/*
 * proc.h - the process runner behind kr_services.run_process.
 *
 * Runs a child in its own process group with the task's environment, in
 * the work dir or a given directory, under the stage's deadline.  With
 * KR_PROC_CAPTURE its stdout and stderr are passed through to the agent's
 * own stdout and stderr (they are the pod log) and shipped line by line
 * to the backend, secrets masked, long lines split with a marker.  The
 * child never waits on the backend: shipping only queues.
 */
#ifndef KR_PROC_H
#define KR_PROC_H

#include "keruta/plugin.h"
#include "util.h"

struct kr_agent;

int kr_proc_run(struct kr_agent *a, kr_task *t, const kr_process *p, kr_process_result *r);

#endif
