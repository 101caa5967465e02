/* fixture.c - see fixture.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void kf_init(kf *f, const char *task_yaml)
{
	memset(f, 0, sizeof(*f));
	f->dir = kt_tmpdir();
	f->work = kt_path(f->dir, "work");
	f->task = kt_path(f->dir, "task.yaml");
	f->pipeline = kt_path(f->dir, "pipeline.yaml");
	f->term = kt_path(f->dir, "termination-log");
	f->evpath = kt_path(f->work, ".keruta/events.jsonl");
	f->cwd = f->work;
	if (mkdir(f->work, 0755) != 0) {
		perror(f->work);
		abort();
	}
	kt_write_file(f->task, task_yaml ? task_yaml : "id: t-1\ntitle: a task\n");
}

void kf_files_outside(kf *f)
{
	free(f->evpath);
	free(f->arts);
	f->evpath = kt_path(f->dir, "events.jsonl");
	f->arts = kt_path(f->dir, "artifacts");
	f->cwd = f->dir;
	f->name_files = 1;
}

void kf_free(kf *f)
{
	kt_result_free(&f->r);
	if (f->dir)
		kt_rmrf(f->dir);
	free(f->dir);
	free(f->work);
	free(f->task);
	free(f->pipeline);
	free(f->term);
	free(f->evpath);
	free(f->arts);
	free(f->events);
	free(f->termtext);
	free(f->log);
	memset(f, 0, sizeof(*f));
}

void kf_pipeline(kf *f, const char *yaml)
{
	kt_write_file(f->pipeline, yaml);
}

static size_t count(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

static const char **build_args(kf *f, const char *cmd, const char *const *extra)
{
	const char **a = calloc(count(extra) + 24, sizeof(*a));
	size_t i = 0;
	a[i++] = kt_agent();
	a[i++] = cmd;
	a[i++] = "--pipeline";
	a[i++] = f->pipeline;
	if (f->api_url) {
		a[i++] = "--api-url";
		a[i++] = f->api_url;
		a[i++] = "--api-retries";
		a[i++] = "2";
		a[i++] = "--api-retry-max-time";
		a[i++] = "5s";
	} else if (f->task) {
		a[i++] = "--task-file";
		a[i++] = f->task;
	}
	a[i++] = "--work-dir";
	a[i++] = f->work;
	a[i++] = "--termination-log";
	a[i++] = f->term;
	if (f->name_files && !f->api_url) {
		a[i++] = "--artifacts-dir";
		a[i++] = f->arts;
		a[i++] = "--events-file";
		a[i++] = f->evpath;
	}
	a[i++] = "--log-format";
	a[i++] = "text";
	for (size_t k = 0; extra && extra[k]; k++)
		a[i++] = extra[k];
	return a;
}

/* The settings a test does not name must not come from the caller's
 * environment. */
static const char *const unset[] = {
	"KERUTA_API_TOKEN",   "KERUTA_API_TOKEN_FILE", "KERUTA_API_URL",     "KERUTA_API_ENDPOINT",
	"KERUTA_BACKEND",     "KERUTA_WORK_DIR",       "KERUTA_TASK_ID",     "KERUTA_TASK_FILE",
	"KERUTA_DOCUMENT_ID", "KERUTA_SOURCE_POD",     "KERUTA_REPOSITORY_ID", "KERUTA_GRACE_PERIOD",
	NULL};

/* *owned: the plugin path entry, the caller frees it. */
static const char **build_env(const char *const *extra, char **owned)
{
	const char **e = calloc(count(unset) + count(extra) + 2, sizeof(*e));
	size_t i = 0;
	*owned = NULL;
	int own_path = 0;
	for (size_t k = 0; extra && extra[k]; k++)
		own_path |= strncmp(extra[k], "KERUTA_PLUGIN_PATH=", 19) == 0;
	/* the first of two entries of a name wins, so a caller's path replaces this one */
	if (!own_path) {
		if (asprintf(owned, "KERUTA_PLUGIN_PATH=%s/tests/fixtures/.libs:%s/stages/.libs",
		             kt_builddir(), kt_builddir()) < 0)
			abort();
		e[i++] = *owned;
	}
	for (size_t k = 0; unset[k]; k++)
		e[i++] = unset[k];
	for (size_t k = 0; extra && extra[k]; k++)
		e[i++] = extra[k];
	return e;
}

pid_t kf_spawn(kf *f, const char *cmd, const char *const *args, const char *const *env,
               int *out_fd, int *err_fd)
{
	char *owned;
	const char **a = build_args(f, cmd, args);
	const char **e = build_env(env, &owned);
	pid_t pid = kt_spawn(a, e, f->cwd, out_fd, err_fd);
	free(a);
	free(e);
	free(owned);
	return pid;
}

static char *read_or_empty(const char *path)
{
	char *t = kt_read_file(path, NULL);
	return t ? t : strdup("");
}

int kf_wait(kf *f, kt_result *res, pid_t pid, int out_fd, int err_fd, int timeout_s)
{
	int rc = kt_wait(res, pid, out_fd, err_fd, timeout_s);
	free(f->events);
	free(f->termtext);
	free(f->log);
	f->events = read_or_empty(f->evpath);
	f->termtext = read_or_empty(f->term);
	if (asprintf(&f->log, "%s%s", res->out ? res->out : "", res->err ? res->err : "") < 0)
		abort();
	return rc;
}

int kf_run(kf *f, kt_result *res, const char *cmd, const char *const *args,
           const char *const *env, int timeout_s)
{
	int out_fd, err_fd;
	pid_t pid = kf_spawn(f, cmd, args, env, &out_fd, &err_fd);
	return kf_wait(f, res, pid, out_fd, err_fd, timeout_s);
}
