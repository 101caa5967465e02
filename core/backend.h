/*
 * backend.h - where a task comes from and where its results go.
 *
 * Two backends implement this table: the local one (core/backend_local.c:
 * a task file, JSON-lines events, artifacts copied to a directory), built
 * into the executable, and the keruta-api one (backends/api.c, libcurl and
 * json-c), a module the core loads only when a command talks to the API,
 * so commands that do not pay nothing for those libraries.
 *
 * Every member returns KR_OK, KR_NOT_FOUND or KR_FAILED and on failure
 * fills err with one line that says what failed and what to do.  err->code
 * is KR_EXIT_API when the API could not be reached, answered 5xx after
 * retries or refused the token (401/403), KR_EXIT_USAGE for another
 * refusal caused by our input (4xx), and
 * KR_EXIT_TASK_FAILED for bad data (a malformed task, say).
 */
#ifndef KR_BACKEND_H
#define KR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "keruta/plugin.h"
#include "module.h"
#include "node.h"
#include "util.h"

/* The api module's descriptor (core/module.h: its stamp is checked at
 * load; bump KR_MODULE_ABI whenever this table changes). */
#define KR_BACKEND_SYMBOL "kr_backend_api_module"

struct kr_settings;

typedef struct kr_backend kr_backend;

typedef struct kr_backend_ops {
	const char *name; /* "api" or "local" */
	/* Fill the task context: fields, document ids, env, scripts. */
	int (*fetch_task)(kr_backend *b, kr_task *t, kr_error *err);
	int (*fetch_repository)(kr_backend *b, kr_task *t, kr_error *err);
	int (*fetch_script)(kr_backend *b, kr_task *t, const char *which, const char *dest,
	                    kr_error *err);
	/* *name_out is malloc'd (caller frees) or NULL when the backend has none. */
	int (*fetch_document)(kr_backend *b, kr_task *t, const char *id, const char *dest,
	                      uint64_t max_bytes, char **name_out, kr_error *err);
	int (*upload_artifact)(kr_backend *b, kr_task *t, const char *path, const char *name,
	                       kr_error *err);
	int (*report_status)(kr_backend *b, kr_task *t, const char *status, const char *message,
	                     kr_error *err);
	/* Queue one log line; never blocks on the network.  The line is
	 * already masked.  `stream` is "stdout", "stderr" or "agent". */
	void (*ship_log)(kr_backend *b, const char *stream, const char *line, size_t len);
	/* Deliver everything queued, waiting at most timeout_ms.  KR_OK when
	 * nothing is left undelivered. */
	int (*flush)(kr_backend *b, uint64_t timeout_ms, kr_error *err);
	void (*destroy)(kr_backend *b);
} kr_backend_ops;

struct kr_backend {
	const kr_backend_ops *ops;
	void *impl; /* the backend's own state */
};

/* The api module exports this (symbol KR_BACKEND_SYMBOL). */
typedef struct kr_backend_module {
	kr_module_head head; /* KR_MODULE_HEAD */
	kr_backend *(*create)(const struct kr_settings *s, kr_error *err);
	void (*versions)(kr_buf *out); /* "libcurl 7.88.1\njson-c 0.16\n" */
} kr_backend_module;

kr_backend *kr_backend_local_create(const struct kr_settings *s, kr_error *err);
/* Append "libcurl x.y\njson-c a.b\n" from the api module, if it loads. */
void kr_backend_api_versions(kr_buf *out);

/*
 * Fill the task context from a task record: the API's task JSON or a
 * local task file (same field names; both read into a kr_node tree).
 * Unknown fields are ignored; a field of the wrong type or a missing id
 * is an error naming the field.  `name` is used in messages.
 */
int kr_task_fill_from_node(kr_task *t, const kr_node *task, const char *name, kr_error *err);
/* Fill repository_url/_ref from a repository record ({url, branch}). */
int kr_task_fill_repository(kr_task *t, const kr_node *repo, const char *name, kr_error *err);
/*
 * Read a task file written by a person and check it strictly: unknown
 * keys (with a suggestion), wrong types and {path: FILE} references that
 * cannot be read are errors with file:line:col and code KR_EXIT_USAGE.
 * The tree is the caller's.  kr_taskfile_check checks a tree already read.
 */
int kr_taskfile_load(const char *file, kr_node **out, kr_error *err);
int kr_taskfile_check(const kr_node *task, const char *file, kr_error *err);
/* dlopen the api module from the installed or build-tree location. */
kr_backend *kr_backend_api_create(const struct kr_settings *s, kr_error *err);

#endif
