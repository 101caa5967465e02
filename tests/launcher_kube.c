/*
 * launcher_kube.c - how `keruta-agent dispatch` finds the Kubernetes API
 * (kubeconfig forms, KUBECONFIG lists, ~/.kube/config, in-cluster) and
 * what it does when the API answers with errors: checked by the exit
 * code, the message, the objects tests/kubeapi holds and the requests it
 * received.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher_util.h"

static kt_kube kube;
static kt_api api;

static void setup(void)
{
	kt_cluster_start(&kube, &api);
}

static void teardown(void)
{
	kt_cluster_stop(&kube, &api);
}

TestSuite(kube, .init = setup, .fini = teardown, .timeout = 90);

static void seed_task(const char *id)
{
	char body[256];
	snprintf(body, sizeof(body), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"PENDING\"}]}", id);
	kt_seed(&api, body);
}

/* `dispatch --task-id id` with these leading args and extra env. */
static void run_task(kt_result *r, const char *id, const char *const *lead, const char *const *env)
{
	const char *args[32];
	size_t n = 0;
	args[n++] = "dispatch";
	for (size_t i = 0; lead && lead[i]; i++)
		args[n++] = lead[i];
	const char *tail[] = {"--api-url", api.url, "--log-format", "text", "--api-retries", "1",
	                      "--task-id", id, NULL};
	for (size_t i = 0; tail[i]; i++)
		args[n++] = tail[i];
	args[n] = NULL;
	cr_assert_eq(kt_agent_run(r, args, env, 60), 0);
	cr_assert(!r->timed_out, "dispatch did not finish: %s", r->err);
}

static const char *job_namespace(const char *id)
{
	static char ns[128];
	char name[128];
	snprintf(name, sizeof(name), "keruta-job-%s", id);
	json_object *job = kt_kube_object(&kube, "jobs", name);
	const char *v = job ? kt_jstr(job, "metadata.namespace") : NULL;
	snprintf(ns, sizeof(ns), "%s", v ? v : "(no Job)");
	json_object_put(job);
	return ns;
}

static void expect_completed(const char *id, const kt_result *r)
{
	cr_expect_eq(r->status, 0, "%s", r->err);
	char *s = kt_statuses(&api, id);
	cr_expect(kt_contains(s, "COMPLETED"), "%s: statuses %s", id, s);
	free(s);
}

/* A kubeconfig in its own directory: the context is not the current one,
 * the token comes from a file named relative to the kubeconfig, the
 * server has trailing slashes; the namespace comes from --namespace, and
 * without one (the context names none) it is "default". */
Test(kube, a_kubeconfig_with_relative_token_file_and_chosen_context)
{
	char *dir = kt_path(kube.srv.dir, "cfg");
	cr_assert_eq(mkdir(dir, 0700), 0);
	char *tok = kt_path(dir, "token"), *cfg = kt_path(dir, "kubeconfig");
	kt_write_file(tok, "kube-token\n");
	char text[2048];
	snprintf(text, sizeof(text),
	         "apiVersion: v1\nkind: Config\ncurrent-context: broken\n"
	         "clusters:\n- name: other\n  cluster:\n    server: ftp://127.0.0.1:1\n"
	         "- name: kubeapi\n  cluster:\n    server: %s///\n"
	         "users:\n- name: launcher\n  user:\n    tokenFile: token\n"
	         "contexts:\n- name: broken\n  context:\n    cluster: other\n    user: launcher\n"
	         "- name: test\n  context:\n    cluster: kubeapi\n    user: launcher\n",
	         kube.srv.url);
	kt_write_file(cfg, text);
	seed_task("ctx-1");
	seed_task("ctx-2");
	kt_result r;
	const char *a1[] = {"--kubeconfig", cfg, "--context", "test", "--namespace", "team-a", NULL};
	run_task(&r, "ctx-1", a1, NULL);
	expect_completed("ctx-1", &r);
	cr_expect_str_eq(job_namespace("ctx-1"), "team-a");
	kt_result_free(&r);
	const char *a2[] = {"--kubeconfig", cfg, "--context", "test", NULL};
	run_task(&r, "ctx-2", a2, NULL);
	expect_completed("ctx-2", &r);
	cr_expect_str_eq(job_namespace("ctx-2"), "default");
	kt_result_free(&r);
	free(dir), free(tok), free(cfg);
}

/* A token file holding a NUL byte is refused before any call: the token
 * cut at the NUL would be sent as if it were the whole one. */
/* A NUL inside the token or at its end (where trimming must not treat
 * it as white space) is refused, never sent cut short. */
Test(kube, a_token_file_with_a_nul_byte_is_refused)
{
	static const struct {
		const char *id, *bytes;
		size_t n;
	} cases[] = {{"nul-1", "kube-token\0tail\n", 16}, {"nul-2", "kube-token\0\n", 12}};
	char *dir = kt_path(kube.srv.dir, "cfg");
	cr_assert_eq(mkdir(dir, 0700), 0);
	char *tok = kt_path(dir, "token"), *cfg = kt_path(dir, "kubeconfig");
	char text[1024];
	snprintf(text, sizeof(text),
	         "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
	         "clusters:\n- name: kubeapi\n  cluster:\n    server: %s\n"
	         "users:\n- name: launcher\n  user:\n    tokenFile: token\n"
	         "contexts:\n- name: test\n  context:\n    cluster: kubeapi\n    user: launcher\n",
	         kube.srv.url);
	kt_write_file(cfg, text);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FILE *f = fopen(tok, "w");
		cr_assert(f);
		cr_assert_eq(fwrite(cases[i].bytes, 1, cases[i].n, f), cases[i].n);
		cr_assert_eq(fclose(f), 0);
		seed_task(cases[i].id);
		kt_result r;
		const char *a[] = {"--kubeconfig", cfg, NULL};
		run_task(&r, cases[i].id, a, NULL);
		cr_expect_eq(r.status, 2, "%s: %s", cases[i].id, r.err);
		cr_expect(kt_contains(r.err, "holds a NUL byte"), "%s: %s", cases[i].id, r.err);
		char job[64];
		snprintf(job, sizeof(job), "keruta-job-%s", cases[i].id);
		cr_expect(!kt_kube_exists(&kube, "jobs", job), "%s: a Job was created", cases[i].id);
		kt_result_free(&r);
	}
	free(dir), free(tok), free(cfg);
}

/* KUBECONFIG=a:b takes the first file that exists; without KUBECONFIG
 * and outside a cluster, ~/.kube/config. */
Test(kube, kubeconfig_list_and_home_default)
{
	seed_task("list-1");
	seed_task("home-1");
	kt_result r;
	char env1[4200];
	snprintf(env1, sizeof(env1), "KUBECONFIG=%s/missing::%s", kube.srv.dir, kube.kubeconfig);
	const char *e1[] = {env1, NULL};
	run_task(&r, "list-1", NULL, e1);
	expect_completed("list-1", &r);
	cr_expect_str_eq(job_namespace("list-1"), "keruta");
	kt_result_free(&r);

	char *home = kt_path(kube.srv.dir, "home"), *dot = kt_path(home, ".kube");
	cr_assert_eq(mkdir(home, 0700), 0);
	cr_assert_eq(mkdir(dot, 0700), 0);
	char *cfg = kt_path(dot, "config"), *text = kt_read_file(kube.kubeconfig, NULL);
	kt_write_file(cfg, text);
	char env2[4200];
	snprintf(env2, sizeof(env2), "HOME=%s", home);
	const char *e2[] = {env2, NULL};
	run_task(&r, "home-1", NULL, e2);
	expect_completed("home-1", &r);
	kt_result_free(&r);

	/* neither: told what to give */
	unlink(cfg);
	seed_task("none-1");
	run_task(&r, "none-1", NULL, e2);
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "no Kubernetes credentials") && kt_contains(r.err, "--kubeconfig"),
	          "%s", r.err);
	kt_result_free(&r);
	free(home), free(dot), free(cfg), free(text);
}

/* In a pod (KUBERNETES_SERVICE_HOST set, no kubeconfig) the launcher uses
 * the service account's files; where they are missing (here: no pod) it
 * says which file it could not read, and calls nobody. */
Test(kube, in_cluster_without_a_service_account_says_which_file)
{
	const char *sa = "/var/run/secrets/kubernetes.io/serviceaccount/token";
	if (access(sa, F_OK) == 0)
		cr_skip_test("this machine runs in a pod (%s exists)", sa);
	seed_task("pod-1");
	static const char *const hosts[] = {"KUBERNETES_SERVICE_HOST=127.0.0.1",
	                                    "KUBERNETES_SERVICE_HOST=::1"};
	for (size_t i = 0; i < 2; i++) {
		char home[4200];
		snprintf(home, sizeof(home), "HOME=%s", kube.srv.dir);
		const char *env[] = {hosts[i], "KUBERNETES_SERVICE_PORT=1", home, NULL};
		kt_result r;
		run_task(&r, "pod-1", NULL, env);
		cr_expect_eq(r.status, 2, "%s: %s", hosts[i], r.err);
		cr_expect(kt_contains(r.err, "/var/run/secrets/kubernetes.io/serviceaccount/"), "%s: %s",
		          hosts[i], r.err);
		kt_result_free(&r);
	}
	char *s = kt_statuses(&api, "pod-1");
	cr_expect_str_eq(s, "[]");
	free(s);
}

/* dispatch with neither keruta-api nor a task has nothing to launch: a
 * usage error naming both ways to give it work, and no call made. */
Test(kube, dispatch_without_a_source_of_tasks_says_what_to_give)
{
	static const char *const args[] = {"dispatch", "--kubeconfig", NULL, "--log-format", "text",
	                                   NULL};
	const char *a[6];
	memcpy(a, args, sizeof(a));
	a[2] = kube.kubeconfig;
	static const char *const env[] = {"KERUTA_API_URL", "KERUTA_TASK_ID", "KERUTA_TASK_FILE",
	                                   NULL};
	kt_result r;
	cr_assert_eq(kt_agent_run(&r, a, env, 60), 0);
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "dispatch needs --api-url (to take PENDING tasks), or one task "
	                             "with --task-id / --task-file"),
	          "%s", r.err);
	kt_result_free(&r);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_eq(json_object_array_length(reqs), 0, "the cluster was called");
	json_object_put(reqs);
}

/* The kubeconfig's mistakes, each named with what to fix. */
Test(kube, kubeconfig_mistakes_are_named)
{
	seed_task("bad-1");
	struct {
		const char *from, *to, *want;
	} cases[] = {
	        {"current-context: test", "current-context: nowhere", "context 'nowhere' not found"},
	        {"server: http", "server: ftp", "has no cluster with an http(s) server"},
	        {"server: http", "certificate-authority-data: \"%%%\"\n    server: http",
	         "'certificate-authority-data' is not base64"},
	        {"token: kube-token", "token: kube-token\n    client-certificate-data: \"!!\"",
	         "'client-certificate-data' is not base64"},
	        {"token: kube-token", "token: kube-token\n    client-key-data: \"====\"",
	         "'client-key-data' is not base64"},
	};
	char *cfg = kt_path(kube.srv.dir, "bad-kubeconfig");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = kt_read_file(kube.kubeconfig, NULL), *p = strstr(text, cases[i].from);
		cr_assert_not_null(p);
		*p = '\0';
		char *changed = NULL;
		cr_assert(asprintf(&changed, "%s%s%s", text, cases[i].to, p + strlen(cases[i].from)) > 0);
		kt_write_file(cfg, changed);
		free(text), free(changed);
		kt_result r;
		const char *lead[] = {"--kubeconfig", cfg, NULL};
		run_task(&r, "bad-1", lead, NULL);
		cr_expect_eq(r.status, 2, "%s: %s", cases[i].want, r.err);
		cr_expect(kt_contains(r.err, cases[i].want), "want '%s': %s", cases[i].want, r.err);
		kt_result_free(&r);
	}
	free(cfg);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_eq(json_object_array_length(reqs), 0, "the cluster was called");
	json_object_put(reqs);
}

static void fault(const char *json)
{
	json_object_put(kt_kube_json(&kube, "POST", "/_control/fault", json));
}

/* A Job creation answered 500, then 429: ridden out inside the call (the
 * task completes; four POSTs of Jobs in all: two refused, the main Job
 * and the cleanup Job); the launcher says the API answers again. */
Test(kube, server_errors_on_a_call_are_retried)
{
	seed_task("err-1");
	fault("{\"method\": \"POST\", \"path_regex\": \"/jobs$\", \"code\": 500, \"times\": 1}");
	fault("{\"method\": \"POST\", \"path_regex\": \"/jobs$\", \"code\": 429, \"times\": 1}");
	kt_result r;
	const char *lead[] = {"--kubeconfig", kube.kubeconfig, "--log-level", "debug", NULL};
	run_task(&r, "err-1", lead, NULL);
	expect_completed("err-1", &r);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_eq(kt_count_requests(reqs, "POST", "/jobs", NULL), 4, "POSTs of Jobs: %s", r.err);
	json_object_put(reqs);
	cr_expect(kt_contains(r.err, "HTTP 500 injected fault"), "%s", r.err);
	cr_expect(kt_contains(r.err, "answers again"), "%s", r.err);
	kt_result_free(&r);
}

/* A refusal that is no outage (403 on the Job) is not retried: the task
 * fails with the API's message, after one POST. */
Test(kube, a_refused_job_is_not_retried)
{
	seed_task("deny-1");
	fault("{\"method\": \"POST\", \"path_regex\": \"/jobs$\", \"code\": 403, \"times\": -1}");
	kt_result r;
	const char *lead[] = {"--kubeconfig", kube.kubeconfig, NULL};
	run_task(&r, "deny-1", lead, NULL);
	cr_expect_neq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "403"), "%s", r.err);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_eq(kt_count_requests(reqs, "POST", "/jobs", NULL), 1, "POSTs of the Job");
	json_object_put(reqs);
	kt_result_free(&r);
}

/* A watch answered with an error status is reopened (with a warning
 * naming the status) and the task still completes. */
Test(kube, a_watch_refused_is_reopened)
{
	seed_task("w-1");
	fault("{\"method\": \"GET\", \"path_regex\": \"/pods$\", \"query_regex\": \"watch=1\", "
	      "\"code\": 403, \"times\": 1}");
	fault("{\"method\": \"GET\", \"path_regex\": \"/jobs$\", \"query_regex\": \"watch=1\", "
	      "\"code\": 503, \"times\": 1}");
	kt_result r;
	const char *lead[] = {"--kubeconfig", kube.kubeconfig, NULL};
	run_task(&r, "w-1", lead, NULL);
	expect_completed("w-1", &r);
	cr_expect(kt_contains(r.err, "HTTP 403"), "%s", r.err);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_geq(kt_count_requests(reqs, "GET", "/pods", "watch=1"), 2, "the pod watch reopened");
	cr_expect_geq(kt_count_requests(reqs, "GET", "/jobs", "watch=1"), 2, "the Job watch reopened");
	json_object_put(reqs);
	kt_result_free(&r);
}

/* A call the server does not answer within --api-timeout is given up and
 * tried again, not waited on: the stalled Job creation is followed by a
 * second one that completes the task (three POSTs of Jobs with the
 * cleanup Job). */
Test(kube, a_stalled_call_times_out_and_is_retried)
{
	seed_task("slow-1");
	fault("{\"method\": \"POST\", \"path_regex\": \"/jobs$\", \"stall\": 30, \"times\": 1}");
	kt_result r;
	const char *lead[] = {"--kubeconfig", kube.kubeconfig, "--api-timeout", "1s", NULL};
	run_task(&r, "slow-1", lead, NULL);
	expect_completed("slow-1", &r);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_eq(kt_count_requests(reqs, "POST", "/jobs", NULL), 3, "POSTs of Jobs: %s", r.err);
	json_object_put(reqs);
	kt_result_free(&r);
}

/* SIGTERM while a call hangs on a server that does not answer ends the
 * launcher at once (the call is interrupted, not waited out), with the
 * stopping line. */
Test(kube, sigterm_interrupts_a_hanging_call)
{
	seed_task("hang-1");
	fault("{\"method\": \"POST\", \"path_regex\": \"/jobs$\", \"stall\": 60, \"times\": 1}");
	const char *argv[] = {kt_agent(), "dispatch", "--kubeconfig", kube.kubeconfig, "--api-url",
	                      api.url, "--log-format", "text", "--task-id", "hang-1", NULL};
	int out_fd, err_fd;
	pid_t pid = kt_spawn(argv, kt_launcher_env(), NULL, &out_fd, &err_fd);
	cr_assert_gt(pid, 0);
	int posted = 0;
	for (int i = 0; i < 300 && !posted; i++) {
		json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
		posted = kt_count_requests(reqs, "POST", "/jobs", NULL);
		json_object_put(reqs);
		if (!posted)
			usleep(100000);
	}
	cr_assert(posted, "the Job was never posted");
	usleep(300000);
	kill(pid, SIGTERM);
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 30);
	cr_expect(!r.timed_out, "SIGTERM did not end a hanging call: %s", r.err);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "interrupted (stopping)") || kt_contains(r.err, "stopping on a signal"),
	          "%s", r.err);
	kt_result_free(&r);
}

/* The cleanup Job refused (403): the launcher reports the task COMPLETED
 * itself (no cleanup agent will) instead of waiting for a Job that does
 * not exist. */
Test(kube, a_refused_cleanup_job_leaves_the_report_to_the_launcher)
{
	seed_task("cl-1");
	fault("{\"method\": \"POST\", \"path_regex\": \"/jobs$\", \"code\": 403, \"times\": 1, "
	      "\"skip\": 1}");
	kt_result r;
	const char *lead[] = {"--kubeconfig", kube.kubeconfig, NULL};
	run_task(&r, "cl-1", lead, NULL);
	expect_completed("cl-1", &r);
	cr_expect(kt_contains(r.err, "403"), "%s", r.err);
	cr_expect(!kt_kube_exists(&kube, "jobs", "cleanup-job-for-task-cl-1"), "a cleanup Job exists");
	kt_result_free(&r);
}

/* A watch the server ends at once, again and again (here: a pod watch
 * answered with an empty 200), is reopened with a growing backoff, not
 * in a tight loop; the task still completes through the Job watch. */
Test(kube, a_watch_that_ends_at_once_backs_off)
{
	kt_scenario(&kube, "{\"default\": \"wait\"}");
	seed_task("loop-1");
	fault("{\"method\": \"GET\", \"path_regex\": \"/pods$\", \"query_regex\": \"watch=1\", "
	      "\"code\": 200, \"times\": -1}");
	const char *argv[] = {kt_agent(), "dispatch", "--kubeconfig", kube.kubeconfig, "--api-url",
	                      api.url, "--log-format", "text", "--task-id", "loop-1", NULL};
	int out_fd, err_fd;
	pid_t pid = kt_spawn(argv, kt_launcher_env(), NULL, &out_fd, &err_fd);
	cr_assert_gt(pid, 0);
	sleep(3);
	json_object_put(kt_kube_json(&kube, "POST", "/_control/release", "{}"));
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 60);
	expect_completed("loop-1", &r);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	int n = kt_count_requests(reqs, "GET", "/pods", "watch=1");
	cr_expect(n >= 2 && n <= 30, "%d pod watches in about 3 s", n);
	json_object_put(reqs);
	kt_result_free(&r);
}

/* While the pod watch keeps failing (503) the API is in backoff most of
 * the time; the Job is still marked reported (annotation
 * keruta.io/reported) once the backoff lets the call through, not
 * skipped because it could not be sent at first. */
Test(kube, the_job_is_marked_reported_through_a_backoff)
{
	seed_task("mark-1");
	fault("{\"method\": \"GET\", \"path_regex\": \"/pods$\", \"query_regex\": \"watch=1\", "
	      "\"code\": 503, \"times\": -1}");
	kt_result r;
	const char *lead[] = {"--kubeconfig", kube.kubeconfig, "--cleanup-job=false", NULL};
	run_task(&r, "mark-1", lead, NULL);
	expect_completed("mark-1", &r);
	json_object *job = kt_kube_object(&kube, "jobs", "keruta-job-mark-1");
	json_object *ann = job ? kt_jpath(job, "metadata.annotations") : NULL, *v = NULL;
	cr_expect(ann && json_object_object_get_ex(ann, "keruta.io/reported", &v) &&
	                  !strcmp(json_object_get_string(v), "COMPLETED"),
	          "the Job is not marked reported: %s", job ? json_object_to_json_string(job) : "(none)");
	json_object_put(job);
	kt_result_free(&r);
}

/* ------------------------------------------------------------- TLS */

static char *certs;

/* A test CA, a server certificate for 127.0.0.1 and a client certificate,
 * and the Kubernetes API test server on TLS accepting that client. */
static void tls_setup(void)
{
	certs = kt_tmpdir();
	char *cmd = NULL;
	cr_assert(asprintf(&cmd,
	                   "set -e; cd '%s'; exec >openssl.log 2>&1\n"
	                   "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	                   "-keyout ca.key -out ca.crt -days 2 -subj '/CN=keruta test CA' "
	                   "-addext 'basicConstraints=critical,CA:TRUE' "
	                   "-addext 'keyUsage=critical,keyCertSign,cRLSign'\n"
	                   "for who in server client; do\n"
	                   "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	                   "-keyout $who.key -out $who.csr -subj \"/CN=$who\"\n"
	                   "done\n"
	                   "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
	                   "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
	                   "for who in server client; do\n"
	                   "openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	                   "-out $who.crt -days 2 -extfile $who.ext\n"
	                   "base64 -w 0 $who.crt > $who.crt.b64; base64 -w 0 $who.key > $who.key.b64\n"
	                   "done\n"
	                   "base64 -w 0 ca.crt > ca.crt.b64\n",
	                   certs) > 0);
	cr_assert(system(cmd) == 0, "openssl failed; see %s/openssl.log", certs);
	free(cmd);
	char *ca = kt_path(certs, "ca.crt"), *crt = kt_path(certs, "server.crt"),
	     *key = kt_path(certs, "server.key");
	setenv("CURL_CA_BUNDLE", ca, 1); /* the control calls (curl(1)) */
	const char *const tls[] = {"--tls-cert", crt, "--tls-key", key, "--tls-client-ca", ca, NULL};
	cr_assert_eq(kt_kube_start_tls(&kube, NULL, tls), 0, "the Kubernetes API test server did not start");
	cr_assert_eq(kt_api_start(&api, NULL), 0, "the reference keruta-api did not start");
	free(ca), free(crt), free(key);
}

static void tls_teardown(void)
{
	kt_cluster_stop(&kube, &api);
	kt_rmrf(certs);
	free(certs);
}

TestSuite(kube_tls, .init = tls_setup, .fini = tls_teardown, .timeout = 120);

static char *cert_text(const char *name)
{
	char *p = kt_path(certs, name), *text = kt_read_file(p, NULL);
	cr_assert_not_null(text, "%s", p);
	free(p);
	return text;
}

/* A kubeconfig for the TLS server: the cluster and user lines given. */
static char *tls_kubeconfig(const char *name, const char *cluster, const char *user)
{
	char *path = kt_path(certs, name), *text = NULL;
	cr_assert(asprintf(&text,
	                   "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
	                   "clusters:\n- name: k\n  cluster:\n    server: %s\n%s"
	                   "users:\n- name: u\n  user:\n%s"
	                   "contexts:\n- name: t\n  context:\n    cluster: k\n    user: u\n"
	                   "    namespace: keruta\n",
	                   kube.srv.url, cluster, user) > 0);
	kt_write_file(path, text);
	free(text);
	return path;
}

/* The CA inline (base64) or as a file named relative to the kubeconfig,
 * verification switched off, and a client certificate instead of a
 * token: each reaches the API server; with none of them, the launcher
 * refuses the unverified server and says what to check. */
Test(kube_tls, ca_data_ca_file_insecure_and_client_certificates)
{
	char *ca64 = cert_text("ca.crt.b64"), *crt64 = cert_text("client.crt.b64"),
	     *key64 = cert_text("client.key.b64");
	char ca_data[8192], client[16384];
	snprintf(ca_data, sizeof(ca_data), "    certificate-authority-data: %s\n", ca64);
	snprintf(client, sizeof(client),
	         "    client-certificate-data: %s\n    client-key-data: %s\n", crt64, key64);
	const char *token = "    token: kube-token\n";
	struct {
		const char *name, *cluster, *user;
		int ok;
	} cases[] = {
	        {"ca-data", ca_data, token, 1},
	        {"ca-file", "    certificate-authority: ca.crt\n", token, 1},
	        {"insecure", "    insecure-skip-tls-verify: true\n", token, 1},
	        {"client-cert", ca_data, client, 1},
	        {"client-cert-files", "    certificate-authority: ca.crt\n",
	         "    client-certificate: client.crt\n    client-key: client.key\n", 1},
	        {"unverified", "    insecure-skip-tls-verify: false\n", token, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[32];
		snprintf(id, sizeof(id), "tls-%zu", i);
		seed_task(id);
		char *cfg = tls_kubeconfig(cases[i].name, cases[i].cluster, cases[i].user);
		const char *lead[] = {"--kubeconfig", cfg, "--cleanup-job=false", NULL};
		kt_result r;
		run_task(&r, id, lead, NULL);
		if (cases[i].ok) {
			cr_expect_eq(r.status, 0, "%s: %s", cases[i].name, r.err);
			char *s = kt_statuses(&api, id);
			cr_expect(kt_contains(s, "COMPLETED"), "%s: %s", cases[i].name, s);
			free(s);
		} else {
			cr_expect_neq(r.status, 0, "%s: %s", cases[i].name, r.err);
			cr_expect(kt_contains(r.err, "the CA"), "%s: %s", cases[i].name, r.err);
		}
		kt_result_free(&r);
		free(cfg);
	}
	free(ca64), free(crt64), free(key64);
}
