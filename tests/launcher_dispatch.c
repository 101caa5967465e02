/*
 * launcher_dispatch.c - `keruta-agent dispatch` against the Kubernetes API
 * test server (tests/kubeapi, scripted Job histories) and the reference
 * keruta-api server (tests/refapi).
 */
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher_util.h"

static kt_kube kube;
static kt_api api;

static void setup(void)
{
	kt_cluster_start_reporting(&kube, &api);
}

static void teardown(void)
{
	kt_cluster_stop(&kube, &api);
}

TestSuite(dispatch, .init = setup, .fini = teardown, .timeout = 90);

/* Requests the Kubernetes server saw with this method whose path ends with suffix. */
static int count_requests(const char *method, const char *suffix)
{
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	int n = kt_count_requests(reqs, method, suffix, NULL);
	json_object_put(reqs);
	return n;
}

Test(dispatch, success_creates_pvc_job_cleanup_and_reports_completed)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"ok-1\", \"title\": \"t\", \"status\": \"PENDING\"}]}");
	kt_result r;
	static const char *const args[] = {"--task-id", "ok-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	char *s = kt_statuses(&api, "ok-1");
	cr_expect(kt_contains(s, "COMPLETED"), "statuses: %s", s);
	free(s);
	cr_expect_eq(count_requests("POST", "/persistentvolumeclaims"), 1);
	cr_expect_eq(count_requests("POST", "/jobs"), 2, "the Job and the cleanup Job");
	json_object *cj = kt_kube_object(&kube, "jobs", "cleanup-job-for-task-ok-1");
	cr_assert_not_null(cj, "the cleanup Job exists");
	cr_expect(kt_contains(json_object_to_json_string(cj), "keruta-job-ok-1-"),
	          "KERUTA_SOURCE_POD names the task's pod");
	json_object_put(cj);
	json_object *job = kt_kube_object(&kube, "jobs", "keruta-job-ok-1");
	json_object *ann = kt_jpath(job, "metadata.annotations"), *rep = NULL;
	cr_expect(ann && json_object_object_get_ex(ann, "keruta.io/reported", &rep),
	          "the Job is marked as reported");
	json_object_put(job);
	json_object *pvc = kt_kube_object(&kube, "persistentvolumeclaims", "git-repo-pvc-ok-1");
	cr_expect_not_null(pvc, "the PVC stays");
	json_object_put(pvc);
	cr_expect_eq(count_requests("GET", "/pods") + count_requests("GET", "/jobs") < 12, 1,
	             "no busy polling");
	kt_result_free(&r);
}

Test(dispatch, failure_reports_the_agents_reason_and_no_cleanup_job)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"bad-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"tasks\": {\"bad-1\": \"failure\"}}");
	kt_result r;
	static const char *const args[] = {"--task-id", "bad-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 1, "a failed task exits 1: %s", r.err);
	char *s = kt_statuses(&api, "bad-1");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "script exited with status 3") &&
	                  kt_contains(s, "stage execute"),
	          "statuses: %s", s);
	free(s);
	cr_expect_null(kt_kube_object(&kube, "jobs", "cleanup-job-for-task-bad-1"), "no cleanup Job after a failure");
	kt_result_free(&r);
}

Test(dispatch, oom_is_reported_as_out_of_memory)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"oom-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"tasks\": {\"oom-1\": \"oom\"}}");
	kt_result r;
	static const char *const args[] = {"--task-id", "oom-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 1);
	char *s = kt_statuses(&api, "oom-1");
	cr_expect(kt_contains(s, "out of memory"), "statuses: %s", s);
	free(s);
	kt_result_free(&r);
}

static void stuck(const char *id, const char *history, const char *want)
{
	char seedj[256], sc[256];
	snprintf(seedj, sizeof(seedj), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"PENDING\"}]}", id);
	snprintf(sc, sizeof(sc), "{\"tasks\": {\"%s\": \"%s\"}}", id, history);
	kt_seed(&api, seedj);
	kt_scenario(&kube, sc);
	kt_result r;
	const char *args[] = {"--task-id", id, "--crashloop-after", "1s", "--image-error-after", "1s",
	                      "--config-error-after", "1s", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 1, "%s", r.err);
	char *s = kt_statuses(&api, id);
	cr_expect(kt_contains(s, want) && kt_contains(s, "FAILED"), "statuses: %s", s);
	free(s);
	char job[128];
	snprintf(job, sizeof(job), "keruta-job-%s", id);
	cr_expect_null(kt_kube_object(&kube, "jobs", job), "the stuck Job is deleted");
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	int background = 0;
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *q = json_object_array_get_idx(reqs, i);
		if (!strcmp(kt_jstr(q, "method"), "DELETE") && kt_contains(kt_jstr(q, "query"), "Background"))
			background = 1;
	}
	cr_expect(background, "deleted with propagationPolicy Background");
	json_object_put(reqs);
	kt_result_free(&r);
}

Test(dispatch, crashloop_beyond_threshold_fails_and_deletes)
{
	stuck("loop-1", "crashloop", "CrashLoopBackOff");
}

Test(dispatch, image_pull_failure_fails_and_deletes)
{
	stuck("img-1", "imagepull", "ImagePull");
}

Test(dispatch, config_error_fails_and_deletes)
{
	stuck("cfg-1", "configerror", "CreateContainerConfigError");
}

Test(dispatch, watch_dropped_and_expired_is_relisted)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"drop-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"tasks\": {\"drop-1\": \"drop\"}}");
	kt_result r;
	static const char *const args[] = {"--task-id", "drop-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	char *s = kt_statuses(&api, "drop-1");
	cr_expect(kt_contains(s, "COMPLETED"), "statuses: %s", s);
	free(s);
	/* the lists at start, then again after the 410 */
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	int lists = 0, watches = 0;
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *q = json_object_array_get_idx(reqs, i);
		if (strcmp(kt_jstr(q, "method"), "GET") || !kt_contains(kt_jstr(q, "path"), "/jobs"))
			continue;
		if (kt_contains(kt_jstr(q, "query"), "watch=1"))
			watches++;
		else if (kt_contains(kt_jstr(q, "query"), "app%3Dkeruta"))
			lists++;
	}
	json_object_put(reqs);
	cr_expect_geq(lists, 2, "the Jobs were listed again after 410 Gone (%d lists)", lists);
	cr_expect_geq(watches, 2, "the watch was reopened (%d)", watches);
	kt_result_free(&r);
}

Test(dispatch, parent_and_child_share_the_pvc_on_one_node)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"parent\", \"status\": \"PENDING\"}, "
	     "{\"id\": \"child\", \"parentTaskId\": \"parent\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"nodes\": {\"parent\": \"node-42\"}}");
	kt_result r;
	static const char *const a1[] = {"--task-id", "parent", NULL};
	kt_dispatch(&r, &kube, &api, a1);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	static const char *const a2[] = {"--task-id", "child", NULL};
	kt_dispatch(&r, &kube, &api, a2);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	cr_expect_eq(count_requests("POST", "/persistentvolumeclaims"), 1, "only the parent creates a PVC");
	json_object *job = kt_kube_object(&kube, "jobs", "keruta-job-child");
	cr_assert_not_null(job);
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[0].persistentVolumeClaim.claimName"),
	                 "git-repo-pvc-parent");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.affinity.nodeAffinity."
	                              "requiredDuringSchedulingIgnoredDuringExecution."
	                              "nodeSelectorTerms[0].matchExpressions[0].values[0]"),
	                 "node-42", "the child runs where the parent's ReadWriteOnce volume is");
	json_object_put(job);
	char *s = kt_statuses(&api, "child");
	cr_expect(kt_contains(s, "COMPLETED"), "%s", s);
	free(s);
}

/* GETs of the PENDING list keruta-api has answered so far. */
static int pending_polls(void)
{
	int st = 0;
	char *text = kt_api_call(&api, "GET", "/_control/requests", NULL, &st);
	json_object *reqs = text ? json_tokener_parse(text) : NULL;
	free(text);
	int n = kt_count_requests(reqs, "GET", "/api/v1/tasks/status/PENDING", NULL);
	json_object_put(reqs);
	return n;
}

/* A child task stays in the PENDING list while its Job runs, and the
 * launcher reads that list on every poll: the volume fields it ignores
 * are said once, not once a poll. */
Test(dispatch, a_childs_ignored_volume_fields_are_warned_about_once)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"par\", \"status\": \"RUNNING\"}, {\"id\": \"kid\", "
	     "\"parentTaskId\": \"par\", \"pvcStorageSize\": \"5Gi\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"default\": \"wait\"}");
	const char *argv[] = {kt_agent(), "dispatch", "--kubeconfig", kube.kubeconfig, "--api-url",
	                      api.url, "--pending-interval", "50ms", "--log-format", "text", NULL};
	int out_fd, err_fd;
	pid_t pid = kt_spawn(argv, kt_launcher_env(), NULL, &out_fd, &err_fd);
	cr_assert_gt(pid, 0);
	/* the Job, then five more polls that name the task again */
	int polls = -1;
	for (int i = 0; i < 1200 && (polls < 0 || pending_polls() < polls + 5); i++) {
		if (polls < 0 && kt_kube_exists(&kube, "jobs", "keruta-job-kid"))
			polls = pending_polls();
		usleep(50000);
	}
	kill(pid, SIGTERM);
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 30);
	cr_assert_geq(polls, 0, "the child's Job was not created: %s", r.err);
	cr_assert_geq(pending_polls(), polls + 5, "the launcher stopped polling: %s", r.err);
	cr_expect_eq(kt_count(r.err, "its own pvcStorageSize is ignored"), 1, "%s", r.err);
	kt_result_free(&r);
}

Test(dispatch, existing_pvc_is_fine)
{
	json_object_put(kt_kube_json(&kube, "POST", "/_control/seed",
	                             "{\"objects\": [{\"apiVersion\": \"v1\", \"kind\": "
	                             "\"PersistentVolumeClaim\", \"metadata\": {\"name\": "
	                             "\"git-repo-pvc-again\", \"namespace\": \"keruta\"}, \"spec\": {}}]}"));
	kt_seed(&api, "{\"tasks\": [{\"id\": \"again\", \"status\": \"PENDING\"}]}");
	kt_result r;
	static const char *const args[] = {"--task-id", "again", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "409 on the PVC is not an error: %s", r.err);
	kt_result_free(&r);
}

Test(dispatch, restarted_launcher_adopts_instead_of_duplicating)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"w-1\", \"status\": \"PENDING\"}, {\"id\": \"w-2\", \"status\": "
	     "\"PENDING\"}]}");
	kt_scenario(&kube, "{\"default\": \"wait\"}");
	const char *argv[] = {kt_agent(), "dispatch", "--kubeconfig", kube.kubeconfig, "--api-url",
	                      api.url, "--pending-interval", "200ms", "--log-format", "text", NULL};
	const char *const *base = kt_launcher_env();
	int out_fd, err_fd;
	pid_t pid = kt_spawn(argv, base, NULL, &out_fd, &err_fd);
	cr_assert_gt(pid, 0);
	for (int i = 0; i < 200 && !(kt_kube_exists(&kube, "jobs", "keruta-job-w-1") && kt_kube_exists(&kube, "jobs", "keruta-job-w-2")); i++)
		usleep(50000);
	cr_assert(kt_kube_exists(&kube, "jobs", "keruta-job-w-1") && kt_kube_exists(&kube, "jobs", "keruta-job-w-2"), "the Jobs were created");
	kill(pid, SIGKILL);
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 10);
	kt_result_free(&r);
	/* the tasks are still PENDING in the API: a naive launcher would start them again */
	json_object_put(kt_kube_json(&kube, "POST", "/_control/release", "{}"));
	static const char *const args[] = {"--once", "--pending-interval", "200ms", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "adopting"), "%s", r.err);
	kt_result_free(&r);
	cr_expect_eq(count_requests("POST", "/jobs"), 4, "two Jobs and two cleanup Jobs, no duplicate");
	char *s1 = kt_statuses(&api, "w-1"), *s2 = kt_statuses(&api, "w-2");
	cr_expect(kt_contains(s1, "COMPLETED") && kt_contains(s2, "COMPLETED"), "%s %s", s1, s2);
	free(s1);
	free(s2);
}

/* A Job of ours and its pod, stored as if a launcher had created them
 * before it stopped: the pod cannot pull its image, and was created at
 * `created` (any string: the server stores it as given). */
static void seed_stuck_pod(const char *id, const char *created)
{
	kt_seed_waiting_pod(&kube, id, created, "ImagePullBackOff");
}

/* A launcher restarted while a pod cannot pull its image does not wait the
 * whole threshold again: that trouble began when the pod was created (an
 * hour ago here), so the adopted task fails at once, not after 10 minutes. */
Test(dispatch, restarted_launcher_counts_the_image_wait_already_spent)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"old-img\", \"status\": \"PENDING\"}]}");
	time_t ago = time(NULL) - 3600;
	char created[32];
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&ago));
	seed_stuck_pod("old-img", created);
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "200ms",
	                                   "--image-error-after", "10m", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "adopting"), "%s", r.err);
	char *s = kt_statuses(&api, "old-img");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "ImagePullBackOff"), "statuses: %s", s);
	free(s);
	cr_expect_null(kt_kube_object(&kube, "jobs", "keruta-job-old-img"), "the stuck Job is deleted");
	cr_expect_eq(count_requests("POST", "/jobs"), 0, "adopted, not created again");
	kt_result_free(&r);
}

/* Creation times the cluster should never send: each is taken as "now",
 * so the task still fails once the threshold has passed, and nothing else
 * happens to the launcher. */
Test(dispatch, malformed_creation_times_count_from_now)
{
	static const char *const created[] = {"", "yesterday", "2999-01-01T00:00:00Z",
	                                      "9999-99-99T99:99:99Z", "-1-01-01T00:00:00Z",
	                                      "2026-02-30T25:61:61Z"};
	size_t n = sizeof(created) / sizeof(created[0]);
	char tasks[1024] = "{\"tasks\": [", id[16];
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "ts-%zu", i);
		snprintf(tasks + strlen(tasks), sizeof(tasks) - strlen(tasks),
		         "%s{\"id\": \"%s\", \"status\": \"PENDING\"}", i ? ", " : "", id);
		seed_stuck_pod(id, created[i]);
	}
	strcat(tasks, "]}");
	kt_seed(&api, tasks);
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "200ms",
	                                   "--image-error-after", "1s", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "ts-%zu", i);
		char *s = kt_statuses(&api, id);
		cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "ImagePullBackOff"),
		          "creationTimestamp '%s': %s", created[i], s);
		free(s);
	}
	kt_result_free(&r);
}

/* A PENDING list that holds tasks in other states (a server that moved
 * on between its query and its answer, or a proxy's cache): only the
 * PENDING ones are started.  (Twice: then the list moves on, as the real
 * one does once the task is reported, and --once can end.) */
Test(dispatch, tasks_listed_in_another_status_are_not_started)
{
	static const char tasks[] =
	        "[{\"id\": \"all-1\", \"status\": \"PENDING\"}, {\"id\": \"all-done\", \"status\": "
	        "\"COMPLETED\"}, {\"id\": \"all-run\", \"status\": \"IN_PROGRESS\"}]";
	char body[512];
	snprintf(body, sizeof(body), "{\"tasks\": %s}", tasks);
	kt_seed(&api, body);
	snprintf(body, sizeof(body),
	         "{\"match\": {\"method\": \"GET\", \"path_regex\": \"^/api/v1/tasks/status/PENDING$\"}, "
	         "\"action\": \"status\", \"code\": 200, \"body\": %s, \"times\": 2}",
	         tasks);
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/fault", body, &st));
	cr_assert_eq(st, 200);
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "100ms",
	                                   "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	cr_expect(kt_kube_exists(&kube, "jobs", "keruta-job-all-1"), "the PENDING task is started");
	cr_expect(!kt_kube_exists(&kube, "jobs", "keruta-job-all-done"), "a COMPLETED task is started");
	cr_expect(!kt_kube_exists(&kube, "jobs", "keruta-job-all-run"), "a running task is started again");
}

/* The Job and its pods come on two watches, and the Job's Complete can
 * arrive before its pod's events (a watch behind the other): the launcher
 * waits for the pod instead of asking the API server for it, and the
 * cleanup Job still names the task's pod. */
Test(dispatch, a_pod_watch_behind_the_job_watch_costs_no_request)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"lag-1\", \"status\": \"PENDING\"}]}");
	json_object_put(kt_kube_json(&kube, "POST", "/_control/lag", "{\"pods\": 0.6}"));
	kt_result r;
	static const char *const args[] = {"--task-id", "lag-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	char *s = kt_statuses(&api, "lag-1");
	cr_expect(kt_contains(s, "COMPLETED"), "statuses: %s", s);
	free(s);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_eq(kt_count_requests(reqs, "GET", "/pods", "job-name"), 0,
	             "the Job's pods are not listed: %s", r.err);
	json_object_put(reqs);
	json_object *cj = kt_kube_object(&kube, "jobs", "cleanup-job-for-task-lag-1");
	cr_assert_not_null(cj, "the cleanup Job exists");
	cr_expect(kt_contains(json_object_to_json_string(cj), "keruta-job-lag-1-"),
	          "KERUTA_SOURCE_POD names the task's pod");
	json_object_put(cj);
	kt_result_free(&r);
}

/* One record of the PENDING list that cannot be read costs that task
 * only: the tasks before and after it start.  (Twice, then the list moves
 * on: keruta-api itself has the tasks COMPLETED, so --once can end.) */
Test(dispatch, an_unreadable_pending_record_skips_only_its_task)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"rec-1\", \"status\": \"COMPLETED\"}, "
	              "{\"id\": \"rec-3\", \"status\": \"COMPLETED\"}]}");
	/* '@' cannot start a YAML or JSON token: record 2 alone is unreadable */
	static const char fault[] =
	        "{\"match\": {\"method\": \"GET\", \"path_regex\": \"^/api/v1/tasks/status/PENDING$\"}, "
	        "\"action\": \"status\", \"code\": 200, \"times\": 2, \"body\": "
	        "\"[{\\\"id\\\": \\\"rec-1\\\", \\\"status\\\": \\\"PENDING\\\"}, "
	        "{\\\"id\\\": \\\"rec-2\\\", \\\"status\\\": @}, "
	        "{\\\"id\\\": \\\"rec-3\\\", \\\"status\\\": \\\"PENDING\\\"}]\"}";
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/fault", fault, &st));
	cr_assert_eq(st, 200);
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "100ms",
	                                   "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_kube_exists(&kube, "jobs", "keruta-job-rec-1"), "the task before it starts: %s",
	          r.err);
	cr_expect(kt_kube_exists(&kube, "jobs", "keruta-job-rec-3"), "the task after it starts: %s",
	          r.err);
	cr_expect(kt_contains(r.err, "PENDING task 2") && kt_contains(r.err, "skipped"),
	          "the unreadable record is named: %s", r.err);
	kt_result_free(&r);
}

/* Ids from keruta-api's list (and from Job annotations) become path
 * segments of the calls that carry the token: "..", "." or one with a
 * '/' never reaches keruta-api as a path, whatever the launcher does with
 * the task. */
Test(dispatch, task_ids_that_are_no_path_segment_never_reach_keruta_api)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"..\", \"status\": \"PENDING\"}, {\"id\": \".\", "
	              "\"status\": \"PENDING\"}, {\"id\": \"x/../../status\", \"status\": \"PENDING\"}, "
	              "{\"id\": \"fine-1\", \"status\": \"PENDING\"}]}");
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "100ms",
	                                   "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, args);
	char *s = kt_statuses(&api, "fine-1");
	cr_expect(kt_contains(s, "COMPLETED"), "the good task still runs: %s", s);
	free(s);
	int st = 0;
	char *text = kt_api_call(&api, "GET", "/_control/requests", NULL, &st);
	json_object *reqs = text ? json_tokener_parse(text) : NULL;
	free(text);
	for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++) {
		const char *p = kt_jstr(json_object_array_get_idx(reqs, i), "path");
		cr_expect(!strncmp(p, "/api/v1/tasks", 13) && !kt_contains(p, "/.") &&
		                  !kt_contains(p, "%2F") && !kt_contains(p, "%2f"),
		          "a request went to %s: %s", p, r.err);
	}
	json_object_put(reqs);
	kt_result_free(&r);
}

Test(dispatch, loop_takes_pending_tasks_with_a_concurrency_limit)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"p-1\", \"status\": \"PENDING\"}, {\"id\": \"p-2\", \"status\": "
	     "\"PENDING\"}, {\"id\": \"p-3\", \"status\": \"PENDING\"}, {\"id\": \"done\", "
	     "\"status\": \"COMPLETED\"}]}");
	kt_result r;
	static const char *const args[] = {"--once", "--concurrency", "2", "--pending-interval", "100ms",
	                                   "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	for (int i = 1; i <= 3; i++) {
		char id[16];
		snprintf(id, sizeof(id), "p-%d", i);
		char *s = kt_statuses(&api, id);
		cr_expect(kt_contains(s, "COMPLETED"), "%s: %s", id, s);
		free(s);
	}
	cr_expect_eq(count_requests("POST", "/jobs"), 3, "one Job per PENDING task, no cleanup Jobs");
	cr_expect(!kt_kube_exists(&kube, "jobs", "keruta-job-done"), "a COMPLETED task is not started");
}

Test(dispatch, credentials_and_config_errors_are_clear)
{
	kt_result r;
	/* wrong token */
	char *bad = kt_path(kube.srv.dir, "bad-kubeconfig");
	char *text = kt_read_file(kube.kubeconfig, NULL);
	char *p = strstr(text, "kube-token");
	memcpy(p, "nope-token", 10);
	kt_write_file(bad, text);
	free(text);
	kt_seed(&api, "{\"tasks\": [{\"id\": \"c-1\", \"status\": \"PENDING\"}]}");
	const char *a1[] = {"dispatch", "--kubeconfig", bad, "--api-url", api.url, "--task-id", "c-1", NULL};
	cr_assert_eq(kt_agent_run(&r, a1, NULL, 30), 0);
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "401"), "%s", r.err);
	kt_result_free(&r);
	/* unreadable kubeconfig */
	const char *a2[] = {"dispatch", "--kubeconfig", "/nonexistent/kubeconfig", "--api-url", api.url,
	                    "--task-id", "c-1", NULL};
	cr_assert_eq(kt_agent_run(&r, a2, NULL, 30), 0);
	cr_expect_eq(r.status, 2);
	cr_expect(kt_contains(r.err, "kubeconfig"), "%s", r.err);
	kt_result_free(&r);
	/* exec plugins are refused with a clear message */
	kt_write_file(bad, "apiVersion: v1\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
	                   "    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n"
	                   "    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    exec:\n"
	                   "      command: aws\n");
	cr_assert_eq(kt_agent_run(&r, a1, NULL, 30), 0);
	cr_expect_eq(r.status, 2);
	cr_expect(kt_contains(r.err, "exec"), "%s", r.err);
	kt_result_free(&r);
	free(bad);
}

/* The test kubeconfig with its first `from` replaced by `to`, written as
 * `name` next to it; the path (the caller's). */
static char *kubeconfig_with(const char *name, const char *from, const char *to)
{
	char *path = kt_path(kube.srv.dir, name);
	char *text = kt_read_file(kube.kubeconfig, NULL);
	char *p = strstr(text, from);
	cr_assert_not_null(p, "%s", text);
	*p = '\0';
	char *changed = NULL;
	cr_assert(asprintf(&changed, "%s%s%s", text, to, p + strlen(from)) > 0);
	kt_write_file(path, changed);
	free(text), free(changed);
	return path;
}

/* A FIFO where a file is expected (a Secret mounted wrong) is refused with
 * its name, never waited on: the API token file, the kubeconfig and every
 * file the kubeconfig names. */
Test(dispatch, fifo_credential_files_are_refused_not_waited_on)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"f-1\", \"status\": \"PENDING\"}]}");
	char *fifo = kt_path(kube.srv.dir, "fifo");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	char line[4200];
	snprintf(line, sizeof(line), "tokenFile: %s\n", fifo);
	char *tok = kubeconfig_with("tokenfile-kubeconfig", "token: kube-token\n", line);
	snprintf(line, sizeof(line), "token: kube-token\n    client-certificate: %s\n", fifo);
	char *cert = kubeconfig_with("cert-kubeconfig", "token: kube-token\n", line);
	snprintf(line, sizeof(line), "token: kube-token\n    client-key: %s\n", fifo);
	char *key = kubeconfig_with("key-kubeconfig", "token: kube-token\n", line);
	snprintf(line, sizeof(line), "cluster:\n    certificate-authority: %s\n", fifo);
	char *ca = kubeconfig_with("ca-kubeconfig", "cluster:\n", line);
	struct {
		const char *what;
		const char *args[12];
	} cases[] = {
	        {"API token file", {"dispatch", "--kubeconfig", kube.kubeconfig, "--api-url", api.url,
	                            "--api-token-file", fifo, "--task-id", "f-1", NULL}},
	        {"kubeconfig", {"dispatch", "--kubeconfig", fifo, "--api-url", api.url, "--task-id",
	                        "f-1", NULL}},
	        {"Kubernetes token file", {"dispatch", "--kubeconfig", tok, "--api-url", api.url,
	                                   "--task-id", "f-1", NULL}},
	        {"client certificate", {"dispatch", "--kubeconfig", cert, "--api-url", api.url,
	                                "--task-id", "f-1", NULL}},
	        {"client key", {"dispatch", "--kubeconfig", key, "--api-url", api.url, "--task-id",
	                        "f-1", NULL}},
	        {"CA file", {"dispatch", "--kubeconfig", ca, "--api-url", api.url, "--task-id", "f-1",
	                     NULL}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kt_result r;
		cr_assert_eq(kt_agent_run(&r, cases[i].args, NULL, 30), 0, "%s", cases[i].what);
		cr_expect(!r.timed_out, "%s: the launcher waited on the FIFO", cases[i].what);
		cr_expect_eq(r.status, 2, "%s: %s", cases[i].what, r.err);
		cr_expect(kt_contains(r.err, fifo), "%s: %s", cases[i].what, r.err);
		cr_expect(kt_contains(r.err, "not a regular file"), "%s: %s", cases[i].what, r.err);
		kt_result_free(&r);
	}
	free(fifo), free(tok), free(cert), free(key), free(ca);
}

/* A token with a line break would end the Authorization header early and
 * start another: refused before any request, inline or from a file. */
Test(dispatch, a_kubernetes_token_with_control_characters_is_refused)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"t-1\", \"status\": \"PENDING\"}]}");
	char *inline_cfg = kubeconfig_with("crlf-kubeconfig", "token: kube-token\n",
	                                   "token: \"kube-token\\r\\nX-Evil: 1\"\n");
	char *file = kt_path(kube.srv.dir, "crlf-token");
	kt_write_file(file, "kube-token\r\nX-Evil: 1\n");
	char line[4200];
	snprintf(line, sizeof(line), "tokenFile: %s\n", file);
	char *file_cfg = kubeconfig_with("crlf-file-kubeconfig", "token: kube-token\n", line);
	const char *cfgs[] = {inline_cfg, file_cfg};
	for (size_t i = 0; i < 2; i++) {
		const char *args[] = {"dispatch", "--kubeconfig", cfgs[i], "--api-url", api.url,
		                      "--task-id", "t-1", NULL};
		kt_result r;
		cr_assert_eq(kt_agent_run(&r, args, NULL, 30), 0);
		cr_expect_eq(r.status, 2, "%s: %s", cfgs[i], r.err);
		cr_expect(kt_contains(r.err, "control character"), "%s: %s", cfgs[i], r.err);
		kt_result_free(&r);
	}
	cr_expect_eq(count_requests("GET", "/jobs") + count_requests("POST", "/jobs"), 0,
	             "the cluster was not called");
	free(inline_cfg), free(file_cfg), free(file);
}

/* ------------------------------------------------ one terminal status */

static int terminal_count(const char *id, const char *which)
{
	return kt_terminal_count(&api, id, which);
}

/* The cleanup Job's agent reports COMPLETED; dispatch sends nothing of
 * its own (it used to send COMPLETED before the cleanup Job even ran). */
Test(dispatch, success_is_reported_once_by_the_cleanup_agent)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"once-1\", \"status\": \"PENDING\"}]}");
	kt_result r;
	static const char *const args[] = {"--task-id", "once-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect_eq(terminal_count("once-1", NULL), 1, "one terminal status: %s", kt_statuses(&api, "once-1"));
	cr_expect_eq(count_requests("PATCH", "/jobs/keruta-job-once-1"), 1, "only the reported mark");
	kt_result_free(&r);
}

/* Without a cleanup Job: an agent that reported (older termination
 * message) is left alone; one that did not is reported for. */
Test(dispatch, main_container_report_is_not_repeated_either_message_form)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"leg-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"message_format\": \"legacy\"}");
	kt_result r;
	static const char *const a1[] = {"--task-id", "leg-1", "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, a1);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect_eq(terminal_count("leg-1", "COMPLETED"), 1, "%s", kt_statuses(&api, "leg-1"));
	kt_result_free(&r);
	kt_seed(&api, "{\"tasks\": [{\"id\": \"new-1\", \"status\": \"PENDING\"}, {\"id\": \"new-2\", "
	     "\"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"message_format\": \"new\", \"main_reports\": true}");
	static const char *const a2[] = {"--task-id", "new-1", "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, a2);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect_eq(terminal_count("new-1", "COMPLETED"), 1, "%s", kt_statuses(&api, "new-1"));
	kt_result_free(&r);
	/* the pod ended without reporting ("reported": null): dispatch does */
	kt_scenario(&kube, "{\"main_reports\": false}");
	static const char *const a3[] = {"--task-id", "new-2", "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, a3);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect_eq(terminal_count("new-2", "COMPLETED"), 1, "%s", kt_statuses(&api, "new-2"));
	kt_result_free(&r);
}

/* The cleanup Job fails after its agent reported COMPLETED: a log line
 * and an annotation, never a second (FAILED) status. */
Test(dispatch, late_failure_is_an_annotation_not_a_second_status)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"late-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"cleanup\": \"late_failure\"}");
	kt_result r;
	static const char *const args[] = {"--task-id", "late-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(terminal_count("late-1", NULL), 1, "%s", kt_statuses(&api, "late-1"));
	cr_expect_eq(terminal_count("late-1", "COMPLETED"), 1, "%s", kt_statuses(&api, "late-1"));
	cr_expect(kt_contains(r.err, "after it was reported COMPLETED"), "%s", r.err);
	json_object *job = kt_kube_object(&kube, "jobs", "keruta-job-late-1");
	json_object *ann = kt_jpath(job, "metadata.annotations"), *late = NULL;
	cr_expect(ann && json_object_object_get_ex(ann, "keruta.io/late-failure", &late) &&
	                  kt_contains(json_object_get_string(late), "cleanup Job failed"),
	          "annotated: %s", json_object_to_json_string(job));
	json_object_put(job);
	kt_result_free(&r);
}

/* The cleanup pod dies before its agent could report: dispatch reports
 * FAILED, once. */
Test(dispatch, cleanup_that_died_before_reporting_is_reported_by_dispatch)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"cdie-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"cleanup\": \"cleanup_failure\"}");
	kt_result r;
	static const char *const args[] = {"--task-id", "cdie-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect_eq(terminal_count("cdie-1", NULL), 1, "%s", kt_statuses(&api, "cdie-1"));
	char *s = kt_statuses(&api, "cdie-1");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "cleanup Job failed"), "%s", s);
	free(s);
	kt_result_free(&r);
}

/* ------------------------------------------------- hostile watch lines */

static pid_t spawn_dispatch(const char *const *more, int *out_fd, int *err_fd)
{
	const char *argv[40] = {kt_agent(), "dispatch", "--kubeconfig", kube.kubeconfig, "--api-url",
	                        api.url, "--log-format", "text"};
	size_t n = 8;
	for (size_t i = 0; more && more[i]; i++)
		argv[n++] = more[i];
	argv[n] = NULL;
	pid_t pid = kt_spawn(argv, kt_launcher_env(), NULL, out_fd, err_fd);
	cr_assert_gt(pid, 0);
	return pid;
}

static int open_watches(void)
{
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	int n = 0;
	for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++)
		n += kt_contains(kt_jstr(json_object_array_get_idx(reqs, i), "query"), "watch=1");
	json_object_put(reqs);
	return n;
}

/* Whatever a proxy or a broken API server puts on a watch stream, the
 * launcher keeps going: each kind of malformed line is skipped, a null
 * resourceVersion never becomes "(null)", and the task still finishes. */
Test(dispatch, malformed_watch_events_are_skipped)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"mal-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"default\": \"wait\"}");
	int out_fd, err_fd;
	static const char *const args[] = {"--task-id", "mal-1", NULL};
	pid_t pid = spawn_dispatch(args, &out_fd, &err_fd);
	for (int i = 0; i < 200 && !(kt_kube_exists(&kube, "jobs", "keruta-job-mal-1") && open_watches() >= 2); i++)
		usleep(50000);
	cr_assert(open_watches() >= 2, "both watches are open");
	usleep(300000);
	json_object_put(kt_kube_json(
	        &kube, "POST", "/_control/inject",
	        "{\"lines\": ["
	        "\"{\\\"type\\\": null, \\\"object\\\": {}}\","
	        "\"{\\\"type\\\": 7, \\\"object\\\": {}}\","
	        "\"{\\\"type\\\": \\\"ADDED\\\"}\","
	        "\"{\\\"type\\\": \\\"ADDED\\\", \\\"object\\\": null}\","
	        "\"{\\\"type\\\": \\\"MODIFIED\\\", \\\"object\\\": \\\"text\\\"}\","
	        "\"{\\\"type\\\": \\\"MODIFIED\\\", \\\"object\\\": [1, 2]}\","
	        "\"{\\\"type\\\": \\\"MODIFIED\\\", \\\"object\\\": {\\\"metadata\\\": []}}\","
	        "\"{\\\"type\\\": \\\"MODIFIED\\\", \\\"object\\\": {\\\"metadata\\\": "
	        "{\\\"resourceVersion\\\": null}}}\","
	        "\"{\\\"type\\\": \\\"MODIFIED\\\", \\\"object\\\": {\\\"metadata\\\": "
	        "{\\\"resourceVersion\\\": {\\\"a\\\": 1}}}}\","
	        "\"{\\\"type\\\": \\\"MODIFIED\\\", \\\"object\\\": {\\\"metadata\\\": {\\\"labels\\\": "
	        "{\\\"keruta.io/role\\\": \\\"main\\\"}, \\\"annotations\\\": {\\\"keruta.io/task-id\\\": "
	        "\\\"mal-1\\\"}}, \\\"status\\\": {\\\"conditions\\\": \\\"Complete\\\", "
	        "\\\"containerStatuses\\\": {\\\"name\\\": 1}, \\\"initContainerStatuses\\\": 5}}}\","
	        "\"{\\\"type\\\": \\\"ERROR\\\", \\\"object\\\": {\\\"code\\\": \\\"410\\\"}}\","
	        "\"{\\\"type\\\": \\\"SOMETHING\\\", \\\"object\\\": {}}\","
	        "\"[]\", \"null\", \"42\", \"not json at all\", \"{\\\"type\\\": \","
	        "\"\\u0000\\u0001\\u00ff\""
	        "]}"));
	usleep(500000);
	/* reconnect from the resume point: it must be one the server gave */
	json_object_put(kt_kube_json(&kube, "POST", "/_control/drop", "{}"));
	usleep(800000);
	json_object_put(kt_kube_json(&kube, "POST", "/_control/release", "{}"));
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 40);
	cr_expect(!r.timed_out, "dispatch finished");
	cr_expect_eq(r.status, 0, "exit %d (128+11 is SIGSEGV): %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "not an event"), "the bad lines are said: %s", r.err);
	/* an ERROR whose code is the text "410" is no 410 Gone: said, not obeyed */
	cr_expect(kt_contains(r.err, ": error 0 "), "the ERROR without a numeric code is said: %s",
	          r.err);
	cr_expect_eq(terminal_count("mal-1", "COMPLETED"), 1, "%s", kt_statuses(&api, "mal-1"));
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++) {
		const char *q = kt_jstr(json_object_array_get_idx(reqs, i), "query");
		cr_expect(!kt_contains(q, "null") && !kt_contains(q, "%7B"), "resume point: %s", q);
	}
	json_object_put(reqs);
	kt_result_free(&r);
}

/* ------------------------------------------------------------ outages */

static int count_dropped(json_object *reqs, const char *key, const char *dropped)
{
	int n = 0;
	for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++) {
		const char *st = kt_jstr(json_object_array_get_idx(reqs, i), key);
		n += st && !strcmp(st, dropped);
	}
	return n;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SIGTERM, then the seconds until the launcher exited. */
static double stop_and_time(pid_t pid, int out_fd, int err_fd, kt_result *r)
{
	double t0 = now_s();
	kill(pid, SIGTERM);
	kt_wait(r, pid, out_fd, err_fd, 20);
	return now_s() - t0;
}

static int all_terminal(const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "%s%d", prefix, i);
		if (terminal_count(id, NULL) == 0)
			return 0;
	}
	return 1;
}

/* The Kubernetes API is gone for 20 s: the launcher backs off (a few
 * dozen requests at most, where it used to make tens of thousands),
 * resumes its watches when the server is back and finishes its tasks;
 * SIGTERM in a later outage ends it at once.  The target is 2 s; the test
 * allows 10 (a loaded machine), still far from the minute a launcher that
 * waits for the API to come back would take.  Load only lowers the count
 * of requests, so its bound needs no margin for it. */
Test(dispatch, kubernetes_api_outage_backs_off_and_recovers, .timeout = 150)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"ko0\", \"status\": \"PENDING\"}, {\"id\": \"ko1\", \"status\": "
	     "\"PENDING\"}, {\"id\": \"ko2\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"default\": \"wait\"}");
	int out_fd, err_fd;
	static const char *const args[] = {"--pending-interval", "200ms", NULL};
	pid_t pid = spawn_dispatch(args, &out_fd, &err_fd);
	for (int i = 0; i < 200 && !(kt_kube_exists(&kube, "jobs", "keruta-job-ko2") && open_watches() >= 2); i++)
		usleep(50000);
	cr_assert(kt_kube_exists(&kube, "jobs", "keruta-job-ko2"), "the Jobs were created");
	json_object_put(kt_kube_json(&kube, "POST", "/_control/down", "{\"seconds\": 20}"));
	json_object_put(kt_kube_json(&kube, "POST", "/_control/release", "{}"));
	sleep(20);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	int during = count_dropped(reqs, "status", "dropped");
	json_object_put(reqs);
	cr_expect_leq(during, 36, "requests during the 20 s outage: %d", during);
	cr_expect_geq(during, 2, "the launcher kept probing (%d)", during);
	for (int i = 0; i < 400 && !all_terminal("ko", 3); i++)
		usleep(100000);
	cr_expect(all_terminal("ko", 3), "every task finished after the outage");
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof(id), "ko%d", i);
		cr_expect_eq(terminal_count(id, "COMPLETED"), 1, "%s: %s", id, kt_statuses(&api, id));
	}
	/* a second outage, and SIGTERM in it */
	json_object_put(kt_kube_json(&kube, "POST", "/_control/down", "{\"seconds\": 60}"));
	sleep(3);
	kt_result r;
	double took = stop_and_time(pid, out_fd, err_fd, &r);
	cr_expect_lt(took, 10.0, "exited %.2f s after SIGTERM", took);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
}

/* keruta-api is gone for 20 s (longer if the 200 tasks take longer to
 * finish on a loaded machine) while 200 tasks finish: a handful of
 * requests probe it; SIGTERM in the outage ends the launcher at once (the
 * target is 2 s, the test allows 10: a launcher waiting for keruta-api
 * would wait until the test ends the outage) with every owed report
 * written on its Job; the next launcher sends each exactly once when
 * keruta-api is back. */
Test(dispatch, keruta_api_outage_owes_reports_and_a_restart_sends_each_once, .timeout = 300)
{
	enum { N = 200 };
	size_t cap = 64 * N + 64, len = 0;
	char *tasks = malloc(cap);
	len += (size_t)snprintf(tasks + len, cap - len, "{\"tasks\": [");
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(tasks + len, cap - len, "%s{\"id\": \"ka%d\", \"status\": \"PENDING\"}",
		                        i ? ", " : "", i);
	snprintf(tasks + len, cap - len, "]}");
	kt_seed(&api, tasks);
	free(tasks);
	kt_scenario(&kube, "{\"default\": \"wait\"}");
	int out_fd, err_fd;
	static const char *const args[] = {"--pending-interval", "200ms", "--concurrency", "200",
	                                   "--cleanup-job=false", "--work-volume", "emptydir",
	                                   "--log-level", "warn", NULL};
	pid_t pid = spawn_dispatch(args, &out_fd, &err_fd);
	int jobs = 0;
	for (int i = 0; i < 600 && jobs < N; i++) {
		usleep(100000);
		json_object *all = kt_kube_json(&kube, "GET", "/_control/objects?kind=jobs", NULL);
		jobs = (int)json_object_array_length(kt_jpath(all, "jobs"));
		json_object_put(all);
	}
	cr_assert_eq(jobs, N, "every task has its Job");
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/down", "{\"seconds\": 600}", &st));
	double t0 = now_s();
	json_object_put(kt_kube_json(&kube, "POST", "/_control/release", "{}"));
	/* the tasks finish in the outage; what the launcher owes goes on the Jobs */
	int owed = 0;
	do {
		usleep(500000);
		json_object *all = kt_kube_json(&kube, "GET", "/_control/objects?kind=jobs", NULL);
		json_object *list = kt_jpath(all, "jobs");
		owed = 0;
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *ann = kt_jpath(json_object_array_get_idx(list, i), "metadata.annotations"), *o;
			owed += ann && json_object_object_get_ex(ann, "keruta.io/owed", &o);
		}
		json_object_put(all);
	} while (owed < N && now_s() - t0 < 120);
	cr_expect_eq(owed, N, "every finished task's report is noted on its Job (%d)", owed);
	kt_result r;
	double took = stop_and_time(pid, out_fd, err_fd, &r);
	cr_expect_lt(took, 10.0, "exited %.2f s after SIGTERM in the outage", took);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	/* the next launcher starts in the outage and reports when it ends */
	static const char *const again[] = {"--once", "--pending-interval", "200ms", "--concurrency",
	                                    "200", "--cleanup-job=false", "--work-volume", "emptydir",
	                                    "--log-level", "warn", NULL};
	pid = spawn_dispatch(again, &out_fd, &err_fd);
	double t1 = now_s();
	while (now_s() - t0 < 20 || now_s() - t1 < 3)
		usleep(100000);
	free(kt_api_call(&api, "POST", "/_control/down", "{\"seconds\": 0}", &st));
	double outage = now_s() - t0;
	char *text = kt_api_call(&api, "GET", "/_control/requests", NULL, &st);
	json_object *reqs = json_tokener_parse(text);
	free(text);
	int during = count_dropped(reqs, "response_status", "dropped");
	json_object_put(reqs);
	/* 20 in the first 20 s; past that, a launcher's backoff is 15 to 30 s */
	int bound = 20 + (outage > 20 ? (int)((outage - 20) / 7.5) + 1 : 0);
	cr_expect_leq(during, bound, "requests to keruta-api during its %.0f s outage, two launchers: %d",
	              outage, during);
	kt_wait(&r, pid, out_fd, err_fd, 90);
	cr_expect(!r.timed_out && r.status == 0, "the second launcher finished: %d %s", r.status, r.err);
	kt_result_free(&r);
	text = kt_api_call(&api, "GET", "/_control/state", NULL, &st);
	json_object *state = json_tokener_parse(text), *byid = kt_jpath(state, "statuses");
	free(text);
	int once = 0;
	for (int i = 0; i < N; i++) {
		char id[16];
		snprintf(id, sizeof(id), "ka%d", i);
		json_object *l = NULL;
		int done = 0, terminal = 0;
		json_object_object_get_ex(byid, id, &l);
		for (size_t j = 0; l && j < json_object_array_length(l); j++) {
			const char *v = kt_jstr(json_object_array_get_idx(l, j), "status");
			done += !strcmp(v, "COMPLETED");
			terminal += !strcmp(v, "COMPLETED") || !strcmp(v, "FAILED");
		}
		once += done == 1 && terminal == 1;
	}
	json_object_put(state);
	cr_expect_eq(once, N, "every task reported exactly once (%d of %d)", once, N);
}

/* A pod of someone else's that mounts claim `claim` on `node`. */
static void seed_claim_and_user(const char *claim, const char *mode, const char *pod,
                                const char *node, const char *phase)
{
	char body[1024];
	snprintf(body, sizeof(body),
	         "{\"objects\": [{\"apiVersion\": \"v1\", \"kind\": \"PersistentVolumeClaim\", "
	         "\"metadata\": {\"name\": \"%s\", \"namespace\": \"keruta\"}, \"spec\": "
	         "{\"accessModes\": [\"%s\"]}}, {\"apiVersion\": \"v1\", \"kind\": \"Pod\", "
	         "\"metadata\": {\"name\": \"%s\", \"namespace\": \"keruta\"}, \"spec\": {\"nodeName\": "
	         "\"%s\", \"volumes\": [{\"name\": \"data\", \"persistentVolumeClaim\": {\"claimName\": "
	         "\"%s\"}}]}, \"status\": {\"phase\": \"%s\"}}]}",
	         claim, mode, pod, node, claim, phase);
	json_object_put(kt_kube_json(&kube, "POST", "/_control/seed", body));
}

Test(dispatch, an_existing_claim_is_mounted_pinned_and_never_created_or_deleted)
{
	seed_claim_and_user("shared-cache", "ReadWriteOnce", "old-user", "node-1", "Succeeded");
	json_object_put(kt_kube_json(&kube, "POST", "/_control/seed",
	                             "{\"objects\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", "
	                             "\"metadata\": {\"name\": \"live-user\", \"namespace\": "
	                             "\"keruta\"}, \"spec\": {\"nodeName\": \"node-9\", \"volumes\": "
	                             "[{\"name\": \"d\", \"persistentVolumeClaim\": {\"claimName\": "
	                             "\"shared-cache\"}}]}, \"status\": {\"phase\": \"Running\"}}]}"));
	kt_seed(&api, "{\"tasks\": [{\"id\": \"ex-1\", \"status\": \"PENDING\", \"pvcName\": \"shared-cache\", "
	     "\"pvcStorageSize\": \"9Gi\"}]}");
	kt_scenario(&kube, "{\"nodes\": {\"ex-1\": \"node-9\"}}");
	kt_result r;
	/* the claim's own mode counts, not the launcher's setting */
	static const char *const args[] = {"--task-id", "ex-1", "--delete-pvc", "--pvc-access-mode",
	                                   "ReadWriteMany", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	char *s = kt_statuses(&api, "ex-1");
	cr_expect(kt_contains(s, "COMPLETED"), "%s", s);
	free(s);
	cr_expect_eq(count_requests("POST", "/persistentvolumeclaims"), 0, "never created");
	cr_expect_eq(count_requests("DELETE", "/persistentvolumeclaims/shared-cache"), 0,
	             "never deleted, even with --delete-pvc");
	json_object *pvc = kt_kube_object(&kube, "persistentvolumeclaims", "shared-cache");
	cr_expect_not_null(pvc, "the claim is still there");
	json_object_put(pvc);
	const char *jobs[] = {"keruta-job-ex-1", "cleanup-job-for-task-ex-1"};
	for (int i = 0; i < 2; i++) {
		json_object *job = kt_kube_object(&kube, "jobs", jobs[i]);
		cr_assert_not_null(job, "%s exists", jobs[i]);
		cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[0].persistentVolumeClaim."
		                              "claimName"),
		                 "shared-cache", "%s mounts the existing claim", jobs[i]);
		cr_expect_str_eq(kt_jstr(job, "spec.template.spec.affinity.nodeAffinity."
		                              "requiredDuringSchedulingIgnoredDuringExecution."
		                              "nodeSelectorTerms[0].matchExpressions[0].values[0]"),
		                 "node-9", "%s goes where the ReadWriteOnce claim is in use", jobs[i]);
		json_object_put(job);
	}
}

Test(dispatch, an_existing_rwx_claim_is_not_pinned_and_a_missing_one_fails_clearly)
{
	seed_claim_and_user("wide", "ReadWriteMany", "user", "node-4", "Running");
	kt_seed(&api, "{\"tasks\": [{\"id\": \"wx-1\", \"status\": \"PENDING\", \"pvcName\": \"wide\"}, "
	     "{\"id\": \"gone-1\", \"status\": \"PENDING\", \"pvcName\": \"no-such-claim\"}]}");
	kt_result r;
	static const char *const a1[] = {"--task-id", "wx-1", "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, a1);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	json_object *job = kt_kube_object(&kube, "jobs", "keruta-job-wx-1");
	cr_assert_not_null(job);
	cr_expect_null(kt_jpath(job, "spec.template.spec.affinity"), "ReadWriteMany: not pinned");
	json_object_put(job);
	static const char *const a2[] = {"--task-id", "gone-1", NULL};
	kt_dispatch(&r, &kube, &api, a2);
	cr_expect_neq(r.status, 0);
	cr_expect(kt_contains(r.err, "no-such-claim") && kt_contains(r.err, "does not exist"),
	          "%s", r.err);
	kt_result_free(&r);
	cr_expect(!kt_kube_exists(&kube, "jobs", "keruta-job-gone-1"), "no Job without its claim");
	cr_expect_eq(count_requests("POST", "/persistentvolumeclaims"), 0);
}

Test(dispatch, delete_pvc_removes_only_the_claims_it_created)
{
	json_object_put(kt_kube_json(&kube, "POST", "/_control/seed",
	                             "{\"objects\": [{\"apiVersion\": \"v1\", \"kind\": "
	                             "\"PersistentVolumeClaim\", \"metadata\": {\"name\": "
	                             "\"git-repo-pvc-handmade\", \"namespace\": \"keruta\"}, "
	                             "\"spec\": {}}]}"));
	kt_seed(&api, "{\"tasks\": [{\"id\": \"handmade\", \"status\": \"PENDING\"}, {\"id\": \"fresh\", "
	     "\"status\": \"PENDING\"}]}");
	kt_result r;
	static const char *const a1[] = {"--task-id", "handmade", "--delete-pvc", NULL};
	kt_dispatch(&r, &kube, &api, a1);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	static const char *const a2[] = {"--task-id", "fresh", "--delete-pvc", NULL};
	kt_dispatch(&r, &kube, &api, a2);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	json_object *pvc = kt_kube_object(&kube, "persistentvolumeclaims", "git-repo-pvc-handmade");
	cr_expect_not_null(pvc, "a claim made by hand under the task's name is kept");
	json_object_put(pvc);
	pvc = kt_kube_object(&kube, "persistentvolumeclaims", "git-repo-pvc-fresh");
	cr_expect_null(pvc, "the launcher's own claim is deleted");
	json_object_put(pvc);
}

Test(dispatch, emptydir_starts_no_cleanup_job)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"ed-1\", \"status\": \"PENDING\"}]}");
	kt_result r;
	static const char *const args[] = {"--task-id", "ed-1", "--work-volume", "emptydir", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "no cleanup Job"), "it says why: %s", r.err);
	kt_result_free(&r);
	cr_expect_eq(count_requests("POST", "/jobs"), 1, "the Job only");
	cr_expect_eq(count_requests("POST", "/persistentvolumeclaims"), 0);
	json_object *job = kt_kube_object(&kube, "jobs", "keruta-job-ed-1");
	cr_assert_not_null(job);
	cr_expect(kt_contains(json_object_to_json_string(
	                              kt_jpath(job, "spec.template.spec.containers[0].command")),
	                      "\"--final-status\", \"yes\""),
	          "the main container reports last");
	json_object_put(job);
	char *s = kt_statuses(&api, "ed-1");
	cr_expect(kt_contains(s, "COMPLETED"), "%s", s);
	free(s);
}

/* A namespace that kept many finished Jobs is read in pages (the whole
 * list at once was hundreds of MiB for the launcher at 10,000 tasks); a
 * Job of ours on the last page is still adopted and reported. */
Test(dispatch, long_lists_are_read_in_pages)
{
	enum { OLD = 1100, CHUNK = 100 };
	/* seeded in chunks: the control call's body goes on a command line */
	for (int from = 0; from <= OLD; from += CHUNK) {
		size_t cap = 400 * CHUNK + 64, len = 0;
		char *objs = malloc(cap);
		len += (size_t)snprintf(objs + len, cap - len, "{\"objects\": [");
		for (int i = from; i <= OLD && i < from + CHUNK; i++)
			len += (size_t)snprintf(
			        objs + len, cap - len,
			        "%s{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": {\"name\": "
			        "\"keruta-job-%s%05d\", \"namespace\": \"keruta\", \"labels\": {\"app\": "
			        "\"keruta\", \"keruta.io/role\": \"main\"}, \"annotations\": "
			        "{\"keruta.io/task-id\": \"%s%05d\"%s}}, \"spec\": {}, \"status\": "
			        "{\"conditions\": [{\"type\": \"Complete\", \"status\": \"True\"}]}}",
			        i > from ? ", " : "", i < OLD ? "old" : "zz", i, i < OLD ? "old" : "zz", i,
			        i < OLD ? ", \"keruta.io/reported\": \"COMPLETED\"" : "");
		snprintf(objs + len, cap - len, "]}");
		json_object *ok = kt_kube_json(&kube, "POST", "/_control/seed", objs);
		cr_assert_not_null(ok, "seeded");
		json_object_put(ok);
		free(objs);
	}
	char task[128];
	snprintf(task, sizeof(task), "{\"tasks\": [{\"id\": \"zz%05d\", \"status\": \"PENDING\"}]}", OLD);
	kt_seed(&api, task);
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "200ms",
	                                   "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	char id[16];
	snprintf(id, sizeof(id), "zz%05d", OLD);
	cr_expect_eq(terminal_count(id, "COMPLETED"), 1, "the Job on the last page: %s", kt_statuses(&api, id));
	cr_expect(kt_contains(r.err, "adopting"), "adopted, not created: %s", r.err);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	int pages = 0;
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		const char *q = kt_jstr(json_object_array_get_idx(reqs, i), "query");
		pages += kt_contains(q, "limit=500") && kt_contains(q, "continue=");
	}
	json_object_put(reqs);
	cr_expect_geq(pages, 2, "the Jobs were read in pages (%d follow-up pages)", pages);
	kt_result_free(&r);
}

/* The keruta.io/reported annotation of a task's main Job ("" when none). */
static const char *reported_as(const char *id)
{
	static char out[64];
	char name[128];
	snprintf(name, sizeof(name), "keruta-job-%s", id);
	json_object *job = kt_kube_object(&kube, "jobs", name), *v = NULL;
	json_object *ann = kt_jpath(job, "metadata.annotations");
	snprintf(out, sizeof(out), "%s",
	         ann && json_object_object_get_ex(ann, "keruta.io/reported", &v)
	                 ? json_object_get_string(v)
	                 : "");
	json_object_put(job);
	return out;
}

/* Another launcher created the task's Job between this one's list and its
 * POST (the POST answers 409): the Job is followed to its end and
 * reported once, not made twice. */
Test(dispatch, a_job_made_by_another_launcher_meanwhile_is_followed_not_duplicated)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"race-1\", \"status\": \"PENDING\"}]}");
	json_object_put(kt_kube_json(&kube, "POST", "/_control/fault",
	                             "{\"method\": \"POST\", \"path_regex\": \"/jobs$\", \"race\": true}"));
	kt_result r;
	static const char *const args[] = {"--task-id", "race-1", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "Job keruta-job-race-1 exists; following it"), "%s", r.err);
	cr_expect_eq(kt_terminal_count(&api, "race-1", "COMPLETED"), 1);
	cr_expect_eq(kt_terminal_count(&api, "race-1", NULL), 1);
	cr_expect_str_eq(reported_as("race-1"), "COMPLETED");
	cr_expect(kt_kube_exists(&kube, "jobs", "cleanup-job-for-task-race-1"), "%s", r.err);
	kt_result_free(&r);
}

/* keruta-api still lists the task as PENDING (its status update came
 * late) but its Job was reported on already: nothing is run or reported
 * again, and --task-id's exit status is the reported outcome. */
Test(dispatch, a_pending_task_whose_job_was_reported_is_not_run_again)
{
	static const struct {
		const char *reported;
		int status;
	} cases[] = {{"COMPLETED", 0}, {"FAILED", 1}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[32], seed[256], objs[1024];
		snprintf(id, sizeof(id), "rep-%zu", i);
		snprintf(seed, sizeof(seed), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"PENDING\"}]}",
		         id);
		kt_seed(&api, seed);
		snprintf(objs, sizeof(objs),
		         "{\"objects\": [{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": "
		         "{\"name\": \"keruta-job-%s\", \"namespace\": \"keruta\", \"labels\": {\"app\": "
		         "\"keruta\", \"keruta.io/role\": \"main\", \"task-id\": \"%s\"}, \"annotations\": "
		         "{\"keruta.io/task-id\": \"%s\", \"keruta.io/reported\": \"%s\"}}, \"spec\": {}, "
		         "\"status\": {\"conditions\": [{\"type\": \"%s\", \"status\": \"True\"}]}}]}",
		         id, id, id, cases[i].reported,
		         strcmp(cases[i].reported, "FAILED") == 0 ? "Failed" : "Complete");
		json_object_put(kt_kube_json(&kube, "POST", "/_control/seed", objs));
		kt_result r;
		const char *const args[] = {"--task-id", id, NULL};
		kt_dispatch(&r, &kube, &api, args);
		cr_expect_eq(r.status, cases[i].status, "%s: %s", id, r.err);
		cr_expect(kt_contains(r.err, "was already reported on"), "%s: %s", id, r.err);
		cr_expect(kt_contains(r.err, cases[i].status ? "(1 failed)" : "(0 failed)"), "%s: %s", id,
		          r.err);
		char *s = kt_statuses(&api, id);
		cr_expect_str_eq(s, "[]", "%s: nothing reported again", id);
		free(s);
		char cleanup[64];
		snprintf(cleanup, sizeof(cleanup), "cleanup-job-for-task-%s", id);
		cr_expect(!kt_kube_exists(&kube, "jobs", cleanup), "%s: no cleanup Job", id);
		kt_result_free(&r);
	}
	cr_expect_eq(count_requests("POST", "/jobs"), 2, "one refused POST per task, nothing else");
}

/* keruta-api answers a plain list; a paged wrapper ({content: [...]} as
 * Spring's Page, or {items: [...]}) is read the same way. */
Test(dispatch, a_pending_list_wrapped_in_an_object_is_read)
{
	static const char *const keys[] = {"content", "items"};
	for (size_t i = 0; i < 2; i++) {
		char fault[512], id[32];
		snprintf(id, sizeof(id), "wrap-%s", keys[i]);
		snprintf(fault, sizeof(fault),
		         "{\"match\": {\"method\": \"GET\", \"path_regex\": \"/tasks/status/PENDING$\"}, "
		         "\"action\": \"status\", \"code\": 200, \"times\": 1, \"body\": {\"%s\": "
		         "[{\"id\": \"%s\", \"status\": \"PENDING\"}], \"totalElements\": 1}}",
		         keys[i], id);
		int st = 0;
		free(kt_api_call(&api, "POST", "/_control/fault", fault, &st));
		cr_assert_eq(st, 200);
		/* the task itself, for its status reports */
		char seed[128];
		snprintf(seed, sizeof(seed), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"RUNNING\"}]}", id);
		kt_seed(&api, seed);
		kt_result r;
		static const char *const args[] = {"--once", "--pending-interval", "100ms",
		                                   "--cleanup-job=false", NULL};
		kt_dispatch(&r, &kube, &api, args);
		cr_expect_eq(r.status, 0, "%s", r.err);
		char job[64];
		snprintf(job, sizeof(job), "keruta-job-%s", id);
		cr_expect(kt_kube_exists(&kube, "jobs", job), "%s: %s", job, r.err);
		cr_expect_eq(kt_terminal_count(&api, id, "COMPLETED"), 1, "%s", id);
		kt_result_free(&r);
	}
}

/* A PENDING answer that is an object without a list in it is ignored
 * with a warning (nothing started), and counts as a poll: --once ends;
 * with no keruta-api and no task named,
 * dispatch has nothing to do and says what to give. */
Test(dispatch, a_pending_answer_without_a_list_and_no_source_of_tasks)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"nolist-1\", \"status\": \"PENDING\"}]}");
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/fault",
	                 "{\"match\": {\"method\": \"GET\", \"path_regex\": \"/tasks/status/PENDING$\"}, "
	                 "\"action\": \"status\", \"code\": 200, \"times\": -1, \"body\": "
	                 "{\"page\": {\"id\": \"nolist-1\"}}}",
	                 &st));
	cr_assert_eq(st, 200);
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "100ms", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "the PENDING tasks answer is not a list; ignored"), "%s", r.err);
	cr_expect(!kt_kube_exists(&kube, "jobs", "keruta-job-nolist-1"), "nothing started");
	kt_result_free(&r);
	char *text = kt_api_call(&api, "GET", "/_control/requests", NULL, &st);
	json_object *reqs = json_tokener_parse(text ? text : "[]");
	cr_expect_eq(kt_count_requests(reqs, "GET", "/tasks/status/PENDING", NULL), 1,
	             "--once polls once, not again at once");
	json_object_put(reqs);
	free(text);

	const char *const none[] = {"dispatch", "--kubeconfig", kube.kubeconfig, NULL};
	cr_assert_eq(kt_agent_run(&r, none, NULL, 30), 0);
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "dispatch needs --api-url (to take PENDING tasks), or one task "
	                             "with --task-id / --task-file"),
	          "%s", r.err);
	kt_result_free(&r);
	cr_expect_eq(count_requests("POST", "/jobs"), 0);
}

/* keruta-api down when `dispatch --task-id` starts: the task is asked for
 * again on a backoff, up to --api-retries times. */
Test(dispatch, task_id_waits_for_keruta_api_within_its_retries)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"late-1\", \"status\": \"PENDING\"}]}");
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/down", "{\"seconds\": 600}", &st));
	kt_result r;
	static const char *const none[] = {"--task-id", "late-1", "--api-retries", "1", NULL};
	kt_dispatch(&r, &kube, &api, none);
	cr_expect_eq(r.status, 3, "keruta-api unreachable: %s", r.err);
	cr_expect(kt_contains(r.err, "retry 1 of 1"), "%s", r.err);
	cr_expect(!kt_contains(r.err, "retry 2"), "%s", r.err);
	cr_expect(!kt_kube_exists(&kube, "jobs", "keruta-job-late-1"), "nothing started");
	kt_result_free(&r);

	free(kt_api_call(&api, "POST", "/_control/down", "{\"seconds\": 1.5}", &st));
	static const char *const some[] = {"--task-id", "late-1", "--api-retries", "20", NULL};
	kt_dispatch(&r, &kube, &api, some);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "retry 1 of 20"), "%s", r.err);
	cr_expect_eq(kt_terminal_count(&api, "late-1", "COMPLETED"), 1);
	kt_result_free(&r);
}
