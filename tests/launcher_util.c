/* launcher_util.c - see launcher_util.h. */
#include "launcher_util.h"

#include <criterion/criterion.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int kt_kube_start(kt_kube *k, const char *step)
{
	return kt_kube_start_tls(k, step, NULL);
}

int kt_kube_start_tls(kt_kube *k, const char *step, const char *const *tls)
{
	memset(k, 0, sizeof(*k));
	kt_api *s = &k->srv;
	s->dir = kt_tmpdir();
	char *port_file = kt_path(s->dir, "port");
	char *server = kt_path(kt_srcdir(), "tests/kubeapi/kube_api_server.py");
	const char *argv[24] = {"python3", server, "--port", "0", "--port-file", port_file,
	                        "--token", "kube-token", "--idle-exit", "120", "--step",
	                        step ? step : "0.02"};
	for (size_t i = 0, n = 12; tls && tls[i] && n < 23; i++)
		argv[n++] = tls[i];
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setpgid(0, 0);
		char *log = kt_path(s->dir, "server.log");
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	int rc = -1;
	for (int i = 0; i < 200; i++) {
		char *text = kt_read_file(port_file, NULL);
		if (text && atoi(text) > 0) {
			s->port = atoi(text);
			snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d", tls ? "https" : "http",
			         s->port);
			rc = 0;
		}
		free(text);
		if (rc == 0 || waitpid(pid, NULL, WNOHANG) == pid)
			break;
		usleep(50000);
	}
	free(port_file);
	free(server);
	if (rc)
		return rc;
	k->kubeconfig = kt_path(s->dir, "kubeconfig");
	char cfg[1024];
	snprintf(cfg, sizeof(cfg),
	         "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
	         "clusters:\n- name: kubeapi\n  cluster:\n    server: %s\n"
	         "users:\n- name: launcher\n  user:\n    token: kube-token\n"
	         "contexts:\n- name: test\n  context:\n    cluster: kubeapi\n    user: launcher\n"
	         "    namespace: keruta\n",
	         s->url);
	kt_write_file(k->kubeconfig, cfg);
	return 0;
}

void kt_kube_stop(kt_kube *k)
{
	if (k->srv.pid > 0) {
		kill(-k->srv.pid, SIGTERM);
		kill(k->srv.pid, SIGTERM);
		waitpid(k->srv.pid, NULL, 0);
	}
	if (k->srv.dir) {
		kt_rmrf(k->srv.dir);
		free(k->srv.dir);
	}
	free(k->kubeconfig);
	memset(k, 0, sizeof(*k));
}

json_object *kt_kube_json(kt_kube *k, const char *method, const char *path, const char *body)
{
	int status = 0;
	char *text = kt_api_call(&k->srv, method, path, body, &status);
	json_object *o = text ? json_tokener_parse(text) : NULL;
	free(text);
	return o;
}

const char *const *kt_launcher_env(void)
{
	static char module[4096];
	static const char *env[] = {module, "KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KERUTA_API_URL",
	                            "KERUTA_API_TOKEN", "KERUTA_TASK_ID", NULL};
	snprintf(module, sizeof(module), "KERUTA_LAUNCHER_MODULE=%s/.libs/launcher.so",
	         kt_builddir());
	return env;
}

int kt_agent_run(kt_result *r, const char *const *args, const char *const *env, int timeout_s)
{
	const char *argv[64];
	const char *envv[64];
	size_t n = 0, m = 0;
	argv[n++] = kt_agent();
	for (size_t i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	for (const char *const *e = kt_launcher_env(); *e && m < 40; e++)
		envv[m++] = *e;
	for (size_t i = 0; env && env[i] && m < 63; i++)
		envv[m++] = env[i];
	envv[m] = NULL;
	return kt_run(r, argv, envv, NULL, NULL, timeout_s);
}

json_object *kt_jpath(json_object *o, const char *path)
{
	char *copy = strdup(path), *save = NULL;
	for (char *tok = strtok_r(copy, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save)) {
		char *br = strchr(tok, '[');
		if (br)
			*br = '\0';
		if (*tok && !json_object_object_get_ex(o, tok, &o))
			o = NULL;
		while (br && o) {
			int idx = atoi(br + 1);
			o = json_object_is_type(o, json_type_array) && idx < (int)json_object_array_length(o)
			            ? json_object_array_get_idx(o, (size_t)idx)
			            : NULL;
			br = strchr(br + 1, '[');
		}
	}
	free(copy);
	return o;
}

const char *kt_jstr(json_object *o, const char *path)
{
	json_object *v = kt_jpath(o, path);
	return v ? json_object_get_string(v) : NULL;
}

void kt_cluster_start(kt_kube *kube, kt_api *api)
{
	cr_assert_eq(kt_kube_start(kube, "0.02"), 0, "the Kubernetes API test server did not start");
	cr_assert_eq(kt_api_start(api, NULL), 0, "the reference keruta-api did not start");
}

void kt_cluster_start_reporting(kt_kube *kube, kt_api *api)
{
	kt_cluster_start(kube, api);
	char sc[256];
	snprintf(sc, sizeof(sc), "{\"report_url\": \"%s/api/v1\"}", api->url);
	kt_scenario(kube, sc);
}

void kt_cluster_stop(kt_kube *kube, kt_api *api)
{
	kt_kube_stop(kube);
	kt_api_stop(api);
}

void kt_seed(kt_api *api, const char *tasks_json)
{
	int st = 0;
	char *body = kt_api_call(api, "POST", "/_control/seed", tasks_json, &st);
	cr_assert_eq(st, 200, "seed: %s", body);
	free(body);
}

void kt_scenario(kt_kube *kube, const char *json)
{
	json_object_put(kt_kube_json(kube, "POST", "/_control/scenario", json));
}

void kt_seed_waiting_pod(kt_kube *kube, const char *id, const char *created, const char *reason)
{
	char objs[2048], ts[256] = "";
	if (created)
		snprintf(ts, sizeof(ts), "\"creationTimestamp\": \"%s\", ", created);
	snprintf(objs, sizeof(objs),
	         "{\"objects\": [{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": "
	         "{\"name\": \"keruta-job-%s\", \"namespace\": \"keruta\", \"labels\": {\"app\": "
	         "\"keruta\", \"keruta.io/role\": \"main\", \"task-id\": \"%s\"}, \"annotations\": "
	         "{\"keruta.io/task-id\": \"%s\"}}, \"spec\": {}, \"status\": {\"active\": 1}}, "
	         "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": "
	         "\"keruta-job-%s-x1\", \"namespace\": \"keruta\", %s"
	         "\"labels\": {\"app\": \"keruta\", \"keruta.io/role\": \"main\", \"job-name\": "
	         "\"keruta-job-%s\"}, \"annotations\": {\"keruta.io/task-id\": \"%s\"}}, \"spec\": {}, "
	         "\"status\": {\"phase\": \"Pending\", \"containerStatuses\": [{\"name\": \"main\", "
	         "\"state\": {\"waiting\": {\"reason\": \"%s\", \"message\": "
	         "\"Back-off pulling image\"}}}]}}]}",
	         id, id, id, id, ts, id, id, reason);
	json_object_put(kt_kube_json(kube, "POST", "/_control/seed", objs));
}

void kt_dispatch(kt_result *r, kt_kube *kube, kt_api *api, const char *const *more)
{
	const char *args[40] = {"dispatch", "--kubeconfig", kube->kubeconfig, "--api-url", api->url,
	                        "--log-format", "text", "--api-retries", "1"};
	size_t n = 9;
	for (size_t i = 0; more && more[i] && n < 39; i++)
		args[n++] = more[i];
	args[n] = NULL;
	cr_assert_eq(kt_agent_run(r, args, NULL, 60), 0);
	cr_assert(!r->timed_out, "dispatch did not finish: %s", r->err);
}

char *kt_statuses(kt_api *api, const char *id)
{
	int st = 0;
	char *text = kt_api_call(api, "GET", "/_control/state", NULL, &st);
	json_object *o = text ? json_tokener_parse(text) : NULL;
	free(text);
	json_object *s = kt_jpath(o, "statuses"), *l = NULL;
	char *out = strdup(s && json_object_object_get_ex(s, id, &l) ? json_object_to_json_string(l)
	                                                              : "[]");
	json_object_put(o);
	return out;
}

int kt_terminal_count(kt_api *api, const char *id, const char *which)
{
	char *s = kt_statuses(api, id);
	json_object *l = json_tokener_parse(s);
	int n = 0;
	for (size_t i = 0; l && i < json_object_array_length(l); i++) {
		const char *st = kt_jstr(json_object_array_get_idx(l, i), "status");
		if (st && (!which ? !strcmp(st, "COMPLETED") || !strcmp(st, "FAILED") : !strcmp(st, which)))
			n++;
	}
	json_object_put(l);
	free(s);
	return n;
}

json_object *kt_kube_object(kt_kube *kube, const char *kind, const char *name)
{
	json_object *all = kt_kube_json(kube, "GET", "/_control/objects", NULL);
	json_object *list = kt_jpath(all, kind), *found = NULL;
	for (size_t i = 0; list && i < json_object_array_length(list) && !found; i++) {
		json_object *o = json_object_array_get_idx(list, i);
		const char *n = kt_jstr(o, "metadata.name");
		if (n && !strcmp(n, name))
			found = json_object_get(o);
	}
	json_object_put(all);
	return found;
}

int kt_kube_exists(kt_kube *kube, const char *kind, const char *name)
{
	json_object *o = kt_kube_object(kube, kind, name);
	json_object_put(o);
	return o != NULL;
}

int kt_count_requests(json_object *reqs, const char *method, const char *suffix,
                      const char *query)
{
	int n = 0;
	size_t sl = strlen(suffix);
	for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++) {
		json_object *r = json_object_array_get_idx(reqs, i);
		const char *m = kt_jstr(r, "method"), *p = kt_jstr(r, "path"), *q = kt_jstr(r, "query");
		size_t pl = p ? strlen(p) : 0;
		if (m && !strcmp(m, method) && pl >= sl && !strcmp(p + pl - sl, suffix) &&
		    (!query || (q && strstr(q, query))))
			n++;
	}
	return n;
}
