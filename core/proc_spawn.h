/*
 * proc_spawn.h - starting a child process (proc_spawn.c).
 */
#ifndef KR_PROC_SPAWN_H
#define KR_PROC_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* What the child reports on the report pipe when it cannot exec. */
typedef struct kr_proc_exec_err {
	int what; /* 1: chdir, 2: exec, 3: descriptors, 4: run_as */
	int err;
} kr_proc_exec_err;

/* All the child needs, prepared by the parent: the child may only make
 * system calls.  Borrowed; must stay valid until kr_proc_spawn returns. */
typedef struct kr_proc_child {
	int in, out, err, report; /* -1 in/out/err: inherit the agent's */
	const char *cwd, *prog;
	char *const *argv, *const *envp;
	int drop;       /* become uid:gid with groups before exec */
	uid_t uid;
	gid_t gid;
	size_t ngroups;
	const gid_t *groups;
} kr_proc_child;

/*
 * Start c->prog in a new process group (kr_supervise_spawn) with in, out
 * and err as its 0, 1 and 2 and no other descriptor, as c->uid when
 * c->drop, in c->cwd.  Returns its pid, or -1 with errno.  When it cannot
 * exec, it writes a kr_proc_exec_err to c->report and exits 127; the
 * report's write end closes on exec either way.
 */
pid_t kr_proc_spawn(const kr_proc_child *c);

#endif
