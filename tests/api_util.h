/*
 * api_util.h - shared helpers of the keruta-api backend tests: a scratch
 * work dir and pipeline using the api_lines fixture stage, the agent run
 * against the reference server, and readers of the server's recordings.
 */
#ifndef API_UTIL_H
#define API_UTIL_H

#include <json.h>

#include "krtest.h"

typedef struct at_ctx {
	kt_api api;
	char *dir;      /* scratch root                 */
	char *work;     /* the agent's work dir         */
	char *pipeline; /* pipeline file                */
	char *report;   /* the fixture's report file    */
	const char *task; /* --task-id (default "t1")  */
} at_ctx;

/* Start the server (extra server flags, NULL-ended, may be NULL), make
 * the scratch dirs and seed task "t1".  Aborts the test on failure. */
void at_start(at_ctx *c, const char *const *server_args);
void at_stop(at_ctx *c);
/* Write the pipeline: one stage `lines` (api_lines) with `with` (YAML
 * flow mapping body, e.g. "count: 10") and a settings block body. */
void at_pipeline(at_ctx *c, const char *with, const char *settings);
/* POST a control request; aborts unless it answers 200. */
void at_control(at_ctx *c, const char *path, const char *json);
/* GET a control document, parsed (caller puts it). */
json_object *at_get(at_ctx *c, const char *path);
/* Requests recorded with this method whose path ends with suffix. */
int at_count(at_ctx *c, const char *method, const char *suffix);
/* When the server received its first `max` requests for exactly `path`
 * (epoch seconds, into t); returns how many there were, at most max. */
int at_times(at_ctx *c, const char *path, double *t, int max);
/* The log lines the server received for the task (but the agent's own,
 * stream "agent"), as one "\n"-joined
 * string (caller frees), and how many. */
char *at_lines(at_ctx *c, size_t *n);
/* Run `keruta-agent execute --task-id TASK` against the server with more
 * arguments (NULL-ended) and env entries.  Returns the exit status. */
int at_agent(at_ctx *c, kt_result *r, const char *const *args, const char *const *env,
             int timeout_s);
/* argv of that command (for kt_spawn); static storage, valid until next call. */
const char *const *at_agent_argv(at_ctx *c, const char *const *args);
/* The expected "PREFIX-000001\n...PREFIX-N\n" (caller frees). */
char *at_expected(const char *prefix, int from, int to);

#endif
