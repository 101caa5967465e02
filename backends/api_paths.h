/*
 * api_paths.h - how to reach keruta-api: the endpoint path templates (the
 * defaults of the design, the seeds' paths, overridable by the pipeline's
 * `settings: api_paths:`) and the connection options.  Shared by the api
 * backend and the launcher, so both talk to the same endpoints the same
 * way.
 */
#ifndef KR_API_PATHS_H
#define KR_API_PATHS_H

#include "http.h"
#include "settings.h"
#include "util.h"

/* The template of endpoint `key`: the setting, else the default ("" for
 * an unknown key).  The string is the settings' or static. */
const char *kr_api_path_template(const kr_settings *s, const char *key);

/* The path of endpoint `key` with {taskId}, {repositoryId} and
 * {documentId} replaced by the URL-encoded, checked ids (kr_id_check).
 * The string is the caller's; NULL (err set, exit 2) when the template
 * names another placeholder or a value it needs is missing or no path
 * segment. */
char *kr_api_path(const kr_settings *s, const char *key, const char *task_id,
                  const char *repo_id, const char *doc_id, kr_error *err);

/* The connection to keruta-api as the settings give it (URL, CA file,
 * --insecure, timeouts, retries; DEBUG logging dumps headers) with token
 * as the bearer token.  The strings stay the settings' and the caller's. */
void kr_api_http_opts(const kr_settings *s, const char *token, kr_http_opts *o);

#endif
