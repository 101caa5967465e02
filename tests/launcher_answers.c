/*
 * launcher_answers.c - what keruta-api may answer the launcher, and what
 * the launcher does with it: PENDING lists with nested values and quoted
 * brackets, lists wrapped in a page object, empty lists, answers that are
 * no JSON, and a task record for another task (tests/refapi, its faults
 * standing in for a keruta-api that answers so).
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
	kt_cluster_start_reporting(&kube, &api);
}

static void teardown(void)
{
	kt_cluster_stop(&kube, &api);
}

TestSuite(answers, .init = setup, .fini = teardown, .timeout = 90);

/* keruta-api answers GETs of paths matching `path_regex` with `body`
 * (status 200), `times` times. */
static void answer_with(const char *path_regex, const char *body, int times)
{
	json_object *match = json_object_new_object();
	json_object_object_add(match, "method", json_object_new_string("GET"));
	json_object_object_add(match, "path_regex", json_object_new_string(path_regex));
	json_object *f = json_object_new_object();
	json_object_object_add(f, "match", match);
	json_object_object_add(f, "action", json_object_new_string("status"));
	json_object_object_add(f, "code", json_object_new_int(200));
	json_object_object_add(f, "times", json_object_new_int(times));
	json_object_object_add(f, "body", json_object_new_string(body));
	int st = 0;
	free(kt_api_call(&api, "POST", "/_control/fault", json_object_to_json_string(f), &st));
	cr_assert_eq(st, 200);
	json_object_put(f);
}

#define PENDING "^/api/v1/tasks/status/PENDING$"

static void dispatch_once(kt_result *r)
{
	static const char *const args[] = {"--once", "--pending-interval", "100ms",
	                                   "--cleanup-job=false", NULL};
	kt_dispatch(r, &kube, &api, args);
}

/* Records are split at their own ends: brackets, braces, commas and
 * escaped quotes inside strings, and nested lists and objects, do not end
 * a record early, so each task starts. */
Test(answers, pending_records_holding_brackets_in_strings_and_nested_values_all_start)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"nest-1\", \"status\": \"COMPLETED\"}, "
	              "{\"id\": \"nest-2\", \"status\": \"COMPLETED\"}]}");
	answer_with(PENDING,
	            " [\n  {\"id\": \"nest-1\", \"status\": \"PENDING\", \"priority\": 3,\n"
	            "   \"title\": \"a \\\"quoted\\\" ] } , : [ { \\\\\",\n"
	            "   \"tags\": [[1, 2.5], {\"x\": null, \"y\": [true, false]}], \"env\": {}},\n"
	            "  {\"id\": \"nest-2\", \"status\": \"PENDING\", \"description\": \"{[\"}\n ]\n",
	            2);
	kt_result r;
	dispatch_once(&r);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_kube_exists(&kube, "jobs", "keruta-job-nest-1"), "%s", r.err);
	cr_expect(kt_kube_exists(&kube, "jobs", "keruta-job-nest-2"), "%s", r.err);
	cr_expect(!kt_contains(r.err, "cannot be read"), "%s", r.err);
	kt_result_free(&r);
}

/* A paged answer, the list under "content" or "items": its tasks start. */
Test(answers, a_pending_list_wrapped_in_a_page_object_is_read)
{
	static const char *const keys[] = {"content", "items"};
	for (int i = 0; i < 2; i++) {
		char id[32], seed[160], body[256];
		snprintf(id, sizeof(id), "page-%d", i);
		snprintf(seed, sizeof(seed), "{\"tasks\": [{\"id\": \"%s\", \"status\": \"COMPLETED\"}]}",
		         id);
		kt_seed(&api, seed);
		snprintf(body, sizeof(body),
		         "{\"totalElements\": 1, \"%s\": [{\"id\": \"%s\", \"status\": \"PENDING\"}], "
		         "\"last\": true}",
		         keys[i], id);
		answer_with(PENDING, body, 2);
		kt_result r;
		dispatch_once(&r);
		cr_expect_eq(r.status, 0, "%s: %s", keys[i], r.err);
		char job[64];
		snprintf(job, sizeof(job), "keruta-job-%s", id);
		cr_expect(kt_kube_exists(&kube, "jobs", job), "%s: %s", keys[i], r.err);
		kt_result_free(&r);
	}
}

/* An empty list, with blanks around it, starts nothing and is no error. */
Test(answers, an_empty_pending_list_starts_nothing)
{
	answer_with(PENDING, " \n[ \t]\r\n", 5);
	kt_result r;
	dispatch_once(&r);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(!kt_contains(r.err, "cannot be read"), "%s", r.err);
	json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
	cr_expect_eq(kt_count_requests(reqs, "POST", "/jobs", NULL), 0);
	json_object_put(reqs);
	kt_result_free(&r);
}

/* A PENDING answer that is no JSON at all (cut short, text after the
 * list, a bracket closed by the wrong one, a colon outside an object,
 * records without a comma between them) is named as such; no Job starts
 * from it. */
Test(answers, a_pending_answer_that_is_no_json_is_named)
{
	static const char *const bodies[] = {"[{\"id\": \"cut-1\", \"status\": \"PENDING\"",
	                                     "[{\"id\": \"tail-1\"}] trailing",
	                                     "[{\"id\": \"x-1\", \"tags\": [1, 2}]",
	                                     "[\"unterminated]",
	                                     "[:]",
	                                     "[{\"id\": \"two-1\"} {\"id\": \"two-2\"}]"};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		answer_with(PENDING, bodies[i], 1);
		kt_result r;
		dispatch_once(&r);
		cr_expect(kt_contains(r.err, "keruta-api sent the PENDING tasks that cannot be read"),
		          "%s: %s", bodies[i], r.err);
		json_object *reqs = kt_kube_json(&kube, "GET", "/_control/requests", NULL);
		cr_expect_eq(kt_count_requests(reqs, "POST", "/jobs", NULL), 0, "%s", bodies[i]);
		json_object_put(reqs);
		kt_result_free(&r);
	}
}

/* render --task-id: a record for another task is refused (the id is the
 * Job's name and the token's path), an answer that is no JSON is named,
 * and a repository keruta-api does not know leaves the launcher's volume
 * settings in force. */
Test(answers, render_refuses_another_tasks_record_and_unreadable_answers)
{
	kt_seed(&api, "{\"tasks\": [{\"id\": \"r-1\", \"status\": \"PENDING\", "
	              "\"repositoryId\": \"unknown-repo\"}]}");
	const char *args[] = {"render", "--task-id", "r-1", "--api-url", api.url, "--api-retries", "0",
	                      "--log-level", "debug", "--log-format", "text", NULL};
	kt_result r;
	cr_assert_eq(kt_agent_run(&r, args, NULL, 30), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "repository unknown-repo of task r-1: keruta-api does not know "
	                             "it; the launcher's volume settings apply"),
	          "%s", r.err);
	cr_expect(kt_contains(r.out, "kind: \"Job\"") || kt_contains(r.out, "kind: Job"), "%s", r.out);
	kt_result_free(&r);

	answer_with("^/api/v1/tasks/r-1$", "{\"id\": \"r-2\", \"status\": \"PENDING\"}", 1);
	cr_assert_eq(kt_agent_run(&r, args, NULL, 30), 0);
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(kt_contains(r.err, "keruta-api answered task 'r-2' for task 'r-1'"), "%s", r.err);
	cr_expect_str_eq(r.out, "", "no manifest for another task");
	kt_result_free(&r);

	answer_with("^/api/v1/tasks/r-1$", "{\"id\": @}", 1);
	cr_assert_eq(kt_agent_run(&r, args, NULL, 30), 0);
	cr_expect_neq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "keruta-api sent task r-1 that cannot be read"), "%s", r.err);
	cr_expect_str_eq(r.out, "", "no manifest from an unreadable answer");
	kt_result_free(&r);
}

/* Standard output that cannot take the manifests (a full disk): render
 * fails saying so, rather than exiting 0 with nothing written. */
Test(answers, render_to_a_full_output_fails)
{
	char *dir = kt_tmpdir();
	char *task = kt_path(dir, "task.yaml");
	kt_write_file(task, "id: full-1\ntitle: t\n");
	const char *argv[] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" >/dev/full", kt_agent(),
	                      "render", "--task-file", task, "--api-url", api.url, NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, kt_launcher_env(), NULL, NULL, 30), 0);
	cr_expect_eq(r.status, 4, "%s", r.err);
	cr_expect(kt_contains(r.err, "cannot write the manifests to standard output"), "%s", r.err);
	kt_result_free(&r);
	kt_rmrf(dir);
	free(dir);
	free(task);
}

/* render --task-id with an API token file that cannot be read: a usage
 * error naming the file, before any call to keruta-api. */
Test(answers, render_with_an_unreadable_token_file_fails_before_calling)
{
	const char *args[] = {"render", "--task-id", "r-1", "--api-url", api.url,
	                      "--api-token-file", "/nonexistent/token", NULL};
	kt_result r;
	cr_assert_eq(kt_agent_run(&r, args, NULL, 30), 0);
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "/nonexistent/token"), "%s", r.err);
	cr_expect_str_eq(r.out, "");
	int st = 0;
	char *text = kt_api_call(&api, "GET", "/_control/requests", NULL, &st);
	json_object *reqs = text ? json_tokener_parse(text) : NULL;
	cr_expect_eq(reqs ? json_object_array_length(reqs) : 0, 0, "keruta-api was called: %s", text);
	json_object_put(reqs);
	free(text);
	kt_result_free(&r);
}
