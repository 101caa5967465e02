/*
 * git_helpers.h - shared by the git stage tests: shell steps with the real
 * git CLI, git servers from tests/gitserver/gitserve.py on loopback, and
 * runs of the real agent with a pipeline of the git stages.
 */
#ifndef GIT_HELPERS_H
#define GIT_HELPERS_H

#include <sys/types.h>

#include "krtest.h"

/* Run a sh script in cwd (git identity set); asserts exit 0; returns
 * stdout with trailing newlines cut (caller frees). */
char *gt_sh(const char *cwd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same, and kt_path, for use inside assertions: freed by gt_free_all(). */
char *gt_q(const char *cwd, const char *script);
char *gt_path(const char *dir, const char *name);
void gt_free_all(void);

typedef struct gt_server {
	pid_t pid;
	int port;
	char *dir;
} gt_server;

/* kind: "daemon", "http" or "cut"; args: more gitserve.py arguments. */
void gt_server_start(gt_server *s, const char *kind, const char *const *args);
void gt_server_stop(gt_server *s);

/* In dir: src/ (a work repository: main with 2 commits, tag v1 on the
 * first, branch feature with one more commit) and srv/repo.git (bare,
 * exported).  big: add ~600 KiB of incompressible data. */
void gt_make_repo(const char *dir, int big);

/* Run `keruta-agent CMD` in local mode on work dir wd with a pipeline whose
 * stages are given as YAML flow text (e.g. "clone: {plugin: clone}") and
 * listed in order in phase_list (e.g. "[clone, git-exclude]").  task_yaml
 * NULL: no task file.  env: extra "NAME=VALUE" entries. */
int gt_agent(kt_result *r, const char *cmd, const char *wd, const char *task_yaml,
             const char *phase_list, const char *stages_yaml, const char *const *env);

/* The same started, not waited for (kt_wait collects it); *dir_out is the
 * directory of its pipeline and task files, for the caller to remove and
 * free once it has ended. */
pid_t gt_agent_spawn(const char *cmd, const char *wd, const char *task_yaml,
                     const char *phase_list, const char *stages_yaml, const char *const *env,
                     int *out_fd, int *err_fd, char **dir_out);

/* Both streams of a result, for searching. */
char *gt_output(const kt_result *r);

#endif
