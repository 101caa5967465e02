/*
 * api.c - the keruta-api backend: the kr_backend_ops table over HTTP.
 *
 * A module (backend-api.so) so that libcurl and json-c are loaded only by
 * commands that talk to the API.  It calls the core's own functions
 * (settings, log, task, node) directly: the executable exports them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json.h>

#include "backend.h"
#include "api_paths.h"
#include "area.h"
#include "http.h"
#include "log.h"
#include "logship.h"
#include "settings.h"
#include "task.h"

/* JSON answers (task, repository, status echo) are small; a bigger one
 * is a broken or hostile server. */
#define JSON_MAX (4u << 20)

typedef struct api {
	const kr_settings *s;
	kr_http *http;
	kr_logship *ship;
	uint64_t max_download;
} api;

static char *logs_path(void *ctx, const char *task_id)
{
	kr_error err = {0};
	char *p = kr_api_path(ctx, "logs", task_id, NULL, NULL, &err);
	if (!p)
		kr_log(KR_LOG_ERROR, NULL, "%s", err.msg);
	return p;
}

/* A JSON object answer, checked strictly (json-c) before it is read as a
 * node tree, so YAML-only syntax from a broken server is not accepted. */
static int parse_object(const char *what, const kr_buf *body, kr_node **out, kr_error *err)
{
	*out = NULL;
	json_tokener *tok = json_tokener_new();
	json_object *o = body->len && body->len < INT32_MAX
	                         ? json_tokener_parse_ex(tok, body->data, (int)body->len)
	                         : NULL;
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = (size_t)json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	int ok = o && jerr == json_tokener_success && json_object_is_type(o, json_type_object);
	while (ok && used < body->len && strchr(" \t\r\n", body->data[used]))
		used++;
	ok = ok && used == body->len;
	json_object_put(o);
	if (!ok) {
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "keruta-api sent %s that is not a JSON object (%zu bytes%s); the server "
		             "or a proxy in front of it is broken",
		             what, body->len,
		             jerr != json_tokener_success ? ", invalid JSON" : "");
		return -1;
	}
	if (kr_node_load_string(what, body->data, body->len, out, err))
		return kr_error_wrap(err, KR_EXIT_TASK_FAILED, "keruta-api sent %s that cannot be read",
		                     what);
	return 0;
}

static int get_json(api *a, const char *path, const char *what, kr_node **out, kr_error *err)
{
	kr_http_req rq = {.method = "GET", .path = path, .max_bytes = JSON_MAX, .what = what};
	kr_http_resp rs = {0};
	int rc = kr_http_request(a->http, &rq, &rs, err);
	if (rc == KR_OK && parse_object(what, &rs.body, out, err))
		rc = KR_FAILED;
	kr_http_resp_free(&rs);
	return rc;
}

/* ---------------------------------------------------------------- ops */

/* An environment variable name a shell can use: what parameters.env may
 * set in the task's child. */
static int env_name_ok(const char *k)
{
	if (!k || !*k || strlen(k) > 255 || (*k >= '0' && *k <= '9'))
		return 0;
	for (const char *p = k; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	return 1;
}

/* A string field of obj, or NULL when absent or null; prefix ("script.")
 * says where obj sits in the answer, for the message. */
static int script_string(const kr_node *obj, const char *prefix, const char *field,
                         const char *name, const char **out, kr_error *err)
{
	const kr_node *v = kr_node_get(obj, field);
	*out = NULL;
	if (!v || kr_node_is_null(v))
		return 0;
	if (v->type != KR_NODE_SCALAR || strlen(v->value) != v->value_len) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "%s: field '%s%s' must be a string (line %d)",
		             name, prefix, field, v->line);
		return -1;
	}
	*out = v->value;
	return 0;
}

/* {NAME: value} for the task's child environment; where names it in the
 * answer.  All entries are checked before any is added. */
static int fill_env(kr_task *t, const kr_node *env, const char *where, const char *name,
                    kr_error *err)
{
	if (!env || kr_node_is_null(env))
		return 0;
	if (env->type != KR_NODE_MAP) {
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "%s: field '%s' must be an object of NAME: value (line %d)", name, where,
		             env->line);
		return -1;
	}
	for (size_t i = 0; i < env->n; i++) {
		const char *k = env->keys[i]->value;
		const kr_node *v = env->items[i];
		if (!env_name_ok(k) || v->type != KR_NODE_SCALAR || strlen(v->value) != v->value_len) {
			kr_error_set(err, KR_EXIT_TASK_FAILED,
			             "%s: %s entry '%.64s' (line %d) must be NAME: value, NAME made of "
			             "letters, digits and '_' not starting with a digit, the value a string "
			             "without NUL bytes",
			             name, where, k, v->line);
			return -1;
		}
	}
	for (size_t i = 0; i < env->n; i++) {
		char *entry = kr_asprintf("%s=%s", env->keys[i]->value,
		                          kr_node_is_null(env->items[i]) ? "" : env->items[i]->value);
		kr_task_list_add(t, KR_TASK_ENV, entry);
		free(entry);
	}
	return 0;
}

/* installScript, executeScript, cleanupScript (and "script" for the
 * execute script when executeScript is absent) found in obj. */
static int fill_named_scripts(kr_task *t, const kr_node *obj, const char *prefix,
                              const char *name, kr_error *err)
{
	static const struct {
		const char *field, *key;
	} f[] = {{"installScript", KR_TASK_SCRIPT_INSTALL},
	         {"executeScript", KR_TASK_SCRIPT_EXECUTE},
	         {"script", KR_TASK_SCRIPT_EXECUTE},
	         {"cleanupScript", KR_TASK_SCRIPT_CLEANUP}};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		const char *v;
		if (script_string(obj, prefix, f[i].field, name, &v, err))
			return -1;
		if (!v || (strcmp(f[i].field, "script") == 0 && kr_task_get(t, KR_TASK_SCRIPT_EXECUTE)))
			continue;
		kr_task_set(t, f[i].key, v);
	}
	return 0;
}

/*
 * The script object of an answer {taskId, script: {...}}, in either of two
 * shapes.  keruta-api's ScriptResponse: script {installScript,
 * executeScript, cleanupScript} and environment {NAME: value} beside it.
 * The original agent's: {success, taskId, script: {content, language,
 * filename, parameters: {env}}}, content the execute script, language and
 * filename for the execute stage (script.language, script.filename).
 * Both environments join the task's.
 */
static int fill_script_object(kr_task *t, const kr_node *n, const kr_node *sc, const char *name,
                              kr_error *err)
{
	const kr_node *tid = kr_node_get(n, "taskId");
	const char *want = kr_task_get(t, KR_TASK_ID);
	if (tid && tid->type == KR_NODE_SCALAR && !kr_node_is_null(tid) && want &&
	    strcmp(tid->value, want) != 0) {
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "%s: keruta-api sent the script of task '%s'; check the api_paths.script "
		             "setting",
		             name, tid->value);
		return -1;
	}
	const char *content, *language, *filename;
	if (script_string(sc, "script.", "content", name, &content, err) ||
	    script_string(sc, "script.", "language", name, &language, err) ||
	    script_string(sc, "script.", "filename", name, &filename, err))
		return -1;
	const kr_node *params = kr_node_get(sc, "parameters");
	if (params && !kr_node_is_null(params) && params->type != KR_NODE_MAP) {
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "%s: field 'script.parameters' must be an object (line %d)", name,
		             params->line);
		return -1;
	}
	const kr_node *penv = params && params->type == KR_NODE_MAP ? kr_node_get(params, "env") : NULL;
	if (fill_env(t, kr_node_get(n, "environment"), "environment", name, err) ||
	    fill_env(t, penv, "script.parameters.env", name, err) ||
	    fill_named_scripts(t, sc, "script.", name, err))
		return -1;
	if (content && *content)
		kr_task_set(t, KR_TASK_SCRIPT_EXECUTE, content);
	if (language && *language)
		kr_task_set(t, "script.language", language);
	if (filename && *filename)
		kr_task_set(t, "script.filename", filename);
	return 0;
}

static int fill_scripts(kr_task *t, const kr_node *n, const char *name, kr_error *err)
{
	const kr_node *ok = kr_node_get(n, "success");
	if (ok && ok->type == KR_NODE_SCALAR && ok->plain && strcmp(ok->value, "false") == 0) {
		const kr_node *m = kr_node_get(n, "message");
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "%s: keruta-api answered success: false%s%s; check the task's script in "
		             "keruta",
		             name, m && m->type == KR_NODE_SCALAR ? ": " : "",
		             m && m->type == KR_NODE_SCALAR ? m->value : "");
		return -1;
	}
	const kr_node *sc = kr_node_get(n, "script");
	if (sc && sc->type == KR_NODE_MAP)
		return fill_script_object(t, n, sc, name, err);
	return fill_named_scripts(t, n, "", name, err);
}

/* The ids keruta-api's task brought, before any stage turns one into a
 * request (a document id ".." would leave the documents endpoint). */
static int check_task_ids(const kr_task *t, kr_error *err)
{
	if (kr_id_check("task id", kr_task_get(t, KR_TASK_ID), err))
		return -1;
	if (kr_task_get(t, KR_TASK_REPOSITORY_ID) &&
	    kr_id_check("repository id", kr_task_get(t, KR_TASK_REPOSITORY_ID), err))
		return -1;
	for (size_t i = 0; i < kr_task_list_count(t, KR_TASK_DOCUMENT_IDS); i++)
		if (kr_id_check("document id", kr_task_list_item(t, KR_TASK_DOCUMENT_IDS, i), err))
			return -1;
	return 0;
}

static int api_fetch_task(kr_backend *b, kr_task *t, kr_error *err)
{
	api *a = b->impl;
	const char *given = kr_task_get(t, KR_TASK_ID);
	if (!given)
		return KR_OK; /* init with only --repository-id: nothing to fetch */
	char *id = kr_strdup(given);
	char *what = kr_asprintf("task %s", id);
	char *path = kr_api_path(a->s, "task", id, NULL, NULL, err);
	kr_node *n = NULL;
	int rc = path ? get_json(a, path, what, &n, err) : KR_FAILED;
	free(path);
	if (rc == KR_NOT_FOUND)
		rc = KR_FAILED;
	if (rc == KR_OK && (kr_task_fill_from_node(t, n, what, err) || check_task_ids(t, err)))
		rc = KR_FAILED;
	if (rc == KR_OK && strcmp(kr_task_get(t, KR_TASK_ID), id) != 0) {
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "keruta-api answered task '%s' when asked for task '%s'; check the "
		             "api_paths.task setting",
		             kr_task_get(t, KR_TASK_ID), id);
		rc = KR_FAILED;
	}
	kr_node_free(n);
	n = NULL;
	if (rc == KR_OK) {
		char *swhat = kr_asprintf("scripts of task %s", id);
		path = kr_api_path(a->s, "script", id, NULL, NULL, err);
		kr_error serr = {0};
		int src = path ? get_json(a, path, swhat, &n, &serr) : KR_FAILED;
		free(path);
		if (src == KR_OK)
			rc = fill_scripts(t, n, swhat, err) ? KR_FAILED : KR_OK;
		else if (src != KR_NOT_FOUND) {
			kr_error_set(err, serr.code, "%s", serr.msg);
			rc = KR_FAILED;
		}
		if (rc != KR_OK)
			kr_task_set(t, KR_TASK_ERROR_CODE, "SCRIPT_FETCH_ERROR");
		kr_node_free(n);
		free(swhat);
	}
	free(what);
	free(id);
	return rc;
}

static int api_fetch_repository(kr_backend *b, kr_task *t, kr_error *err)
{
	api *a = b->impl;
	const char *rid = kr_task_get(t, KR_TASK_REPOSITORY_ID);
	if (!rid) {
		if (kr_task_get(t, KR_TASK_REPOSITORY_URL))
			return KR_OK;
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "the task names no repository (no repositoryId); give --repository-id");
		return KR_NOT_FOUND;
	}
	char *what = kr_asprintf("repository %s", rid);
	char *path = kr_api_path(a->s, "repository", NULL, rid, NULL, err);
	kr_node *n = NULL;
	int rc = path ? get_json(a, path, what, &n, err) : KR_FAILED;
	if (rc == KR_OK && kr_task_fill_repository(t, n, what, err))
		rc = KR_FAILED;
	kr_node_free(n);
	free(path);
	free(what);
	return rc;
}

static int write_text(const char *dest, const char *text, kr_error *err)
{
	FILE *f = fopen(dest, "wbe");
	size_t len = strlen(text);
	if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", dest, strerror(errno));
		if (f)
			fclose(f);
		return KR_FAILED;
	}
	return KR_OK;
}

static int api_fetch_script(kr_backend *b, kr_task *t, const char *which, const char *dest,
                            kr_error *err)
{
	api *a = b->impl;
	char key[64];
	snprintf(key, sizeof(key), "script_%s", which);
	const char *from_task = kr_task_is_field(key) ? kr_task_get(t, key) : NULL;
	if (strcmp(which, "install") != 0 || !kr_task_get(t, KR_TASK_REPOSITORY_ID)) {
		if (!from_task || !*from_task)
			return KR_NOT_FOUND;
		return write_text(dest, from_task, err);
	}
	const char *rid = kr_task_get(t, KR_TASK_REPOSITORY_ID);
	char *what = kr_asprintf("install script of repository %s", rid);
	char *path = kr_api_path(a->s, "install_script", NULL, rid, NULL, err);
	int rc = KR_FAILED;
	if (path) {
		kr_http_req rq = {.method = "GET", .path = path, .dest = dest,
		                  .max_bytes = a->max_download,
		                  .limit_fix = "raise the max_download setting if it is legitimate",
		                  .what = what};
		kr_http_resp rs = {0};
		kr_error gerr = {0};
		rc = kr_http_request(a->http, &rq, &rs, &gerr);
		struct stat st;
		if (rc == KR_OK && stat(dest, &st) == 0 && st.st_size == 0) {
			unlink(dest);
			rc = KR_NOT_FOUND;
		}
		if (rc == KR_NOT_FOUND && from_task && *from_task)
			rc = write_text(dest, from_task, err);
		else if (rc == KR_FAILED)
			kr_error_set(err, gerr.code, "%s", gerr.msg);
		kr_http_resp_free(&rs);
	}
	free(path);
	free(what);
	return rc;
}

static int api_fetch_document(kr_backend *b, kr_task *t, const char *id, const char *dest,
                              uint64_t max_bytes, char **name_out, kr_error *err)
{
	api *a = b->impl;
	if (name_out)
		*name_out = NULL;
	char *what = kr_asprintf("document %s", id);
	char *path = kr_api_path(a->s, "document", kr_task_get(t, KR_TASK_ID), NULL, id, err);
	int rc = KR_FAILED;
	if (path) {
		kr_http_req rq = {.method = "GET", .path = path, .dest = dest,
		                  .max_bytes = max_bytes ? max_bytes : a->max_download,
		                  .limit_fix = max_bytes ? "raise the document stage's max_size if it is "
		                                           "legitimate"
		                                         : "raise the max_download setting if it is "
		                                           "legitimate",
		                  .what = what};
		kr_http_resp rs = {0};
		rc = kr_http_request(a->http, &rq, &rs, err);
		if (rc == KR_OK && name_out && rs.filename) {
			*name_out = rs.filename;
			rs.filename = NULL;
		}
		kr_http_resp_free(&rs);
	}
	free(path);
	free(what);
	return rc;
}

/* The id keruta-api gave the uploaded document ({"documents": [{"id"}]}),
 * for the task's upload record (core/upload.c); none is not an error. */
static void remember_document_id(kr_task *t, const kr_buf *body)
{
	kr_node *n = NULL;
	kr_error perr = {0};
	if (!body->len || kr_node_load_string("upload answer", body->data, body->len, &n, &perr))
		return;
	const kr_node *docs = kr_node_get(n, "documents");
	const kr_node *id = docs && docs->n && !docs->keys ? kr_node_get(docs->items[0], "id")
	                                                   : kr_node_get(n, "id");
	if (id && id->value && !id->n)
		kr_task_set(t, "upload.document_id", id->value);
	kr_node_free(n);
}

static int api_upload_artifact(kr_backend *b, kr_task *t, const char *file, const char *name,
                               kr_error *err)
{
	api *a = b->impl;
	char *what = kr_asprintf("artifact %s", name);
	char *path = kr_api_path(a->s, "artifact", kr_task_get(t, KR_TASK_ID), NULL, NULL, err);
	int rc = KR_FAILED;
	if (path) {
		kr_http_req rq = {.method = "POST", .path = path, .upload_path = file,
		                  .upload_name = name, .upload_field = "file",
		                  .max_bytes = JSON_MAX, .what = what};
		kr_http_resp rs = {0};
		rc = kr_http_request(a->http, &rq, &rs, err);
		if (rc == KR_NOT_FOUND)
			rc = KR_FAILED;
		if (rc == KR_OK)
			remember_document_id(t, &rs.body);
		kr_http_resp_free(&rs);
	}
	free(path);
	free(what);
	return rc;
}

static int api_report_status(kr_backend *b, kr_task *t, const char *status, const char *message,
                             kr_error *err)
{
	api *a = b->impl;
	char *path = kr_api_path(a->s, "status", kr_task_get(t, KR_TASK_ID), NULL, NULL, err);
	if (!path)
		return KR_FAILED;
	kr_buf body = {0};
	kr_buf_adds(&body, "{\"status\":\"");
	kr_buf_add_json_str(&body, status, strlen(status));
	kr_buf_addc(&body, '"');
	if (message && *message) {
		kr_buf_adds(&body, ",\"message\":\"");
		kr_buf_add_json_str(&body, message, strlen(message));
		kr_buf_addc(&body, '"');
	}
	/* the original agent's fields; every value a string, as the published
	 * schema of this body (an object of strings) has it */
	const char *extra[][2] = {{"progress", kr_task_get(t, KR_TASK_STATUS_PROGRESS)},
	                          {"errorCode", kr_task_get(t, KR_TASK_ERROR_CODE)}};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		if (!extra[i][1] || !*extra[i][1])
			continue;
		kr_buf_addf(&body, ",\"%s\":\"", extra[i][0]);
		kr_buf_add_json_str(&body, extra[i][1], strlen(extra[i][1]));
		kr_buf_addc(&body, '"');
	}
	kr_buf_addc(&body, '}');
	char *what = kr_asprintf("status %s", status);
	kr_http_req rq = {.method = "PUT", .path = path, .json = body.data, .max_bytes = JSON_MAX,
	                  .what = what};
	kr_http_resp rs = {0};
	int rc = kr_http_request(a->http, &rq, &rs, err);
	if (rc == KR_NOT_FOUND)
		rc = KR_FAILED;
	kr_http_resp_free(&rs);
	kr_buf_free(&body);
	free(what);
	free(path);
	return rc;
}

static void api_ship_log(kr_backend *b, const char *stream, const char *line, size_t len)
{
	api *a = b->impl;
	if (a->ship)
		kr_logship_line(a->ship, stream, line, len);
}

static int api_flush(kr_backend *b, uint64_t timeout_ms, kr_error *err)
{
	api *a = b->impl;
	return a->ship ? kr_logship_flush(a->ship, timeout_ms, err) : KR_OK;
}

static void api_destroy(kr_backend *b)
{
	api *a = b->impl;
	kr_logship_free(a->ship);
	kr_http_free(a->http);
	free(a);
	free(b);
}

static const kr_backend_ops api_ops = {
        .name = "api",
        .fetch_task = api_fetch_task,
        .fetch_repository = api_fetch_repository,
        .fetch_script = api_fetch_script,
        .fetch_document = api_fetch_document,
        .upload_artifact = api_upload_artifact,
        .report_status = api_report_status,
        .ship_log = api_ship_log,
        .flush = api_flush,
        .destroy = api_destroy,
};

static kr_backend *create(const kr_settings *s, kr_error *err)
{
	const char *url = kr_settings_get(s, KR_S_API_URL);
	if (!url || !*url) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "no API URL: give --api-url or KERUTA_API_URL, or use --task-file for "
		             "local mode");
		return NULL;
	}
	kr_http_opts o;
	kr_api_http_opts(s, kr_settings_get(s, KR_S_API_TOKEN), &o);
	api *a = kr_calloc(1, sizeof(*a));
	a->s = s;
	a->max_download = kr_settings_u64(s, KR_S_MAX_DOWNLOAD);
	a->http = kr_http_new(&o, err);
	if (!a->http) {
		free(a);
		return NULL;
	}
	if (o.insecure)
		kr_log(KR_LOG_WARN, NULL,
		       "TLS certificate verification is OFF (--insecure / KERUTA_INSECURE): anyone on "
		       "the network path can read the API token; use --ca-file instead");

	/* The shipper talks on its own connection: retries are its own (with
	 * the spool), so one slow batch never holds up the next attempt. */
	kr_logship_opts lo = {
	        .http = o,
	        .path_for = logs_path,
	        .ctx = (void *)s,
	        .task_id = kr_settings_get(s, KR_S_TASK_ID),
	        .batch_lines = kr_settings_u64(s, KR_S_LOG_BATCH_LINES),
	        .batch_bytes = kr_settings_u64(s, KR_S_LOG_BATCH_BYTES),
	        .interval_ms = kr_settings_u64(s, KR_S_LOG_BATCH_INTERVAL),
	        .max_line = kr_settings_u64(s, KR_S_LOG_MAX_LINE),
	        .max_total = kr_settings_u64(s, KR_S_LOG_MAX_TOTAL),
	};
	lo.http.retries = 0;
	lo.http.retry_max_ms = 0;
	/* The task's own spool (core/area.h): another task's on a shared
	 * volume is never replayed as this one's. */
	const char *tid = kr_settings_get(s, KR_S_TASK_ID);
	char *spool = kr_area_id_ok(tid) ? kr_asprintf("%s/" KR_AREA_DIR "/" KR_AREA_TASKS "/%s/log-spool",
	                                               kr_settings_get(s, KR_S_WORK_DIR), tid)
	                                 : kr_asprintf("%s/" KR_AREA_DIR "/log-spool",
	                                               kr_settings_get(s, KR_S_WORK_DIR));
	lo.spool_path = spool;
	a->ship = kr_logship_new(&lo, err);
	free(spool);
	if (!a->ship) {
		kr_http_free(a->http);
		free(a);
		return NULL;
	}
	kr_backend *b = kr_calloc(1, sizeof(*b));
	b->ops = &api_ops;
	b->impl = a;
	return b;
}

static void versions(kr_buf *out)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	kr_buf_addf(out, "libcurl %s%s%s\njson-c %s\n", v->version, v->ssl_version ? " " : "",
	            v->ssl_version ? v->ssl_version : "", json_c_version());
}

__attribute__((visibility("default"))) const kr_backend_module kr_backend_api_module = {
        KR_MODULE_HEAD, create, versions};
