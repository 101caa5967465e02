/* api_util.c - see api_util.h. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_util.h"

void at_start(at_ctx *c, const char *const *server_args)
{
	memset(c, 0, sizeof(*c));
	cr_assert(kt_api_start(&c->api, server_args) == 0, "the reference server did not start");
	for (int i = 0; server_args && server_args[i]; i++)
		if (strcmp(server_args[i], "--tls-cert") == 0) /* the name in the test certificate */
			snprintf(c->api.url, sizeof(c->api.url), "https://localhost:%d", c->api.port);
	c->task = "t1";
	c->dir = kt_tmpdir();
	c->work = kt_path(c->dir, "work");
	c->report = kt_path(c->dir, "report");
	c->pipeline = kt_path(c->dir, "pipeline.yaml");
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "mkdir -p '%s'", c->work) > 0);
	cr_assert(system(cmd) == 0);
	free(cmd);
	at_control(c, "/_control/seed",
	           "{\"tasks\":[{\"id\":\"t1\",\"title\":\"a task\",\"status\":\"PENDING\","
	           "\"repositoryId\":\"r1\"}],"
	           "\"repositories\":[{\"id\":\"r1\",\"url\":\"https://example.invalid/r.git\","
	           "\"branch\":\"main\"}]}");
}

void at_stop(at_ctx *c)
{
	kt_api_stop(&c->api);
	kt_rmrf(c->dir);
	free(c->dir);
	free(c->work);
	free(c->report);
	free(c->pipeline);
}

void at_pipeline(at_ctx *c, const char *with, const char *settings)
{
	char *fx = kt_path(kt_builddir(), "tests/fixtures/.libs");
	char *text = NULL;
	cr_assert(asprintf(&text,
	                   "version: 1\nplugin_path: [%s]\nphases:\n  execute: [lines]\n"
	                   "stages:\n  lines:\n    plugin: api_lines\n    with: {report: %s%s%s}\n"
	                   "%s%s",
	                   fx, c->report, with && *with ? ", " : "", with ? with : "",
	                   settings && *settings ? "settings:\n" : "",
	                   settings ? settings : "") > 0);
	kt_write_file(c->pipeline, text);
	free(text);
	free(fx);
}

void at_control(at_ctx *c, const char *path, const char *json)
{
	int status = 0;
	char *body = kt_api_call(&c->api, "POST", path, json, &status);
	cr_assert(body && status == 200, "control %s failed: %d %s", path, status,
	          body ? body : "");
	free(body);
}

json_object *at_get(at_ctx *c, const char *path)
{
	int status = 0;
	char *body = kt_api_call(&c->api, "GET", path, NULL, &status);
	cr_assert(body && status == 200, "GET %s failed", path);
	json_object *o = json_tokener_parse(body);
	cr_assert(o, "GET %s: not JSON", path);
	free(body);
	return o;
}

int at_count(at_ctx *c, const char *method, const char *suffix)
{
	json_object *reqs = at_get(c, "/_control/requests");
	int n = 0;
	size_t sl = strlen(suffix);
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *r = json_object_array_get_idx(reqs, i), *m, *p;
		if (!json_object_object_get_ex(r, "method", &m) ||
		    !json_object_object_get_ex(r, "path", &p))
			continue;
		const char *path = json_object_get_string(p);
		size_t pl = strlen(path);
		if (strcmp(json_object_get_string(m), method) == 0 && pl >= sl &&
		    strcmp(path + pl - sl, suffix) == 0)
			n++;
	}
	json_object_put(reqs);
	return n;
}

char *at_lines(at_ctx *c, size_t *n)
{
	json_object *st = at_get(c, "/_control/state"), *logs, *t1;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	*n = 0;
	if (json_object_object_get_ex(st, "logs", &logs) &&
	    json_object_object_get_ex(logs, c->task, &t1)) {
		for (size_t i = 0; i < json_object_array_length(t1); i++) {
			json_object *l = json_object_array_get_idx(t1, i), *line, *stream;
			if (json_object_object_get_ex(l, "stream", &stream) &&
			    strcmp(json_object_get_string(stream), "agent") == 0)
				continue;
			if (json_object_object_get_ex(l, "line", &line)) {
				fprintf(f, "%s\n", json_object_get_string(line));
				(*n)++;
			}
		}
	}
	fclose(f);
	json_object_put(st);
	return out;
}

const char *const *at_agent_argv(at_ctx *c, const char *const *args)
{
	static const char *argv[64];
	int n = 0;
	argv[n++] = kt_agent();
	argv[n++] = "execute";
	argv[n++] = "--task-id";
	argv[n++] = c->task;
	argv[n++] = "--api-url";
	argv[n++] = c->api.url;
	argv[n++] = "--work-dir";
	argv[n++] = c->work;
	argv[n++] = "--pipeline";
	argv[n++] = c->pipeline;
	argv[n++] = "--termination-log";
	argv[n++] = "/dev/null";
	argv[n++] = "--log-format";
	argv[n++] = "text";
	for (int i = 0; args && args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return argv;
}

int at_agent(at_ctx *c, kt_result *r, const char *const *args, const char *const *env,
             int timeout_s)
{
	const char *const *argv = at_agent_argv(c, args);
	cr_assert(kt_run(r, argv, env, c->dir, NULL, timeout_s) == 0, "cannot run the agent");
	cr_assert(!r->timed_out, "the agent did not finish within %d s; stderr:\n%s", timeout_s,
	          r->err);
	return r->status;
}

char *at_expected(const char *prefix, int from, int to)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	for (int i = from; i <= to; i++)
		fprintf(f, "%s-%06d\n", prefix, i);
	fclose(f);
	return out;
}

int at_times(at_ctx *c, const char *path, double *t, int max)
{
	json_object *reqs = at_get(c, "/_control/requests");
	int k = 0;
	for (size_t i = 0; i < json_object_array_length(reqs) && k < max; i++) {
		json_object *q = json_object_array_get_idx(reqs, i), *p, *tm;
		json_object_object_get_ex(q, "path", &p);
		json_object_object_get_ex(q, "time", &tm);
		if (strcmp(json_object_get_string(p), path) == 0)
			t[k++] = json_object_get_double(tm);
	}
	json_object_put(reqs);
	return k;
}
