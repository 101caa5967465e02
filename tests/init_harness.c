/*
 * init_harness.c - shared by the install, document, collect and cleanup
 * tests (#included, so each test program stays one file to build): a
 * scratch directory with a work dir, a pipeline and a task file, and a
 * run of the real keruta-agent on them in local mode.  Not every
 * program uses every helper, hence KX_HELPER.
 */
#define KX_HELPER __attribute__((unused)) static
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "krtest.h"

typedef struct kx {
	char *dir;      /* scratch root                          */
	char *work;     /* dir/work: the work dir                */
	char *pipeline; /* dir/pipeline.yaml                     */
	char *task;     /* dir/task.yaml                         */
	char *term;     /* dir/termination-log                   */
	char *arts;     /* dir/artifacts: local artifacts dir    */
	char *evpath;   /* dir/events.jsonl: local events file   */
	kt_result r;
	char *events;   /* events.jsonl after the run ("" if none) */
	char *termtext; /* termination message ("" if none)     */
	char *log;      /* stdout + stderr of the agent          */
} kx;

/* Every stage of this area, each under its plugin's name. */
#define KX_STAGES                                                                           \
	"stages:\n"                                                                             \
	"  install: {plugin: install}\n"                                                        \
	"  document: {plugin: document}\n"                                                      \
	"  collect: {plugin: collect}\n"                                                        \
	"  cleanup: {plugin: cleanup, when: always}\n"

KX_HELPER void kx_setup(kx *x)
{
	memset(x, 0, sizeof(*x));
	x->dir = kt_tmpdir();
	x->work = kt_path(x->dir, "work");
	x->pipeline = kt_path(x->dir, "pipeline.yaml");
	x->task = kt_path(x->dir, "task.yaml");
	x->term = kt_path(x->dir, "termination-log");
	x->arts = kt_path(x->dir, "artifacts");
	x->evpath = kt_path(x->dir, "events.jsonl");
	cr_assert_eq(mkdir(x->work, 0755), 0);
	kt_write_file(x->task, "id: t-1\ntitle: test task\n");
}

KX_HELPER void kx_free(kx *x)
{
	kt_result_free(&x->r);
	kt_rmrf(x->dir);
	free(x->dir);
	free(x->work);
	free(x->pipeline);
	free(x->task);
	free(x->term);
	free(x->arts);
	free(x->evpath);
	free(x->events);
	free(x->termtext);
	free(x->log);
	memset(x, 0, sizeof(*x));
}

/* dir/rel (rel may contain directories, which are created). */
KX_HELPER char *kx_mk(const char *base, const char *rel)
{
	char *p = kt_path(base, rel);
	for (char *s = p + strlen(base) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	return p;
}

KX_HELPER void kx_write(const char *base, const char *rel, const char *text)
{
	char *p = kx_mk(base, rel);
	kt_write_file(p, text);
	free(p);
}

KX_HELPER void kx_write_bytes(const char *base, const char *rel, const void *data, size_t len)
{
	char *p = kx_mk(base, rel);
	kt_write_bytes(p, data, len);
	free(p);
}

KX_HELPER int kx_exists(const char *base, const char *rel)
{
	char *p = kt_path(base, rel);
	struct stat st;
	int r = lstat(p, &st) == 0;
	free(p);
	return r;
}

KX_HELPER char *kx_read(const char *base, const char *rel, size_t *len)
{
	char *p = kt_path(base, rel);
	char *t = kt_read_file(p, len);
	free(p);
	return t;
}

/* Number of entries in dir (not counting . and ..), -1 if unreadable. */
KX_HELPER int kx_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Pipeline: phases YAML (e.g. "  init: [install]\n") + a stages block. */
KX_HELPER void kx_pipeline(kx *x, const char *phases, const char *stages)
{
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nphases:\n%sstages:\n%s", phases,
	                   stages ? stages : KX_STAGES + strlen("stages:\n")) > 0);
	kt_write_file(x->pipeline, text);
	free(text);
}

/* Run `keruta-agent CMD` in local mode on x's files; args and env extra. */
KX_HELPER void kx_agent(kx *x, const char *cmd, const char *const *args, const char *const *env)
{
	const char *argv[64] = {kt_agent(),   cmd,           "--pipeline", x->pipeline,
	                        "--task-file", x->task,      "--work-dir", x->work,
	                        "--termination-log", x->term, "--artifacts-dir", x->arts,
	                        "--events-file", x->evpath, "--log-format", "text"};
	int n = 16;
	for (int i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	/* what the test does not set must not leak in from the environment */
	const char *envv[32] = {"KERUTA_DOCUMENT_ID", "KERUTA_SOURCE_POD", "KERUTA_TASK_ID",
	                        "KERUTA_REPOSITORY_ID", "KERUTA_API_URL", "KERUTA_API_ENDPOINT",
	                        "KERUTA_WORK_DIR", "KERUTA_BACKEND"};
	int m = 8;
	for (int i = 0; env && env[i] && m < 31; i++)
		envv[m++] = env[i];
	envv[m] = NULL;
	kt_result_free(&x->r);
	cr_assert_eq(kt_run(&x->r, argv, envv, x->dir, NULL, 60), 0, "could not run the agent");
	cr_assert(!x->r.timed_out, "the agent did not finish in 60s; stderr:\n%s", x->r.err);
	free(x->events);
	free(x->termtext);
	free(x->log);
	x->events = kt_read_file(x->evpath, NULL);
	if (!x->events)
		x->events = strdup("");
	x->termtext = kt_read_file(x->term, NULL);
	if (!x->termtext)
		x->termtext = strdup("");
	cr_assert(asprintf(&x->log, "%s%s", x->r.out, x->r.err) >= 0);
}

/* ---- keruta-api mode, against the reference server (tests/refapi) ---- */

/* Start the reference server (python3). */
KX_HELPER void kx_api_start(kt_api *api)
{
	cr_assert_eq(kt_api_start(api, NULL), 0, "the reference keruta-api server did not start");
}

/* POST /_control/seed (or another control path) and expect 200. */
KX_HELPER void kx_api_control(kt_api *api, const char *path, const char *json)
{
	int status = 0;
	char *body = kt_api_call(api, "POST", path, json, &status);
	cr_assert_eq(status, 200, "%s: %d %s", path, status, body ? body : "(no answer)");
	free(body);
}

/* GET /_control/state as text. */
KX_HELPER char *kx_api_state(kt_api *api)
{
	int status = 0;
	char *body = kt_api_call(api, "GET", "/_control/state", NULL, &status);
	cr_assert_eq(status, 200);
	return body;
}

/* Run `keruta-agent CMD` against the server (no task file). */
KX_HELPER void kx_agent_api(kx *x, kt_api *api, const char *cmd, const char *const *args,
                            const char *const *env)
{
	const char *argv[64] = {kt_agent(),   cmd,         "--pipeline",        x->pipeline,
	                        "--api-url",  api->url,    "--work-dir",        x->work,
	                        "--termination-log", x->term, "--log-format", "text",
	                        "--api-retries", "2", "--api-retry-max-time", "5s"};
	int n = 16;
	for (int i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	const char *envv[32] = {"KERUTA_DOCUMENT_ID", "KERUTA_SOURCE_POD", "KERUTA_TASK_ID",
	                        "KERUTA_REPOSITORY_ID", "KERUTA_API_URL", "KERUTA_API_ENDPOINT",
	                        "KERUTA_WORK_DIR", "KERUTA_BACKEND", "KERUTA_TASK_FILE",
	                        "KERUTA_API_TOKEN"};
	int m = 10;
	for (int i = 0; env && env[i] && m < 31; i++)
		envv[m++] = env[i];
	envv[m] = NULL;
	kt_result_free(&x->r);
	cr_assert_eq(kt_run(&x->r, argv, envv, x->dir, NULL, 60), 0, "could not run the agent");
	cr_assert(!x->r.timed_out, "the agent did not finish in 60s; stderr:\n%s", x->r.err);
	free(x->events);
	free(x->termtext);
	free(x->log);
	x->events = strdup("");
	x->termtext = kt_read_file(x->term, NULL);
	if (!x->termtext)
		x->termtext = strdup("");
	cr_assert(asprintf(&x->log, "%s%s", x->r.out, x->r.err) >= 0);
}
