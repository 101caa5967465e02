/*
 * proc_oom.h - the OOM killer's counter (proc_oom.c).
 */
#ifndef KR_PROC_OOM_H
#define KR_PROC_OOM_H

#include <stdint.h>

/*
 * The OOM killer's counter for the agent's cgroup ("oom_kill" in cgroup
 * v2 memory.events, or v1 memory.oom_control), -1 when unavailable.  The
 * environment variable KERUTA_CGROUP_MEMORY_EVENTS names another file of
 * the same format (a cgroup mounted elsewhere; tests).
 */
int64_t kr_proc_oom_kills(void);

#endif
