/*
 * task_env.c - the task's environment for the scripts stages run
 * (install, execute).
 *
 * The variables of KR_TASK_ENV_FIELDS (keruta/plugin.h: KERUTA_TASK_ID,
 * _TITLE, ..., KERUTA_REPOSITORY_ID; empty when the task has no such
 * field, so `set -u` scripts still run), then the task's own NAME=VALUE
 * entries.
 *
 * Linux refuses to exec when one string passes 128 KiB or all of them a
 * quarter of the stack limit, and a task description can be a whole
 * document.  A value longer than env_max is therefore cut, at a UTF-8
 * boundary, and ends with a marker naming NAME_FILE; the full text is in
 * env/NAME of the task's own area (.keruta/tasks/<id>/env/NAME, reached
 * through svc->area_open, never through a symlink) and NAME_FILE holds
 * that path.  KERUTA_DOC_DIR names the task's own doc/ directory, what
 * .keruta/doc points at while the task runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keruta/plugin.h"

#include "stage_util.h"

typedef struct env_list {
	char **v;
	size_t n, cap;
	int oom;
} env_list;

static void add(env_list *l, char *entry)
{
	if (!entry) {
		l->oom = 1;
		return;
	}
	if (l->n + 2 > l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			free(entry);
			l->oom = 1;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = entry;
	l->v[l->n] = NULL;
}

static int write_full(const kr_services *svc, kr_task *t, int dir, const char *name,
                      const char *path, const char *text)
{
	int fd = kr_stage_new_file(dir, name, 0600);
	if (fd < 0) {
		int e = errno;
		return svc->fail(t, "cannot create %s: %s", path, strerror(e));
	}
	int e = kr_stage_write_all(fd, text);
	close(fd);
	return e ? svc->fail(t, "cannot write %s: %s", path, strerror(e)) : KR_OK;
}

/* NAME as a file name: letters, digits and '_' only. */
static void file_name(const char *name, size_t nl, char *out, size_t cap)
{
	size_t n = nl < cap - 1 ? nl : cap - 1;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		out[i] = ok ? c : '_';
	}
	out[n] = '\0';
}

static int put(const kr_services *svc, kr_task *t, env_list *l, const char *area, size_t max,
               const char *name, size_t nl, const char *value)
{
	size_t len = strlen(value);
	if (len <= max) {
		char *e = NULL;
		add(l, asprintf(&e, "%.*s=%s", (int)nl, name, value) < 0 ? NULL : e);
		return KR_OK;
	}
	char fname[256], *path = NULL, *e = NULL;
	int dir = svc->area_open(t, "env", KR_AREA_CREATE);
	if (dir < 0)
		return KR_FAILED;
	file_name(name, nl, fname, sizeof(fname));
	if (asprintf(&path, "%s/env/%s", area, fname) < 0) {
		close(dir);
		return svc->fail(t, "execute: out of memory");
	}
	int rc = write_full(svc, t, dir, fname, path, value);
	close(dir);
	if (rc != KR_OK) {
		free(path);
		return KR_FAILED;
	}
	size_t cut = max;
	while (cut > 0 && ((unsigned char)value[cut] & 0xC0) == 0x80)
		cut--; /* not inside a UTF-8 sequence */
	add(l, asprintf(&e, "%.*s=%.*s\xe2\x80\xa6[truncated, full text in $%.*s_FILE]", (int)nl,
	                name, (int)cut, value, (int)nl, name) < 0
	               ? NULL
	               : e);
	e = NULL;
	add(l, asprintf(&e, "%.*s_FILE=%s", (int)nl, name, path) < 0 ? NULL : e);
	svc->log(t, KR_LOG_INFO, "%.*s is %zu bytes, over env_max (%zu): cut; full text in %s",
	         (int)nl, name, len, max, path);
	free(path);
	return KR_OK;
}

char **kr_stage_task_env(const kr_services *svc, kr_task *t, const char *area, size_t max,
                         const char *const *more)
{
	static const struct {
		const char *name, *key;
	} fields[] = {
#define KR_ENV_FIELD(name, key) {name, key},
	        KR_TASK_ENV_FIELDS(KR_ENV_FIELD)
#undef KR_ENV_FIELD
	};
	env_list l = {0};
	int rc = KR_OK;
	for (size_t i = 0; rc == KR_OK && i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = svc->task_get(t, fields[i].key);
		rc = put(svc, t, &l, area, max, fields[i].name, strlen(fields[i].name), v ? v : "");
	}
	size_t n = svc->task_list_count(t, KR_TASK_ENV);
	for (size_t i = 0; rc == KR_OK && i < n; i++) {
		const char *entry = svc->task_list_item(t, KR_TASK_ENV, i);
		const char *eq = entry ? strchr(entry, '=') : NULL;
		if (!eq || eq == entry)
			continue;
		rc = put(svc, t, &l, area, max, entry, (size_t)(eq - entry), eq + 1);
	}
	char *doc = NULL;
	if (rc == KR_OK)
		add(&l, asprintf(&doc, "KERUTA_DOC_DIR=%s/doc", area) < 0 ? NULL : doc);
	for (const char *const *m = more; rc == KR_OK && m && *m; m++)
		add(&l, strdup(*m));
	if (rc == KR_OK && l.oom)
		rc = svc->fail(t, "out of memory building the environment");
	if (rc != KR_OK) {
		kr_stage_env_free(l.v);
		return NULL;
	}
	return l.v;
}

void kr_stage_env_free(char **env)
{
	for (char **e = env; e && *e; e++)
		free(*e);
	free(env);
}

int kr_stage_run_script(const kr_services *svc, kr_task *t, const char *const *argv,
                        const char *work, char **env, uint64_t timeout_ms, const char *label,
                        kr_process_result *r)
{
	kr_process p = {.size = sizeof(p),
	                .argv = argv,
	                .cwd = work,
	                .env = (const char *const *)env,
	                .timeout_ms = timeout_ms,
	                .flags = KR_PROC_CAPTURE,
	                .label = label};
	*r = (kr_process_result){.size = sizeof(*r)};
	int rc = svc->run_process(t, &p, r);
	kr_stage_env_free(env);
	return rc;
}
