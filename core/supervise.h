/*
 * supervise.h - what the agent does as a parent: signals, stage deadlines,
 * killing process groups, and reaping every descendant.
 *
 * The agent may be PID 1 in a container, and it is a subreaper, so orphaned
 * grandchildren of a task come to it.  One thread waits for SIGTERM, SIGINT
 * and SIGCHLD (blocked in every other thread), reaps every child and keeps
 * the status of the ones the process runner registered.  A watchdog thread
 * enforces the running stage's deadline: SIGTERM to the registered process
 * groups at the deadline, SIGKILL after the grace period.
 */
#ifndef KR_SUPERVISE_H
#define KR_SUPERVISE_H

#include <stdint.h>
#include <sys/types.h>

enum kr_cancel {
	KR_CANCEL_NONE = 0,
	KR_CANCEL_TIMEOUT = 1, /* the stage's (or a process's) deadline passed */
	KR_CANCEL_SIGNAL = 2   /* the agent got SIGTERM or SIGINT              */
};

/* Start the threads.  Call from main before any other thread exists so
 * the signal mask is inherited everywhere.  0 on success. */
int kr_supervise_start(uint64_t grace_ms);
void kr_supervise_stop(void);

/* The running stage; deadline is a kr_now_ms() value, 0 for none. */
void kr_supervise_stage_begin(uint64_t deadline_ms);
void kr_supervise_stage_end(void);

/* Why the current stage must stop (enum kr_cancel), and the signal. */
int kr_supervise_cancelled(void);
int kr_supervise_signal(void);
/* When the agent was signalled (kr_now_ms), 0 if it was not. */
uint64_t kr_supervise_signal_time(void);
uint64_t kr_supervise_grace_ms(void);

/*
 * Child processes.  kr_supervise_spawn() starts a child running
 * child_main(arg) with the reaper held off, registers it (its own process
 * group leader) and returns its pid (-1 with errno on error), once the
 * child has exec'd or exited: child_main runs in our memory on a stack of
 * its own, so it may only make system calls (no malloc, no locks, no
 * return) and must end in execve() or _exit().  kr_supervise_wait() blocks until it ends
 * and returns its wait status; with a deadline it sends SIGTERM to the
 * group when the deadline passes and SIGKILL a grace period later.
 */
pid_t kr_supervise_spawn(int (*child_main)(void *), void *arg);
int kr_supervise_wait(pid_t pid, uint64_t deadline_ms, int *timed_out);
/* Signal mask children should start with (everything unblocked). */
void kr_supervise_child_reset(void);
/* Give a registered child its own deadline (kr_now_ms value) without
 * waiting for it, e.g. while its output is being read. */
void kr_supervise_deadline(pid_t pid, uint64_t deadline_ms);
/* Non-blocking: 1 once the registered child has ended (kr_supervise_wait
 * then returns at once), 0 while it runs, -1 if it is not registered. */
int kr_supervise_ended(pid_t pid);
/*
 * Descendants that outlived their process group leader and came to the
 * agent as subreaper (daemons, setsid'ed grandchildren): SIGKILL every
 * child of the agent that is neither registered nor in the process group
 * of a registered child that still runs, and wait up to wait_ms until
 * they are reaped.  Returns how many are still left (0: none).
 */
int kr_supervise_kill_strays(uint64_t wait_ms);

/* Called (once) when a stage ignores its deadline by more than the grace
 * period plus a margin: last words before the agent exits. */
void kr_supervise_set_emergency(void (*fn)(void *ctx, int reason), void *ctx);

#endif
