/*
 * proc_output.h - capturing a child's stdout and stderr (proc_output.c).
 */
#ifndef KR_PROC_OUTPUT_H
#define KR_PROC_OUTPUT_H

#include <sys/types.h>

struct kr_agent;

/* How often the runner looks at the child and the task channel while it
 * waits. */
#define KR_PROC_TICK_MS 200

/*
 * Read the child's stdout (out_fd) and stderr (err_fd), the read ends of
 * its pipes, until both close, serving the task channel meanwhile; closes
 * them.  Once pid has ended, descendants still holding the pipes are
 * killed and the rest is drained for a while.  a may be NULL (no
 * shipping, default limits).
 */
void kr_proc_capture(struct kr_agent *a, int out_fd, int err_fd, pid_t pid);

#endif
