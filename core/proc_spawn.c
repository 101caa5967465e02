/*
 * proc_spawn.c - starting a child: its descriptors, its user, its
 * directory and exec, in the child itself between clone and execve.
 */
#define _GNU_SOURCE
#include "proc_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "supervise.h"

static void child_fail(int fd, int what)
{
	kr_proc_exec_err e = {what, errno};
	ssize_t w = write(fd, &e, sizeof(e));
	(void)w;
	_exit(127);
}

static void close_from(int lo, int hi)
{
	if (lo > hi)
		return;
	if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0u) == 0)
		return;
	struct rlimit rl;
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
	for (int fd = lo; fd <= hi && fd < max; fd++)
		close(fd);
}

/* Runs in the spawned child until exec (kr_supervise_spawn): system
 * calls only. */
static int child_main(void *arg)
{
	const kr_proc_child *ca = arg;
	int in = ca->in, out = ca->out, err = ca->err, report = ca->report;
	const char *cwd = ca->cwd;
	kr_supervise_child_reset();
	int src[3] = {in, out, err};
	/* a source sitting on 0..2 would be overwritten by an earlier dup2 */
	for (int i = 0; i < 3; i++)
		if (src[i] >= 0 && src[i] < 3 && src[i] != i &&
		    (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
			child_fail(report, 3);
	if (report < 3 && (report = fcntl(report, F_DUPFD_CLOEXEC, 3)) < 0)
		_exit(127);
	for (int i = 0; i < 3; i++) {
		if (src[i] < 0)
			continue;
		if (src[i] == i ? fcntl(i, F_SETFD, 0) < 0 : dup2(src[i], i) < 0)
			child_fail(report, 3);
	}
	close_from(3, report - 1);
	close_from(report + 1, INT_MAX);
	/* raw system calls: the child shares the agent's memory (CLONE_VM),
	 * and the C library's wrappers would change every thread's ids */
	if (ca->drop && (syscall(SYS_setgroups, ca->ngroups, ca->groups) != 0 ||
	                 syscall(SYS_setresgid, ca->gid, ca->gid, ca->gid) != 0 ||
	                 syscall(SYS_setresuid, ca->uid, ca->uid, ca->uid) != 0))
		child_fail(report, 4);
	if (cwd && chdir(cwd) != 0)
		child_fail(report, 1);
	execve(ca->prog, ca->argv, ca->envp);
	child_fail(report, 2);
	return 127;
}

pid_t kr_proc_spawn(const kr_proc_child *c)
{
	return kr_supervise_spawn(child_main, (void *)c);
}
