/*
 * proc_runas.h - the user children run as (proc_runas.c).
 */
#ifndef KR_PROC_RUNAS_H
#define KR_PROC_RUNAS_H

#include <stddef.h>
#include <sys/types.h>

#include "keruta/plugin.h"
#include "util.h"

struct kr_agent;

typedef struct kr_run_as {
	int active;
	uid_t uid;
	gid_t gid;
	size_t ngroups;
	gid_t groups[64];
} kr_run_as;

/*
 * The run_as setting, applied when the agent is root: resolves it into
 * *r, hands the work dir (but the agent's own state below .keruta) over
 * to that user and lets it use the task channel.  1 when children change
 * user, 0 when they do not (no run_as, or the agent is not root: warned
 * once), -1 with err set when the setting is wrong.
 */
int kr_proc_run_as_prepare(struct kr_agent *a, kr_task *t, kr_run_as *r, const char *work,
                           kr_error *err);

#endif
