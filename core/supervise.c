/* supervise.c - see supervise.h. */
#define _GNU_SOURCE /* clone() */
#include "config.h"
#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#ifdef KR_COVERAGE_DUMP
/* libgcov's: _exit() skips the exit handlers that write the counters, so
 * a coverage build would never count the lines that lead to one. */
void __gcov_dump(void);
#endif

/* A stage that ignores cancellation this long after its grace period is
 * abandoned: the agent exits rather than hang the pod forever. */
#define KR_HARD_MARGIN_MS 1000

typedef struct child {
	pid_t pid;
	int done;
	int status;
	uint64_t deadline;  /* SIGTERM at this time (0 none)      */
	uint64_t kill_at;   /* SIGKILL at this time (0 none)      */
	int timed_out;
	struct child *next;
} child;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* wakes the watchdog          */
	pthread_cond_t child_cond; /* wakes waiters on children   */
	pthread_t sig_thread, dog_thread;
	int running, stopping;
	uint64_t grace;
	uint64_t stage_deadline;
	int stage_active;
	int cancel;
	int signo;
	uint64_t signal_time;
	uint64_t hard_at;        /* emergency exit at this time */
	child *children;
	void (*emergency)(void *, int);
	void *emergency_ctx;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .child_cond = PTHREAD_COND_INITIALIZER};

static void signal_children(int sig)
{
	for (child *c = S.children; c; c = c->next)
		if (!c->done)
			kill(-c->pid, sig);
}

static void cancel_locked(int why, uint64_t now)
{
	if (S.cancel)
		return;
	S.cancel = why;
	uint64_t kill_at = now + S.grace;
	for (child *c = S.children; c; c = c->next) {
		if (c->done)
			continue;
		kill(-c->pid, SIGTERM);
		if (!c->kill_at || c->kill_at > kill_at)
			c->kill_at = kill_at;
	}
	if (S.stage_active)
		S.hard_at = kill_at + KR_HARD_MARGIN_MS;
	pthread_cond_broadcast(&S.cond);
}

static void reap_locked(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		for (child *c = S.children; c; c = c->next) {
			if (c->pid == pid) {
				c->done = 1;
				c->status = status;
				/* the leader is gone; make sure its group follows */
				kill(-pid, SIGKILL);
			}
		}
	}
	pthread_cond_broadcast(&S.child_cond);
}

static void *signal_main(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR2); /* used by stop() to wake this thread */
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		pthread_mutex_lock(&S.lock);
		if (sig == SIGUSR2 && S.stopping) {
			pthread_mutex_unlock(&S.lock);
			return NULL;
		}
		if (sig == SIGCHLD) {
			reap_locked();
		} else if (sig == SIGTERM || sig == SIGINT) {
			uint64_t now = kr_now_ms();
			if (S.signo) {
				/* a second signal: stop waiting for the grace period */
				signal_children(SIGKILL);
				if (!S.cancel)
					cancel_locked(KR_CANCEL_SIGNAL, now);
			} else {
				S.signo = sig;
				S.signal_time = now;
				kr_log(KR_LOG_WARN, NULL,
				       "received %s: stopping the task (grace period %llu ms)",
				       sig == SIGTERM ? "SIGTERM" : "SIGINT",
				       (unsigned long long)S.grace);
				S.cancel = 0; /* a signal outranks a timeout */
				cancel_locked(KR_CANCEL_SIGNAL, now);
				S.hard_at = now + S.grace + KR_HARD_MARGIN_MS;
			}
		}
		pthread_mutex_unlock(&S.lock);
	}
}

static void abs_time(uint64_t at_ms, struct timespec *ts)
{
	/* the condvar uses CLOCK_MONOTONIC, like kr_now_ms */
	ts->tv_sec = (time_t)(at_ms / 1000);
	ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

static void *watchdog_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&S.lock);
	while (!S.stopping) {
		uint64_t now = kr_now_ms();
		uint64_t next = 0;
#define CONSIDER(t) do { if ((t) && (!next || (t) < next)) next = (t); } while (0)
		if (S.stage_active && S.stage_deadline && !S.cancel) {
			if (now >= S.stage_deadline)
				cancel_locked(KR_CANCEL_TIMEOUT, now);
			else
				CONSIDER(S.stage_deadline);
		}
		for (child *c = S.children; c; c = c->next) {
			if (c->done)
				continue;
			if (c->deadline && !c->timed_out) {
				if (now >= c->deadline) {
					c->timed_out = 1;
					kill(-c->pid, SIGTERM);
					if (!c->kill_at || c->kill_at > now + S.grace)
						c->kill_at = now + S.grace;
				} else {
					CONSIDER(c->deadline);
				}
			}
			if (c->kill_at) {
				if (now >= c->kill_at)
					kill(-c->pid, SIGKILL);
				else
					CONSIDER(c->kill_at);
			}
		}
		if (S.hard_at && S.stage_active) {
			if (now >= S.hard_at) {
				void (*fn)(void *, int) = S.emergency;
				int why = S.cancel;
				S.emergency = NULL;
				pthread_mutex_unlock(&S.lock);
				kr_log(KR_LOG_ERROR, NULL,
				       "the running stage did not stop within the grace period; exiting");
				if (fn)
					fn(S.emergency_ctx, why);
#ifdef KR_COVERAGE_DUMP
				__gcov_dump();
#endif
				_exit(KR_EXIT_TASK_FAILED);
			}
			CONSIDER(S.hard_at);
		}
#undef CONSIDER
		if (next) {
			struct timespec ts;
			/* wake at least every second: kill() retries are cheap */
			if (next > now + 1000)
				next = now + 1000;
			abs_time(next, &ts);
			pthread_cond_timedwait(&S.cond, &S.lock, &ts);
		} else {
			pthread_cond_wait(&S.cond, &S.lock);
		}
	}
	pthread_mutex_unlock(&S.lock);
	return NULL;
}

int kr_supervise_start(uint64_t grace_ms)
{
	if (S.running)
		return 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR2);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	/* orphaned descendants come to us, so none is left behind */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&S.cond, &ca);
	pthread_condattr_destroy(&ca);
	S.grace = grace_ms;
	S.stopping = 0;
	if (pthread_create(&S.sig_thread, NULL, signal_main, NULL) != 0)
		return -1;
	if (pthread_create(&S.dog_thread, NULL, watchdog_main, NULL) != 0)
		return -1;
	S.running = 1;
	return 0;
}

void kr_supervise_stop(void)
{
	if (!S.running)
		return;
	pthread_mutex_lock(&S.lock);
	S.stopping = 1;
	pthread_cond_broadcast(&S.cond);
	pthread_mutex_unlock(&S.lock);
	pthread_kill(S.sig_thread, SIGUSR2);
	pthread_join(S.sig_thread, NULL);
	pthread_join(S.dog_thread, NULL);
	/* reap whatever is left so no zombie outlives us */
	pthread_mutex_lock(&S.lock);
	reap_locked();
	while (S.children) {
		child *c = S.children;
		S.children = c->next;
		free(c);
	}
	pthread_mutex_unlock(&S.lock);
	S.running = 0;
}

void kr_supervise_stage_begin(uint64_t deadline_ms)
{
	pthread_mutex_lock(&S.lock);
	S.stage_active = 1;
	S.stage_deadline = deadline_ms;
	/* A timeout ends with its stage; so does a signal: the stage it
	 * stopped is over, and a `when: always` stage after it (collect
	 * saving partial artifacts) runs within what is left of the grace
	 * period (its deadline), not cancelled before it starts. */
	if (S.cancel == KR_CANCEL_TIMEOUT || S.cancel == KR_CANCEL_SIGNAL)
		S.cancel = KR_CANCEL_NONE;
	if (S.signo) /* after a signal, stages get what is left of the grace */
		S.hard_at = S.signal_time + S.grace + KR_HARD_MARGIN_MS;
	else
		S.hard_at = 0;
	pthread_cond_broadcast(&S.cond);
	pthread_mutex_unlock(&S.lock);
}

void kr_supervise_stage_end(void)
{
	pthread_mutex_lock(&S.lock);
	S.stage_active = 0;
	S.stage_deadline = 0;
	if (!S.signo)
		S.hard_at = 0;
	pthread_mutex_unlock(&S.lock);
}

int kr_supervise_cancelled(void)
{
	pthread_mutex_lock(&S.lock);
	int c = S.cancel;
	pthread_mutex_unlock(&S.lock);
	return c;
}

int kr_supervise_signal(void)
{
	return S.signo;
}

uint64_t kr_supervise_signal_time(void)
{
	return S.signal_time;
}

uint64_t kr_supervise_grace_ms(void)
{
	return S.grace;
}

/* The spawned child's stack.  One is enough: spawns hold S.lock, and with
 * CLONE_VFORK we get it back only once the child has exec'd or exited. */
static _Alignas(64) char spawn_stack[64 * 1024];

/* A child that execs never returns from its frames, so under
 * AddressSanitizer their poisoned shadow stays behind on spawn_stack and
 * would trip the next child: each spawn starts from a clean stack. */
#if defined(__SANITIZE_ADDRESS__)
#define KR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KR_ASAN 1
#endif
#endif
#ifdef KR_ASAN
#include <sanitizer/asan_interface.h>
#define spawn_stack_reset() ASAN_UNPOISON_MEMORY_REGION(spawn_stack, sizeof(spawn_stack))
#else
#define spawn_stack_reset() ((void)0)
#endif

pid_t kr_supervise_spawn(int (*child_main)(void *), void *arg)
{
	pthread_mutex_lock(&S.lock);
	spawn_stack_reset();
	/* CLONE_VM | CLONE_VFORK: the child borrows our memory until it execs,
	 * so nothing is copied and no copy-on-write fault hits our other
	 * threads later (what a fork of a threaded process costs) */
	pid_t pid = clone(child_main, spawn_stack + sizeof(spawn_stack),
	                  CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
	int e = errno;
	if (pid > 0) {
		setpgid(pid, pid); /* also done in the child; whichever runs first */
		child *c = kr_calloc(1, sizeof(*c));
		c->pid = pid;
		c->next = S.children;
		S.children = c;
		if (S.cancel) { /* the stage was cancelled while we spawned */
			kill(-pid, SIGTERM);
			c->kill_at = kr_now_ms() + S.grace;
			pthread_cond_broadcast(&S.cond);
		}
	}
	pthread_mutex_unlock(&S.lock);
	errno = e;
	return pid;
}

void kr_supervise_child_reset(void)
{
	sigset_t set;
	sigemptyset(&set);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	signal(SIGPIPE, SIG_DFL);
	setpgid(0, 0);
}

int kr_supervise_wait(pid_t pid, uint64_t deadline_ms, int *timed_out)
{
	pthread_mutex_lock(&S.lock);
	child *c = NULL, **link = &S.children;
	for (; *link; link = &(*link)->next)
		if ((*link)->pid == pid) {
			c = *link;
			break;
		}
	if (!c) {
		pthread_mutex_unlock(&S.lock);
		return -1;
	}
	if (deadline_ms) {
		c->deadline = deadline_ms;
		pthread_cond_broadcast(&S.cond);
	}
	/* no reaper thread (unit tests): wait ourselves, unless
	 * kr_supervise_ended() has already reaped it (a second waitpid would
	 * fail and leave st unset) */
	if (!S.running && !c->done) {
		int st = 0;
		pthread_mutex_unlock(&S.lock);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		pthread_mutex_lock(&S.lock);
		c->done = 1;
		c->status = st;
	}
	while (!c->done)
		pthread_cond_wait(&S.child_cond, &S.lock);
	int status = c->status;
	if (timed_out)
		*timed_out = c->timed_out;
	/* others may have been added in front of it while we waited */
	for (link = &S.children; *link != c; link = &(*link)->next)
		;
	*link = c->next;
	free(c);
	pthread_mutex_unlock(&S.lock);
	return status;
}

void kr_supervise_set_emergency(void (*fn)(void *ctx, int reason), void *ctx)
{
	pthread_mutex_lock(&S.lock);
	S.emergency = fn;
	S.emergency_ctx = ctx;
	pthread_mutex_unlock(&S.lock);
}

static child *find_locked(pid_t pid)
{
	for (child *c = S.children; c; c = c->next)
		if (c->pid == pid)
			return c;
	return NULL;
}

void kr_supervise_deadline(pid_t pid, uint64_t deadline_ms)
{
	pthread_mutex_lock(&S.lock);
	child *c = find_locked(pid);
	if (c) {
		c->deadline = deadline_ms;
		pthread_cond_broadcast(&S.cond);
	}
	pthread_mutex_unlock(&S.lock);
}

int kr_supervise_ended(pid_t pid)
{
	pthread_mutex_lock(&S.lock);
	child *c = find_locked(pid);
	int rc = -1;
	if (c) {
		if (!c->done && !S.running) { /* no reaper thread: look ourselves */
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid) {
				c->done = 1;
				c->status = st;
				kill(-pid, SIGKILL);
			}
		}
		rc = c->done;
	}
	pthread_mutex_unlock(&S.lock);
	return rc;
}

/* Is pid one the runner is still responsible for? */
static int registered_locked(pid_t pid)
{
	pid_t pgid = getpgid(pid);
	for (child *c = S.children; c; c = c->next)
		if (!c->done && (c->pid == pid || c->pid == pgid))
			return 1;
	return 0;
}

/* The agent's children as the kernel lists them, per thread (a process
 * forked by any of our threads, or reparented to us, shows up in one). */
static size_t list_children(pid_t *out, size_t max)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300], buf[4096];
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		for (char *p = buf, *end; *p && n < max; p = end) {
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (v > 0)
				out[n++] = (pid_t)v;
		}
	}
	closedir(d);
	return n;
}

int kr_supervise_kill_strays(uint64_t wait_ms)
{
	uint64_t until = kr_now_ms() + wait_ms;
	for (;;) {
		pid_t pids[512];
		size_t left = 0;
		pthread_mutex_lock(&S.lock);
		size_t n = list_children(pids, sizeof(pids) / sizeof(pids[0]));
		for (size_t i = 0; i < n; i++) {
			if (registered_locked(pids[i]))
				continue;
			kill(pids[i], SIGKILL);
			if (!S.running) {
				int st;
				if (waitpid(pids[i], &st, WNOHANG) == pids[i])
					continue;
			}
			left++;
		}
		pthread_mutex_unlock(&S.lock);
		if (!left || kr_now_ms() >= until)
			return (int)left;
		/* their deaths orphan their own children, which come to us next */
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
