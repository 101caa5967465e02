/*
 * launcher_events.c - `keruta-agent dispatch` on Kubernetes events beyond
 * the happy path: a Job deleted by someone else while it runs, a main
 * container restarted after an OOM kill where only lastState tells, and
 * the PVC removed with --delete-pvc (off by default).  Checked by what
 * the operator sees: the exit code, the status keruta-api received, the
 * objects left in the cluster.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
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

TestSuite(events, .init = setup, .fini = teardown, .timeout = 90);

/* One task in keruta-api, playing this Job history on the cluster. */
static void task_with_history(const char *id, const char *history)
{
	char body[256];
	snprintf(body, sizeof(body), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"PENDING\"}]}", id);
	kt_seed(&api, body);
	snprintf(body, sizeof(body), "{\"tasks\": {\"%s\": \"%s\"}}", id, history);
	kt_scenario(&kube, body);
}

static void dispatch_task(kt_result *r, const char *id, const char *extra)
{
	const char *more[] = {"--task-id", id, extra, NULL};
	kt_dispatch(r, &kube, &api, more);
}

Test(events, a_job_deleted_while_running_fails_the_task)
{
	task_with_history("del-1", "deleted");
	kt_result r;
	dispatch_task(&r, "del-1", NULL);
	cr_expect_eq(r.status, 1, "a failed task exits 1: %s", r.err);
	char *s = kt_statuses(&api, "del-1");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "deleted before it finished"),
	          "statuses: %s", s);
	cr_expect(!kt_contains(s, "COMPLETED"), "statuses: %s", s);
	free(s);
	cr_expect(!kt_kube_exists(&kube, "jobs", "cleanup-job-for-task-del-1"), "no cleanup Job for a deleted Job");
	kt_result_free(&r);
}

Test(events, an_oom_kill_seen_only_in_last_state_is_reported)
{
	task_with_history("oomr-1", "oom_restarted");
	kt_result r;
	dispatch_task(&r, "oomr-1", NULL);
	cr_expect_eq(r.status, 1, "%s", r.err);
	char *s = kt_statuses(&api, "oomr-1");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "out of memory"), "statuses: %s", s);
	free(s);
	kt_result_free(&r);
}

Test(events, delete_pvc_removes_the_volume_after_the_cleanup_job)
{
	task_with_history("pvc-1", "success");
	kt_result r;
	dispatch_task(&r, "pvc-1", "--delete-pvc");
	cr_expect_eq(r.status, 0, "%s", r.err);
	char *s = kt_statuses(&api, "pvc-1");
	cr_expect(kt_contains(s, "COMPLETED"), "statuses: %s", s);
	free(s);
	cr_expect(kt_kube_exists(&kube, "jobs", "cleanup-job-for-task-pvc-1"), "the cleanup Job ran");
	cr_expect(!kt_kube_exists(&kube, "persistentvolumeclaims", "git-repo-pvc-pvc-1"),
	          "--delete-pvc: the PVC is still there");
	kt_result_free(&r);
}

Test(events, delete_pvc_removes_the_volume_of_a_failed_task)
{
	task_with_history("pvcf-1", "failure");
	kt_result r;
	dispatch_task(&r, "pvcf-1", "--delete-pvc");
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(!kt_kube_exists(&kube, "persistentvolumeclaims", "git-repo-pvc-pvcf-1"),
	          "--delete-pvc: the PVC of a failed task is still there");
	kt_result_free(&r);
}

Test(events, without_delete_pvc_the_volume_stays)
{
	task_with_history("keep-1", "failure");
	kt_result r;
	dispatch_task(&r, "keep-1", NULL);
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(kt_kube_exists(&kube, "persistentvolumeclaims", "git-repo-pvc-keep-1"),
	          "the PVC was deleted without --delete-pvc");
	kt_result_free(&r);
}


/* Every waiting reason that never clears by itself fails the task once
 * its threshold has passed (and the Job is deleted, quietly: the API
 * answers 200 to a DELETE). */
Test(events, every_stuck_container_reason_fails_the_task)
{
	static const char *const reasons[] = {"CreateContainerConfigError", "CreateContainerError",
	                                      "RunContainerError", "ErrImagePull",
	                                      "ImagePullBackOff", "InvalidImageName",
	                                      "ErrImageNeverPull", "CrashLoopBackOff"};
	size_t n = sizeof(reasons) / sizeof(reasons[0]);
	char tasks[1024] = "{\"tasks\": [", id[16];
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "why-%zu", i);
		snprintf(tasks + strlen(tasks), sizeof(tasks) - strlen(tasks),
		         "%s{\"id\": \"%s\", \"status\": \"PENDING\"}", i ? ", " : "", id);
		kt_seed_waiting_pod(&kube, id, NULL, reasons[i]);
	}
	strcat(tasks, "]}");
	kt_seed(&api, tasks);
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "200ms",
	                                   "--crashloop-after", "1s", "--image-error-after", "1s",
	                                   "--config-error-after", "1s", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "why-%zu", i);
		char *s = kt_statuses(&api, id), job[64];
		cr_expect(kt_contains(s, "FAILED") && kt_contains(s, reasons[i]), "%s: %s", reasons[i], s);
		free(s);
		snprintf(job, sizeof(job), "keruta-job-%s", id);
		cr_expect(!kt_kube_exists(&kube, "jobs", job), "%s: the stuck Job is still there", reasons[i]);
	}
	cr_expect(!kt_contains(r.err, "cannot delete Job"), "%s", r.err);
	kt_result_free(&r);
}

/* A terminal status keruta-api already holds (the agent sent it, or an
 * earlier launcher did) stays: the launcher's own verdict is not sent. */
Test(events, a_status_keruta_api_already_has_is_not_overwritten)
{
	task_with_history("had-1", "oom");
	kt_seed(&api, "{\"tasks\": [{\"id\": \"had-1\", \"status\": \"COMPLETED\"}]}");
	kt_result r;
	dispatch_task(&r, "had-1", NULL);
	char *s = kt_statuses(&api, "had-1");
	cr_expect_str_eq(s, "[]", "keruta-api received: %s", s);
	free(s);
	cr_expect(kt_contains(r.err, "already has COMPLETED"), "%s", r.err);
	kt_result_free(&r);
}

/* A task record without a status (keruta-api always sends one; a proxy
 * or an older server may not): the launcher still sends its verdict. */
Test(events, a_task_record_without_status_still_gets_the_verdict)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"nost-1\"}]}");
	kt_scenario(&kube, "{\"tasks\": {\"nost-1\": \"oom\"}}");
	kt_result r;
	dispatch_task(&r, "nost-1", NULL);
	cr_expect_eq(r.status, 1, "%s", r.err);
	char *s = kt_statuses(&api, "nost-1");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "out of memory"), "statuses: %s", s);
	free(s);
	kt_result_free(&r);
}

/* A launcher stopped while keruta-api was away leaves what it owes on the
 * Job (annotation keruta.io/owed); the next one sends it, message and
 * all, and deletes the Job when that was owed too. */
Test(events, a_report_owed_on_a_job_is_sent_with_its_message)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"owe-1\", \"status\": \"IN_PROGRESS\"}]}");
	json_object_put(kt_kube_json(
	        &kube, "POST", "/_control/seed",
	        "{\"objects\": [{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": "
	        "{\"name\": \"keruta-job-owe-1\", \"namespace\": \"keruta\", \"labels\": {\"app\": "
	        "\"keruta\", \"keruta.io/role\": \"main\", \"task-id\": \"owe-1\"}, \"annotations\": "
	        "{\"keruta.io/task-id\": \"owe-1\", \"keruta.io/owed\": \"{\\\"status\\\": "
	        "\\\"FAILED\\\", \\\"message\\\": \\\"container main: CrashLoopBackOff (for 10m)\\\", "
	        "\\\"deleteJob\\\": true}\"}}, \"spec\": {}, \"status\": {\"active\": 1}}]}"));
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "200ms", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	char *s = kt_statuses(&api, "owe-1");
	json_object *l = json_tokener_parse(s);
	cr_expect_eq(l ? json_object_array_length(l) : 0, 1, "statuses: %s", s);
	cr_expect_str_eq(kt_jstr(l, "[0].status"), "FAILED", "statuses: %s", s);
	cr_expect_str_eq(kt_jstr(l, "[0].message"), "container main: CrashLoopBackOff (for 10m)",
	                 "statuses: %s", s);
	json_object_put(l);
	free(s);
	cr_expect(!kt_kube_exists(&kube, "jobs", "keruta-job-owe-1"), "the owed deletion was not done");
	kt_result_free(&r);
}

/* The init container's agent leaves a termination message too: the
 * reason reported is the failed main container's, not the init's. */
Test(events, the_failed_containers_message_wins_over_the_inits)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"im-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"tasks\": {\"im-1\": \"failure\"}, \"init_message\": true}");
	kt_result r;
	dispatch_task(&r, "im-1", NULL);
	cr_expect_eq(r.status, 1, "%s", r.err);
	char *s = kt_statuses(&api, "im-1");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "stage execute failed: script exited with status 3"),
	          "statuses: %s", s);
	free(s);
	kt_result_free(&r);
}

/* A finished Job whose task-id annotation is no path segment (written by
 * hand, or by a tool gone wrong) is never reported to keruta-api: the
 * launcher says so and tells keruta-api nothing. */
Test(events, a_job_with_an_id_that_is_no_path_segment_is_not_reported)
{
	json_object_put(kt_kube_json(
	        &kube, "POST", "/_control/seed",
	        "{\"objects\": [{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": "
	        "{\"name\": \"keruta-job-dotdot\", \"namespace\": \"keruta\", \"labels\": {\"app\": "
	        "\"keruta\", \"keruta.io/role\": \"main\", \"task-id\": \"dotdot\"}, \"annotations\": "
	        "{\"keruta.io/task-id\": \"..\"}}, \"spec\": {}, \"status\": {\"succeeded\": 1, "
	        "\"conditions\": [{\"type\": \"Complete\", \"status\": \"True\"}]}}]}"));
	kt_result r;
	static const char *const args[] = {"--once", "--pending-interval", "200ms",
	                                   "--cleanup-job=false", NULL};
	kt_dispatch(&r, &kube, &api, args);
	cr_expect(!kt_contains(r.err, "reported COMPLETED"), "%s", r.err);
	cr_expect(kt_contains(r.err, "refused COMPLETED"), "%s", r.err);
	int st = 0;
	char *text = kt_api_call(&api, "GET", "/_control/requests", NULL, &st);
	cr_expect(!kt_contains(text, "\"method\": \"PUT\""), "keruta-api was sent a status: %s",
	          text);
	free(text);
	kt_result_free(&r);
}

static int jobs_now(void)
{
	json_object *all = kt_kube_json(&kube, "GET", "/_control/objects", NULL);
	json_object *l = kt_jpath(all, "jobs");
	int n = l ? (int)json_object_array_length(l) : 0;
	json_object_put(all);
	return n;
}

/* --concurrency 2 with three PENDING tasks: never more than two Jobs at
 * once; the third starts when one is done. */
Test(events, the_loop_keeps_to_its_concurrency)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"c-1\", \"status\": \"PENDING\"}, {\"id\": \"c-2\", "
	              "\"status\": \"PENDING\"}, {\"id\": \"c-3\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"default\": \"wait\"}");
	const char *argv[] = {kt_agent(), "dispatch", "--kubeconfig", kube.kubeconfig, "--api-url",
	                      api.url, "--log-format", "text", "--once", "--concurrency", "2",
	                      "--pending-interval", "100ms", "--cleanup-job=false", NULL};
	int out_fd, err_fd;
	pid_t pid = kt_spawn(argv, kt_launcher_env(), NULL, &out_fd, &err_fd);
	cr_assert_gt(pid, 0);
	for (int i = 0; i < 300 && jobs_now() < 2; i++)
		usleep(100000);
	usleep(1500000); /* fifteen polls of the PENDING list */
	cr_expect_eq(jobs_now(), 2, "Jobs at once with --concurrency 2");
	for (int i = 0; i < 300; i++) {
		json_object_put(kt_kube_json(&kube, "POST", "/_control/release", "{}"));
		char *s = kt_statuses(&api, "c-3");
		int done = kt_contains(s, "COMPLETED");
		free(s);
		if (done)
			break;
		usleep(100000);
	}
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 60);
	cr_expect(!r.timed_out && r.status == 0, "%s", r.err);
	for (int i = 1; i <= 3; i++) {
		char id[16];
		snprintf(id, sizeof(id), "c-%d", i);
		char *s = kt_statuses(&api, id);
		cr_expect(kt_contains(s, "COMPLETED"), "%s: %s", id, s);
		free(s);
	}
	kt_result_free(&r);
}

/* Stopped (SIGTERM) while keruta-api refuses the report: the launcher
 * says how many reports it still owes (they stay on the Job). */
Test(events, stopping_says_how_many_reports_are_owed)
{
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/fault",
	                 "{\"match\": {\"method\": \"PUT\", \"path_regex\": \"/status$\"}, "
	                 "\"action\": \"status\", \"code\": 503, \"times\": -1}",
	                 &st));
	kt_seed(&api, "{\"tasks\": [{\"id\": \"ow-1\", \"status\": \"PENDING\"}]}");
	kt_scenario(&kube, "{\"tasks\": {\"ow-1\": \"oom\"}}");
	const char *argv[] = {kt_agent(), "dispatch", "--kubeconfig", kube.kubeconfig, "--api-url",
	                      api.url, "--log-format", "text", "--task-id", "ow-1", NULL};
	int out_fd, err_fd;
	pid_t pid = kt_spawn(argv, kt_launcher_env(), NULL, &out_fd, &err_fd);
	cr_assert_gt(pid, 0);
	int noted = 0;
	for (int i = 0; i < 300 && !noted; i++) {
		json_object *job = kt_kube_object(&kube, "jobs", "keruta-job-ow-1");
		json_object *ann = job ? kt_jpath(job, "metadata.annotations") : NULL, *v;
		noted = ann && json_object_object_get_ex(ann, "keruta.io/owed", &v);
		json_object_put(job);
		if (!noted)
			usleep(100000);
	}
	cr_assert(noted, "the owed report was never written on the Job");
	kill(pid, SIGTERM);
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 30);
	cr_expect(kt_contains(r.err, "0 Jobs left running, 1 report owed"), "%s", r.err);
	kt_result_free(&r);
}

/* The scenario with the agents reporting to this keruta-api. */
static void reporting_scenario(const char *id, const char *more)
{
	char body[512];
	snprintf(body, sizeof(body), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"PENDING\"}]}", id);
	kt_seed(&api, body);
	snprintf(body, sizeof(body), "{\"report_url\": \"%s/api/v1\", %s}", api.url, more);
	kt_scenario(&kube, body);
}

static int job_has_late_failure(const char *job_name)
{
	json_object *job = kt_kube_object(&kube, "jobs", job_name);
	json_object *ann = job ? kt_jpath(job, "metadata.annotations") : NULL, *v;
	int late = ann && json_object_object_get_ex(ann, "keruta.io/late-failure", &v);
	json_object_put(job);
	return late;
}

/* The cleanup agent reported FAILED itself, then failed: that FAILED is
 * the task's one status; nothing is called a failure "after COMPLETED". */
Test(events, a_cleanup_agent_that_reported_failed_is_not_a_late_failure)
{
	reporting_scenario("crf-1", "\"cleanup\": \"cleanup_reports_failure\"");
	kt_result r;
	dispatch_task(&r, "crf-1", NULL);
	cr_expect_eq(kt_terminal_count(&api, "crf-1", "FAILED"), 1, "%s", r.err);
	cr_expect_eq(kt_terminal_count(&api, "crf-1", "COMPLETED"), 0, "%s", r.err);
	cr_expect(!kt_contains(r.err, "after it was reported COMPLETED"), "%s", r.err);
	cr_expect(!job_has_late_failure("keruta-job-crf-1"), "a late failure was noted");
	kt_result_free(&r);
}

/* The main agent reported COMPLETED; the cleanup Job then died before its
 * agent reported: a late failure on the Job, not a FAILED after the
 * COMPLETED. */
Test(events, a_cleanup_failure_after_the_main_agents_completed_is_late)
{
	reporting_scenario("mrc-1", "\"main_reports\": true, \"cleanup\": \"cleanup_failure\"");
	kt_result r;
	dispatch_task(&r, "mrc-1", NULL);
	cr_expect_eq(kt_terminal_count(&api, "mrc-1", "COMPLETED"), 1, "%s", r.err);
	cr_expect_eq(kt_terminal_count(&api, "mrc-1", "FAILED"), 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "after it was reported COMPLETED"), "%s", r.err);
	cr_expect(job_has_late_failure("keruta-job-mrc-1"), "no late failure on the Job");
	kt_result_free(&r);
}
