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
