/*
 * api_paths.c - the one place keruta-api endpoint paths and connection
 * options are made, for the api backend and the launcher alike (both link
 * it).
 */
#include "api_paths.h"

#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"

const char *kr_api_path_template(const kr_settings *s, const char *key)
{
	static const struct {
		const char *key, *def;
	} defaults[] = {
	        {"task", "/api/v1/tasks/{taskId}"},
	        {"script", "/api/v1/tasks/{taskId}/script"},
	        {"repository", "/api/v1/repositories/{repositoryId}"},
	        {"status", "/api/v1/tasks/{taskId}/status"},
	        {"logs", "/api/v1/tasks/{taskId}/logs"},
	        {"install_script", "/api/v1/repositories/{repositoryId}/script"},
	        {"document", "/api/v1/documents/{documentId}/content"},
	        {"artifact", "/api/tasks/{taskId}/documents"},
	        {"pending", "/api/v1/tasks/status/PENDING"},
	};
	const char *v = kr_settings_map_get(s, KR_S_API_PATHS, key);
	if (v && *v)
		return v;
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (strcmp(defaults[i].key, key) == 0)
			return defaults[i].def;
	return "";
}

char *kr_api_path(const kr_settings *s, const char *key, const char *task_id,
                  const char *repo_id, const char *doc_id, kr_error *err)
{
	const char *tmpl = kr_api_path_template(s, key);
	kr_buf b = {0};
	if (tmpl[0] != '/')
		kr_buf_addc(&b, '/');
	for (const char *p = tmpl; *p;) {
		if (*p != '{') {
			kr_buf_addc(&b, *p++);
			continue;
		}
		const char *close = strchr(p, '}');
		size_t n = close ? (size_t)(close - p - 1) : 0;
		const char *value = NULL, *what = NULL;
		if (close && n == 6 && strncmp(p + 1, "taskId", 6) == 0)
			value = task_id, what = "task id";
		else if (close && n == 12 && strncmp(p + 1, "repositoryId", 12) == 0)
			value = repo_id, what = "repository id";
		else if (close && n == 10 && strncmp(p + 1, "documentId", 10) == 0)
			value = doc_id, what = "document id";
		if (!what) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "settings api_paths.%s '%s': unknown placeholder at '%.20s'; use "
			             "{taskId}, {repositoryId} or {documentId}",
			             key, tmpl, p);
			kr_buf_free(&b);
			return NULL;
		}
		if (!value || !*value) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "keruta-api endpoint %s (%s) needs a %s and there is none; give it "
			             "with --task-id / --repository-id or in the task",
			             key, tmpl, what);
			kr_buf_free(&b);
			return NULL;
		}
		if (kr_id_check(what, value, err)) {
			kr_buf_free(&b);
			return NULL;
		}
		char *e = kr_http_escape(value);
		kr_buf_adds(&b, e);
		free(e);
		p = close + 1;
	}
	return b.data;
}

void kr_api_http_opts(const kr_settings *s, const char *token, kr_http_opts *o)
{
	uint64_t retries = kr_settings_u64(s, KR_S_API_RETRIES);
	const char *ca = kr_settings_get(s, KR_S_CA_FILE);
	*o = (kr_http_opts){
	        .base_url = kr_settings_get(s, KR_S_API_URL),
	        .token = token,
	        .ca_file = ca && *ca ? ca : NULL,
	        .insecure = kr_settings_bool(s, KR_S_INSECURE),
	        .connect_timeout_ms = kr_settings_u64(s, KR_S_API_CONNECT_TIMEOUT),
	        .timeout_ms = kr_settings_u64(s, KR_S_API_TIMEOUT),
	        .retries = retries > 100 ? 100 : (unsigned)retries,
	        .retry_max_ms = kr_settings_u64(s, KR_S_API_RETRY_MAX_TIME),
	        .debug = kr_log_get_level() <= KR_LOG_DEBUG,
	};
}
