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

#include "launcher_util.h"

static kt_kube kube;
static kt_api api;

static void setup(void)
{
	cr_assert_eq(kt_kube_start(&kube, "0.02"), 0, "the Kubernetes API test server did not start");
	cr_assert_eq(kt_api_start(&api, NULL), 0, "the reference keruta-api did not start");
}

static void teardown(void)
{
	kt_kube_stop(&kube);
	kt_api_stop(&api);
}

TestSuite(events, .init = setup, .fini = teardown, .timeout = 90);

/* One task in keruta-api, playing this Job history on the cluster. */
static void task_with_history(const char *id, const char *history)
{
	char body[256];
	snprintf(body, sizeof(body), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"PENDING\"}]}", id);
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/seed", body, &st));
	cr_assert_eq(st, 200);
	snprintf(body, sizeof(body), "{\"tasks\": {\"%s\": \"%s\"}}", id, history);
	json_object_put(kt_kube_json(&kube, "POST", "/_control/scenario", body));
}

static void dispatch_task(kt_result *r, const char *id, const char *extra)
{
	const char *args[] = {"dispatch", "--kubeconfig", kube.kubeconfig, "--api-url", api.url,
	                      "--log-format", "text", "--api-retries", "1", "--task-id", id,
	                      extra, NULL};
	cr_assert_eq(kt_agent_run(r, args, NULL, 60), 0);
	cr_assert(!r->timed_out, "dispatch did not finish: %s", r->err);
}

/* The statuses keruta-api received for a task, as JSON text. */
static char *statuses(const char *id)
{
	int st = 0;
	char *text = kt_api_call(&api, "GET", "/_control/state", NULL, &st);
	json_object *o = json_tokener_parse(text);
	free(text);
	json_object *s = kt_jpath(o, "statuses"), *l = NULL;
	char *out = strdup(s && json_object_object_get_ex(s, id, &l) ? json_object_to_json_string(l)
	                                                              : "[]");
	json_object_put(o);
	return out;
}

static int exists(const char *kind, const char *name)
{
	json_object *all = kt_kube_json(&kube, "GET", "/_control/objects", NULL);
	json_object *list = kt_jpath(all, kind);
	int found = 0;
	for (size_t i = 0; list && i < json_object_array_length(list); i++)
		if (!strcmp(kt_jstr(json_object_array_get_idx(list, i), "metadata.name"), name))
			found = 1;
	json_object_put(all);
	return found;
}

Test(events, a_job_deleted_while_running_fails_the_task)
{
	task_with_history("del-1", "deleted");
	kt_result r;
	dispatch_task(&r, "del-1", NULL);
	cr_expect_eq(r.status, 1, "a failed task exits 1: %s", r.err);
	char *s = statuses("del-1");
	cr_expect(kt_contains(s, "FAILED") && kt_contains(s, "deleted before it finished"),
	          "statuses: %s", s);
	cr_expect(!kt_contains(s, "COMPLETED"), "statuses: %s", s);
	free(s);
	cr_expect(!exists("jobs", "cleanup-job-for-task-del-1"), "no cleanup Job for a deleted Job");
	kt_result_free(&r);
}

Test(events, an_oom_kill_seen_only_in_last_state_is_reported)
{
	task_with_history("oomr-1", "oom_restarted");
	kt_result r;
	dispatch_task(&r, "oomr-1", NULL);
	cr_expect_eq(r.status, 1, "%s", r.err);
	char *s = statuses("oomr-1");
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
	char *s = statuses("pvc-1");
	cr_expect(kt_contains(s, "COMPLETED"), "statuses: %s", s);
	free(s);
	cr_expect(exists("jobs", "cleanup-job-for-task-pvc-1"), "the cleanup Job ran");
	cr_expect(!exists("persistentvolumeclaims", "git-repo-pvc-pvc-1"),
	          "--delete-pvc: the PVC is still there");
	kt_result_free(&r);
}

Test(events, delete_pvc_removes_the_volume_of_a_failed_task)
{
	task_with_history("pvcf-1", "failure");
	kt_result r;
	dispatch_task(&r, "pvcf-1", "--delete-pvc");
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(!exists("persistentvolumeclaims", "git-repo-pvc-pvcf-1"),
	          "--delete-pvc: the PVC of a failed task is still there");
	kt_result_free(&r);
}

Test(events, without_delete_pvc_the_volume_stays)
{
	task_with_history("keep-1", "failure");
	kt_result r;
	dispatch_task(&r, "keep-1", NULL);
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(exists("persistentvolumeclaims", "git-repo-pvc-keep-1"),
	          "the PVC was deleted without --delete-pvc");
	kt_result_free(&r);
}
