/*
 * launcher.c - the launcher module's entry point, the render command, and
 * the keruta-api calls of the launcher.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launcher.h"
#include "api_paths.h"
#include "backend.h"
#include "log.h"
#include "secret.h"

#define JSON_MAX (64u << 20) /* the PENDING list of a busy deployment */

/* The path of endpoint `key` for this id (a task's or a repository's,
 * whichever the template names), or NULL (err set) for an id that is no
 * path segment: ids come from keruta-api's lists and from Job annotations
 * in the cluster, and ".." would send the token elsewhere. */
static char *api_path(const kr_settings *s, const char *key, const char *id, kr_error *err)
{
	return kr_api_path(s, key, id, id, NULL, err);
}

const char *kr_launcher_status_name(const kr_settings *s, const char *which)
{
	const char *v = kr_settings_map_get(s, KR_S_STATUS_NAMES, which);
	if (v && *v)
		return v;
	if (strcmp(which, "completed") == 0)
		return "COMPLETED";
	if (strcmp(which, "failed") == 0)
		return "FAILED";
	return "IN_PROGRESS";
}

kr_http *kr_launcher_api(const kr_settings *s, const volatile int *abort_flag, int single_attempt,
                         kr_error *err)
{
	const char *url = kr_settings_get(s, KR_S_API_URL);
	if (!url || !*url)
		return NULL;
	char *token = NULL;
	if (kr_settings_api_token(s, &token, err))
		return NULL;
	kr_secret_add(token);
	kr_secret_add_url_password(url);
	kr_http_opts o;
	kr_api_http_opts(s, token, &o);
	if (single_attempt)
		o.retries = 0;
	o.abort_flag = abort_flag;
	kr_http *h = kr_http_new(&o, err);
	free(token);
	return h;
}

/* 0, or -1 with err set; KR_NOT_FOUND-style 404s give 1 when missing_ok. */
static int get_node_opt(kr_http *api, const char *path, const char *what, kr_node **out,
                        int missing_ok, kr_error *err)
{
	kr_http_req rq = {.method = "GET", .path = path, .max_bytes = JSON_MAX, .what = what};
	kr_http_resp rs = {0};
	int rc = kr_http_request(api, &rq, &rs, err);
	if (rc == KR_NOT_FOUND && missing_ok) {
		kr_http_resp_free(&rs);
		kr_error_clear(err);
		return 1;
	}
	if (rc == KR_OK) {
		if (kr_node_load_string(what, rs.body.data ? rs.body.data : "", rs.body.len, out,
		                        err)) {
			kr_error_wrap(err, KR_EXIT_API, "keruta-api sent %s that cannot be read", what);
			rc = KR_FAILED;
		}
	}
	kr_http_resp_free(&rs);
	return rc == KR_OK ? 0 : -1;
}

static int get_node(kr_http *api, const char *path, const char *what, kr_node **out,
                    kr_error *err)
{
	return get_node_opt(api, path, what, out, 0, err);
}

/* The volume fields the task left unset come from its repository record
 * (one record shared by a parent and its children).  A repository that
 * keruta-api does not know leaves the launcher's settings in force. */
int kr_launcher_task_repository(const kr_settings *s, kr_http *api, kr_ltask *t, kr_error *err)
{
	const char *rid = kr_task_get(t->task, KR_TASK_REPOSITORY_ID);
	int missing = 0;
	for (int i = 0; i < KR_PVC_FIELDS; i++)
		missing |= !t->pvc[i];
	if (!api || !rid || !*rid || !missing)
		return 0;
	char *what = kr_asprintf("repository %s of task %s", rid, kr_ltask_id(t));
	char *path = api_path(s, "repository", rid, err);
	kr_node *n = NULL;
	int rc = path ? get_node_opt(api, path, what, &n, 1, err) : -1;
	if (rc == 1)
		kr_log(KR_LOG_DEBUG, NULL, "%s: keruta-api does not know it; the launcher's volume "
		                           "settings apply", what);
	else if (rc == 0 && n->type == KR_NODE_MAP)
		rc = kr_ltask_load_repository(t, n, what, err);
	kr_node_free(n);
	free(path);
	free(what);
	return rc < 0 ? -1 : 0;
}

int kr_launcher_task(const kr_settings *s, kr_http *api, const char *id, kr_ltask *t,
                     kr_error *err)
{
	const char *file = kr_settings_get(s, KR_S_TASK_FILE);
	kr_node *n = NULL;
	char *what;
	if (file && *file) {
		if (kr_taskfile_load(file, &n, err))
			return -1;
		what = kr_strdup(file);
	} else {
		if (!id || !*id) {
			kr_error_set(err, KR_EXIT_USAGE, "no task: give --task-id ID or --task-file FILE");
			return -1;
		}
		if (!api) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "task %s: no API URL to fetch it from; give --api-url or --task-file",
			             id);
			return -1;
		}
		what = kr_asprintf("task %s", id);
		char *path = api_path(s, "task", id, err);
		int rc = path ? get_node(api, path, what, &n, err) : -1;
		free(path);
		if (rc) {
			free(what);
			return -1;
		}
	}
	int rc = kr_ltask_load(t, n, what, err);
	if (rc == 0 && id && *id && strcmp(kr_ltask_id(t), id) != 0 && !(file && *file)) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "keruta-api answered task '%s' for task '%s'",
		             kr_ltask_id(t), id);
		rc = -1;
	}
	if (rc == 0 && !(file && *file))
		rc = kr_launcher_task_repository(s, api, t, err);
	if (rc)
		kr_ltask_free(t); /* the caller owns a task only on success */
	kr_node_free(n);
	free(what);
	return rc;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* The end of the JSON value at p, or NULL when the structure (strings,
 * brackets) does not hold; scalars are left to the parser. */
static const char *json_value_end(const char *p, const char *end)
{
	char open[64]; /* deeper than any task record: the whole-answer parser decides */
	size_t depth = 0;
	do {
		p = skip_ws(p, end);
		if (p >= end)
			return NULL;
		char c = *p;
		if (c == '"') {
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\')
					p++;
			if (p >= end)
				return NULL;
			p++;
		} else if (c == '{' || c == '[') {
			if (depth == sizeof(open))
				return NULL;
			open[depth++] = c == '{' ? '}' : ']';
			p++;
		} else if (c == '}' || c == ']') {
			if (!depth || open[depth - 1] != c)
				return NULL;
			depth--;
			p++;
		} else if (c == ',' || c == ':') {
			if (!depth)
				return NULL;
			p++;
		} else {
			const char *from = p;
			while (p < end && !strchr(",:[]{}\" \t\r\n", *p))
				p++;
			if (p == from) /* a NUL byte */
				return NULL;
		}
	} while (depth);
	return p;
}

/* The spans of a JSON array's elements.  0, or -1: not an array the scan
 * can follow. */
static int scan_array(kr_pending *pl)
{
	const char *b = pl->body.data ? pl->body.data : "", *end = b + pl->body.len;
	const char *p = skip_ws(b, end);
	size_t cap = 0;
	if (p >= end || *p++ != '[')
		return -1;
	p = skip_ws(p, end);
	if (p < end && *p == ']')
		return skip_ws(p + 1, end) == end ? 0 : -1;
	for (;;) {
		p = skip_ws(p, end);
		const char *e = json_value_end(p, end);
		if (!e)
			return -1;
		if (pl->n == cap) {
			cap = cap ? 2 * cap : 256;
			pl->start = kr_realloc(pl->start, cap * sizeof(*pl->start));
			pl->len = kr_realloc(pl->len, cap * sizeof(*pl->len));
		}
		pl->start[pl->n] = (size_t)(p - b);
		pl->len[pl->n++] = (size_t)(e - p);
		p = skip_ws(e, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == ']')
			return skip_ws(p + 1, end) == end ? 0 : -1;
		return -1;
	}
}

int kr_launcher_pending(const kr_settings *s, kr_http *api, kr_pending *pl, kr_error *err)
{
	static const char what[] = "the PENDING tasks";
	memset(pl, 0, sizeof(*pl));
	char *path = api_path(s, "pending", NULL, err);
	if (!path)
		return -1;
	kr_http_req rq = {.method = "GET", .path = path, .max_bytes = JSON_MAX, .what = what};
	kr_http_resp rs = {0};
	int rc = kr_http_request(api, &rq, &rs, err);
	free(path);
	pl->body = rs.body;
	memset(&rs.body, 0, sizeof(rs.body));
	kr_http_resp_free(&rs);
	if (rc != KR_OK)
		return -1;
	if (scan_array(pl) == 0) {
		pl->is_list = 1;
		return 0;
	}
	pl->n = 0;
	if (kr_node_load_string(what, pl->body.data ? pl->body.data : "", pl->body.len, &pl->whole,
	                        err))
		return kr_error_wrap(err, KR_EXIT_API, "keruta-api sent %s that cannot be read", what);
	const kr_node *items = pl->whole;
	if (items->type == KR_NODE_MAP) { /* paged answers wrap the list */
		static const char *const keys[] = {"content", "items", "tasks", "data"};
		for (size_t i = 0; i < 4 && items->type == KR_NODE_MAP; i++)
			if (kr_node_get(pl->whole, keys[i]) && kr_node_get(pl->whole, keys[i])->type == KR_NODE_SEQ)
				items = kr_node_get(pl->whole, keys[i]);
	}
	if (items->type == KR_NODE_SEQ) {
		pl->is_list = 1;
		pl->items = items;
		pl->n = items->n;
	}
	return 0;
}

const kr_node *kr_pending_item(kr_pending *pl, size_t i, const char *what, kr_error *err)
{
	if (pl->items)
		return pl->items->items[i];
	kr_node_free(pl->cur);
	pl->cur = NULL;
	if (kr_node_load_string(what, pl->body.data + pl->start[i], pl->len[i], &pl->cur, err)) {
		kr_error_wrap(err, KR_EXIT_API, "keruta-api sent %s that cannot be read", what);
		return NULL;
	}
	return pl->cur;
}

void kr_pending_free(kr_pending *pl)
{
	kr_buf_free(&pl->body);
	free(pl->start);
	free(pl->len);
	kr_node_free(pl->whole);
	kr_node_free(pl->cur);
	memset(pl, 0, sizeof(*pl));
}

char *kr_launcher_status(const kr_settings *s, kr_http *api, const char *id, kr_error *err)
{
	char *path = api_path(s, "task", id, err);
	kr_node *n = NULL;
	char *out = NULL;
	if (path && get_node(api, path, "the task", &n, err) == 0 && n->type == KR_NODE_MAP) {
		const kr_node *st = kr_node_get(n, "status");
		if (st && st->type == KR_NODE_SCALAR)
			out = kr_strdup(st->value);
	}
	kr_node_free(n);
	free(path);
	return out;
}

int kr_launcher_report(const kr_settings *s, kr_http *api, const char *id, const char *status,
                       const char *message, kr_error *err)
{
	char *path = api_path(s, "status", id, err);
	if (!path)
		return -1;
	json_object *body = json_object_new_object();
	json_object_object_add(body, "status", kr_json_str(status));
	if (message && *message)
		json_object_object_add(body, "message", kr_json_str(message));
	kr_http_req rq = {.method = "PUT",
	                  .path = path,
	                  .json = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
	                  .max_bytes = JSON_MAX,
	                  .what = "the task status"};
	kr_http_resp rs = {0};
	int rc = kr_http_request(api, &rq, &rs, err);
	kr_http_resp_free(&rs);
	json_object_put(body);
	free(path);
	return rc == KR_OK ? 0 : -1;
}

static int render(kr_settings *s, kr_error *err)
{
	if (kr_render_check(s, err))
		return err->code;
	kr_http *api = NULL;
	const char *id = kr_settings_get(s, KR_S_TASK_ID);
	const char *file = kr_settings_get(s, KR_S_TASK_FILE);
	if (!(file && *file)) {
		api = kr_launcher_api(s, NULL, 0, err);
		if (err->code)
			return err->code;
	}
	kr_ltask t;
	int code = KR_EXIT_OK;
	if (kr_launcher_task(s, api, id, &t, err)) {
		code = err->code ? err->code : KR_EXIT_INTERNAL;
		goto out;
	}
	kr_ltask_warn_ignored(&t);
	const char *what = kr_settings_get(s, KR_S_K8S_OBJECTS);
	const char *node = kr_settings_get(s, KR_S_K8S_NODE_NAME);
	if ((kr_ltask_parent(&t) || kr_ltask_existing_claim(&t)) && !(node && *node) &&
	    kr_ltask_rwo(s, &t)) {
		char *claim = kr_render_pvc_name(&t);
		kr_log(KR_LOG_WARN, NULL,
		       "task %s mounts the ReadWriteOnce PVC %s that %s: give --node-name NODE (where "
		       "it is attached) or the pod may not start elsewhere",
		       kr_ltask_id(&t), claim,
		       kr_ltask_existing_claim(&t) ? "exists already" : "its parent task used");
		free(claim);
	}
	kr_buf out = {0};
	int docs = 0;
	if (strcmp(what, "cleanup") != 0) {
		json_object *pvc = kr_render_pvc(s, &t);
		if (pvc) {
			kr_yaml_emit(pvc, docs++, &out);
			json_object_put(pvc);
		}
		json_object *job = kr_render_job(s, &t, node, err);
		kr_yaml_emit(job, docs++, &out);
		json_object_put(job);
	}
	if (strcmp(what, "cleanup") == 0 && !kr_render_has_cleanup(s)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--objects cleanup: with --work-volume emptydir there is no cleanup Job (the "
		             "volume is gone with the pod); the main container runs `run --final-status yes` and "
		             "collects itself");
		code = KR_EXIT_USAGE;
		kr_ltask_free(&t);
		goto out;
	}
	if (strcmp(what, "all") == 0 && !kr_render_has_cleanup(s))
		kr_log(KR_LOG_INFO, NULL,
		       "no cleanup Job with an emptyDir work volume: the main container (`run --final-status yes`) "
		       "collects and reports the outcome");
	if (strcmp(what, "job") != 0 && kr_render_has_cleanup(s)) {
		json_object *cj = kr_render_cleanup_job(s, &t, kr_settings_get(s, KR_S_SOURCE_POD),
		                                        node, err);
		kr_yaml_emit(cj, docs++, &out);
		json_object_put(cj);
	}
	if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout)) {
		kr_error_set(err, KR_EXIT_INTERNAL, "cannot write the manifests to standard output");
		code = KR_EXIT_INTERNAL;
	}
	kr_buf_free(&out);
	kr_ltask_free(&t);
out:
	kr_http_free(api);
	return code;
}

static int launcher_main(const char *command, kr_settings *s, kr_error *err)
{
	if (strcmp(command, "render") == 0)
		return render(s, err);
	if (strcmp(command, "dispatch") == 0)
		return kr_dispatch(s, err);
	kr_error_set(err, KR_EXIT_INTERNAL, "launcher: unknown command %s", command);
	return KR_EXIT_INTERNAL;
}

__attribute__((visibility("default"))) const kr_launcher_desc kr_launcher_module = {
        .head = KR_MODULE_HEAD,
        .main = launcher_main,
};
