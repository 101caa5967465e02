/*
 * stage_util.h - small helpers the built-in stages share.  Each stage
 * stays one shared object that needs nothing but the plugin interface:
 * what is not inline here is a source file compiled into each stage that
 * uses it (task_env.c).
 */
#ifndef KR_STAGE_UTIL_H
#define KR_STAGE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "keruta/plugin.h"

/* A duration as an operator would write it in the pipeline: 2h, 90s, 250ms. */
static inline void kr_stage_format_ms(uint64_t ms, char *out, size_t n)
{
	if (ms % 3600000 == 0 && ms)
		snprintf(out, n, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms)
		snprintf(out, n, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(out, n, "%llums", (unsigned long long)ms);
}

/* All of buf to fd, through short writes and EINTR: 0, or an errno. */
static inline int kr_stage_write_all_n(int fd, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		off += (size_t)w;
	}
	return 0;
}

/* All of text to fd: 0, or an errno. */
static inline int kr_stage_write_all(int fd, const char *text)
{
	return kr_stage_write_all_n(fd, text, strlen(text));
}

/* A new file `name` in dir (AT_FDCWD: a path), whatever stood there: an
 * old file, or a symlink or FIFO someone left in its place, is removed,
 * never opened or written through.  An fd, or -1 with errno set. */
static inline int kr_stage_new_file(int dir, const char *name, mode_t mode)
{
	if (unlinkat(dir, name, 0) != 0 && errno != ENOENT)
		return -1;
	return openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
}

/* A stage's new state, `size` bytes, zeroed, with its bound options
 * written in (svc->opt_bind): NULL after svc->fail().  The stage checks
 * what it needs to and sets init's *state only when the state is good,
 * freeing it otherwise (fini is not called after a failed init). */
static inline void *kr_stage_new_state(const kr_services *svc, const kr_config *cfg, size_t size,
                                       const char *stage)
{
	void *s = calloc(1, size);
	if (!s) {
		svc->fail(NULL, "%s: out of memory", stage);
		return NULL;
	}
	if (svc->opt_bind(cfg, s, size) != KR_OK) {
		free(s);
		return NULL;
	}
	return s;
}


/* The task's work dir, or NULL after svc->fail() naming the stage. */
static inline const char *kr_stage_work_dir(const kr_services *svc, kr_task *t, const char *stage)
{
	const char *work = svc->task_get(t, KR_TASK_WORK_DIR);
	if (!work || !*work) {
		svc->fail(t, "%s: the task has no work dir; set --work-dir", stage);
		return NULL;
	}
	return work;
}

/* Before a stage starts task code: the work dir in *work, and the path of
 * the task's own area, created, with .keruta/doc and .keruta/documents
 * showing this task's own (KR_AREA_SHOW), for the script to write in.
 * The path is the caller's (svc->free); NULL after svc->fail(). */
static inline char *kr_stage_task_area(const kr_services *svc, kr_task *t, const char *stage,
                                       const char **work)
{
	*work = kr_stage_work_dir(svc, t, stage);
	return *work ? svc->area_path(t, "", KR_AREA_CREATE | KR_AREA_SHOW) : NULL;
}

/* Default longest environment value (the execute stage's env_max). */
#define KR_STAGE_ENV_MAX (32 * 1024)

/* The environment of a task's script (task_env.c): the variables of
 * KR_TASK_ENV_FIELDS, then the task's own entries, then `more` (NAME=VALUE
 * strings, copied; may be NULL); a value over `max` bytes is cut and its
 * full text written under <area>/env/.  A NULL-terminated array the caller frees
 * with kr_stage_env_free(); NULL after svc->fail(). */
char **kr_stage_task_env(const kr_services *svc, kr_task *t, const char *area,
                         size_t max, const char *const *more);
void kr_stage_env_free(char **env);

/* Run a task's script (task_env.c): argv in work with env, its output
 * captured into the task's log under label; frees env.  What
 * svc->run_process returns; *r holds the result when it is KR_OK. */
int kr_stage_run_script(const kr_services *svc, kr_task *t, const char *const *argv,
                        const char *work, char **env, uint64_t timeout_ms, const char *label,
                        kr_process_result *r);

#endif
