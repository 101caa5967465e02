/*
 * api_faults.c - the keruta-api backend against the reference server:
 * a normal run, then each fault the server can inject (5xx with
 * Retry-After, 401, 404, garbage, oversize, stall, dropped connection),
 * path templates, downloads and their caps.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_util.h"

#define TOKEN "tok-Very-Secret-4711"

static const char *const token_env[] = {"KERUTA_API_TOKEN=" TOKEN, NULL};
static const char *const server_token[] = {"--token", TOKEN, NULL};

static at_ctx C;

static void setup(void)
{
	at_start(&C, server_token);
	at_pipeline(&C, "count: 5", "  log_batch_lines: 100\n");
}

static void teardown(void)
{
	at_stop(&C);
}

TestSuite(api_faults, .init = setup, .fini = teardown, .timeout = 60);

static const char *statuses(json_object *st, char *buf, size_t n)
{
	json_object *all, *t1;
	buf[0] = '\0';
	if (json_object_object_get_ex(st, "statuses", &all) &&
	    json_object_object_get_ex(all, "t1", &t1))
		for (size_t i = 0; i < json_object_array_length(t1); i++) {
			json_object *s;
			if (json_object_object_get_ex(json_object_array_get_idx(t1, i), "status", &s)) {
				strncat(buf, json_object_get_string(s), n - strlen(buf) - 2);
				strcat(buf, " ");
			}
		}
	return buf;
}

Test(api_faults, normal_run_reports_and_ships_with_bearer_token)
{
	at_pipeline(&C, "count: 250", "  log_batch_lines: 100\n");
	at_control(&C, "/_control/seed", "{\"scripts\":{\"t1\":{\"content\":\"true\"}}}");
	kt_result r;
	const char *const args[] = {"--log-level", "debug", NULL};
	cr_assert_eq(at_agent(&C, &r, args, token_env, 30), 0, "stderr:\n%s", r.err);
	/* one connection for the calls of the main thread: keep-alive */
	cr_expect(kt_contains(r.err, "Re-using existing connection"), "%s", r.err);
	json_object *st = at_get(&C, "/_control/state");
	char buf[256];
	cr_expect_str_eq(statuses(st, buf, sizeof(buf)), "IN_PROGRESS COMPLETED ");
	json_object_put(st);
	size_t n;
	char *got = at_lines(&C, &n), *want = at_expected("line", 1, 250);
	cr_expect_str_eq(got, want);
	free(got);
	free(want);
	cr_expect_geq(at_count(&C, "POST", "/tasks/t1/logs"), 3, "batches of at most 100 lines");
	/* every request carried the token; none was refused */
	json_object *reqs = at_get(&C, "/_control/requests");
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *q = json_object_array_get_idx(reqs, i), *h, *a, *code;
		cr_assert(json_object_object_get_ex(q, "headers", &h));
		cr_assert(json_object_object_get_ex(h, "authorization", &a));
		cr_expect_str_eq(json_object_get_string(a), "Bearer " TOKEN);
		cr_assert(json_object_object_get_ex(q, "response_status", &code));
		cr_expect_eq(json_object_get_int(code), 200, "request %zu: %s", i,
		             json_object_to_json_string(q));
		cr_expect(!json_object_object_get_ex(q, "invalid", &a), "body refused: %s",
		          json_object_to_json_string(q));
	}
	json_object_put(reqs);
	cr_expect(!kt_contains(r.err, TOKEN));
	kt_result_free(&r);
}

Test(api_faults, retries_503_honouring_retry_after)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"method\":\"GET\",\"path_regex\":\"/tasks/t1$\"},\"action\":\"status\","
	           "\"code\":503,\"retry_after\":1,\"times\":2}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "stderr:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 3, "two refusals, then the answer");
	cr_expect(kt_contains(r.err, "SERVICE_UNAVAILABLE: injected fault"), "%s", r.err);
	cr_expect(kt_contains(r.err, "retry 1 in 1.0 s"), "Retry-After names the delay:\n%s",
	          r.err);
	/* the server saw the retries at least the named second apart */
	double t[3];
	cr_assert_eq(at_times(&C, "/api/v1/tasks/t1", t, 3), 3);
	cr_expect_geq(t[1] - t[0], 0.9, "retried after %.3f s despite Retry-After: 1", t[1] - t[0]);
	cr_expect_geq(t[2] - t[1], 0.9);
	kt_result_free(&r);
}

Test(api_faults, retry_after_as_http_date)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"status\",\"code\":429,"
	           "\"retry_after\":\"Wed, 21 Oct 2015 07:28:00 GMT\",\"times\":1}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "stderr:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 2);
	/* a past date means now, which is no reason to retry sooner than our
	 * own backoff */
	cr_expect(kt_contains(r.err, "retry 1 in 0.1 s") || kt_contains(r.err, "retry 1 in 0.2 s"),
	          "%s", r.err);
	kt_result_free(&r);
}

Test(api_faults, persistent_500_gives_up_with_the_server_error)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"status\",\"code\":500,"
	           "\"times\":-1}");
	kt_result r;
	const char *const args[] = {"--api-retries", "2", NULL};
	cr_assert_eq(at_agent(&C, &r, args, token_env, 30), 3, "stderr:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 3, "1 attempt + 2 retries");
	cr_expect(kt_contains(r.err, "INTERNAL_SERVER_ERROR: injected fault"), "%s", r.err);
	cr_expect(kt_contains(r.err, "gave up after 3 attempts"), "%s", r.err);
	kt_result_free(&r);
}

/* A rolling restart behind a proxy: the final status update meets six
 * 503s with "Retry-After: 0" in a row (one more than the count of
 * retries that once bounded an outage).  Retry-After only ever lengthens
 * the agent's own backoff, and the outage is bounded by
 * api_retry_max_time, not by a count spent in a fraction of a second. */
Test(api_faults, retry_after_zero_outage_does_not_fail_the_task)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"method\":\"PUT\",\"path_regex\":\"/status$\"},\"action\":\"status\","
	           "\"code\":503,\"retry_after\":0,\"skip\":1,\"times\":6}");
	at_pipeline(&C, "count: 3", "");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 50), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "injected fault"), "the outage did not hit the agent:\n%s",
	          r.err);
	cr_expect_eq(at_count(&C, "PUT", "/status"), 8, "IN_PROGRESS, six refusals, COMPLETED");
	json_object *st = at_get(&C, "/_control/state");
	char buf[256];
	cr_expect_str_eq(statuses(st, buf, sizeof(buf)), "IN_PROGRESS COMPLETED ");
	json_object_put(st);
	size_t n;
	char *got = at_lines(&C, &n), *want = at_expected("line", 1, 3);
	cr_expect_str_eq(got, want);
	free(got);
	free(want);
	kt_result_free(&r);
}

Test(api_faults, retry_after_beyond_the_budget_stops_at_once)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"status\",\"code\":503,"
	           "\"retry_after\":60,\"times\":-1}");
	kt_result r;
	const char *const args[] = {"--api-retry-max-time", "5s", NULL};
	cr_assert_eq(at_agent(&C, &r, args, token_env, 30), 3, "stderr:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 1);
	cr_expect(kt_contains(r.err, "Retry-After goes past api_retry_max_time"), "%s", r.err);
	kt_result_free(&r);
}

Test(api_faults, wrong_token_is_final_and_never_printed)
{
	const char *const env[] = {"KERUTA_API_TOKEN=not-the-right-token", NULL};
	kt_result r;
	const char *const args[] = {"--log-level", "debug", NULL};
	cr_assert_eq(at_agent(&C, &r, args, env, 30), 3, "stderr:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 1, "a 401 is not retried");
	cr_expect(kt_contains(r.err, "refused the request with 401: Unauthorized"), "%s",
	          r.err);
	cr_expect(kt_contains(r.err, "check the API token"), "%s", r.err);
	cr_expect(!kt_contains(r.err, "not-the-right-token"), "the token leaked:\n%s", r.err);
	cr_expect(!kt_contains(r.out, "not-the-right-token"));
	kt_result_free(&r);
}

Test(api_faults, token_file_is_read)
{
	char *tf = kt_path(C.dir, "token");
	kt_write_file(tf, TOKEN "\n");
	const char *const args[] = {"--api-token-file", tf, NULL};
	kt_result r;
	cr_expect_eq(at_agent(&C, &r, args, NULL, 30), 0, "stderr:\n%s", r.err);
	kt_result_free(&r);
	free(tf);
}

/* The token goes into a header: a line break in it (file or environment)
 * would inject headers.  Refused, exit 2, nothing requested, the token
 * never printed. */
Test(api_faults, token_with_a_line_break_is_refused)
{
	char *tf = kt_path(C.dir, "token");
	kt_write_file(tf, TOKEN "\r\nX-Injected: 1\n");
	const char *const args[] = {"--api-token-file", tf, NULL};
	kt_result r;
	cr_expect_eq(at_agent(&C, &r, args, NULL, 30), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "contains a control character"), "%s", r.err);
	cr_expect(kt_contains(r.err, tf), "the file is named: %s", r.err);
	cr_expect(!kt_contains(r.err, TOKEN), "%s", r.err);
	kt_result_free(&r);
	const char *const env[] = {"KERUTA_API_TOKEN=" TOKEN "\nX-Injected: 1", NULL};
	cr_expect_eq(at_agent(&C, &r, NULL, env, 30), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "KERUTA_API_TOKEN"), "%s", r.err);
	cr_expect(!kt_contains(r.err, TOKEN), "%s", r.err);
	kt_result_free(&r);
	json_object *reqs = at_get(&C, "/_control/requests");
	cr_expect_eq(json_object_array_length(reqs), 0, "%s", json_object_to_json_string(reqs));
	json_object_put(reqs);
	free(tf);
}

/* A directory, a FIFO: said as such, never read (a FIFO hung the agent). */
Test(api_faults, token_and_ca_file_that_are_not_files)
{
	char *dir = kt_path(C.dir, "tokdir"), *fifo = kt_path(C.dir, "fifo");
	cr_assert_eq(mkdir(dir, 0755), 0);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	kt_result r;
	const char *const a1[] = {"--api-token-file", dir, NULL};
	cr_expect_eq(at_agent(&C, &r, a1, NULL, 20), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "is a directory"), "%s", r.err);
	kt_result_free(&r);
	const char *const a2[] = {"--api-token-file", fifo, NULL};
	cr_expect_eq(at_agent(&C, &r, a2, NULL, 20), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "is not a regular file"), "%s", r.err);
	kt_result_free(&r);
	const char *const a3[] = {"--ca-file", fifo, NULL};
	cr_expect_eq(at_agent(&C, &r, a3, token_env, 20), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "CA file"), "%s", r.err);
	cr_expect(kt_contains(r.err, "is not a regular file"), "%s", r.err);
	kt_result_free(&r);
	free(dir);
	free(fifo);
}

/* keruta-api's 404 for an unknown task has no body: the message names the
 * task's URL and what to check. */
Test(api_faults, unknown_task_is_a_404_naming_the_id_to_check)
{
	C.task = "no-such-task";
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "/tasks/no-such-task (task no-such-task): keruta-api answered "
	                             "404; check the id and the api_paths setting"),
	          "%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/no-such-task"), 1);
	kt_result_free(&r);
}

Test(api_faults, garbage_json_is_malformed_data)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"garbage\"}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 1, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "not a JSON object"), "%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 1, "malformed data is not retried");
	kt_result_free(&r);
}

/* Valid JSON the agent still cannot take (a key twice: which one would
 * count?): a failure naming the key, not a task read as empty. */
Test(api_faults, duplicate_key_in_an_answer_is_named)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"status\",\"code\":200,"
	           "\"body\":\"{\\\"id\\\":\\\"t1\\\",\\\"title\\\":\\\"a\\\",\\\"title\\\":\\\"b\\\"}\"}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 1, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "keruta-api sent task t1 that cannot be read"), "%s", r.err);
	cr_expect(kt_contains(r.err, "duplicate key 'title'"), "%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 1, "malformed data is not retried");
	kt_result_free(&r);
}

Test(api_faults, oversize_answer_is_cut_off)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"oversize\","
	           "\"bytes\":6000000}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 1, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "larger than the limit of 4194304 bytes"), "%s", r.err);
	/* max_download does not govern JSON answers: the message said it did */
	cr_expect(!kt_contains(r.err, "max_download"), "%s", r.err);
	cr_expect(kt_contains(r.err, "a fixed limit for JSON answers"), "%s", r.err);
	kt_result_free(&r);
}

/* No repository to clone and no work dir: said at once, not as a failure
 * to write some stage's file. */
Test(api_faults, no_repository_and_no_work_dir_is_named)
{
	at_control(&C, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\",\"title\":\"no repo\"}]}");
	char *missing = kt_path(C.dir, "no-such-work");
	const char *const args[] = {"--work-dir", missing, NULL};
	kt_result r;
	cr_expect_eq(at_agent(&C, &r, args, token_env, 30), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "does not exist and the task names no repository"), "%s",
	          r.err);
	kt_result_free(&r);
	free(missing);
}

Test(api_faults, stall_past_the_timeout_is_retried)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"stall\",\"seconds\":4}");
	kt_result r;
	const char *const args[] = {"--api-timeout", "1s", NULL};
	cr_assert_eq(at_agent(&C, &r, args, token_env, 30), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "no complete answer within 1000 ms"), "%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 2);
	kt_result_free(&r);
}

Test(api_faults, dropped_connection_is_retried)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/tasks/t1$\"},\"action\":\"drop\",\"times\":2}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "stderr:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/tasks/t1"), 3);
	cr_expect(kt_contains(r.err, "cannot reach keruta-api"), "%s", r.err);
	kt_result_free(&r);
}

Test(api_faults, top_level_code_and_message_are_shown)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"method\":\"PUT\",\"path_regex\":\"/status$\"},\"action\":\"status\","
	           "\"code\":409,\"body\":{\"code\":\"TASK_LOCKED\",\"message\":\"already running\"}}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "409: TASK_LOCKED: already running"), "%s", r.err);
	cr_expect_eq(at_count(&C, "PUT", "/tasks/t1/status"), 2, "409 not retried; final sent");
	kt_result_free(&r);
}

Test(api_faults, unreachable_api_exits_3)
{
	kt_result r;
	const char *const args[] = {"--api-url", "http://127.0.0.1:1", "--api-retries", "1", NULL};
	cr_assert_eq(at_agent(&C, &r, args, token_env, 30), 3, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "cannot reach keruta-api"), "%s", r.err);
	cr_expect(kt_contains(r.err, "gave up after 2 attempts"), "%s", r.err);
	kt_result_free(&r);
}

/* A password in the API URL is masked wherever the URL is quoted. */
Test(api_faults, password_in_the_api_url_is_never_printed)
{
	kt_result r;
	const char *const args[] = {"--api-url", "http://bob:pa55-in-the-url@127.0.0.1:1",
	                            "--api-retries", "0", "--log-level", "debug", NULL};
	cr_assert_eq(at_agent(&C, &r, args, token_env, 30), 3, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "http://bob:***@127.0.0.1:1"), "the URL is not quoted: %s",
	          r.err);
	cr_expect(!kt_contains(r.err, "pa55-in-the-url"), "the password leaked: %s", r.err);
	cr_expect(!kt_contains(r.out, "pa55-in-the-url"), "the password leaked: %s", r.out);
	kt_result_free(&r);
}

Test(api_faults, no_api_url_is_a_usage_error)
{
	const char *const argv[] = {kt_agent(), "execute", "--task-id", "t1", "--work-dir", C.work,
	                            "--pipeline", C.pipeline, "--termination-log", "/dev/null",
	                            NULL};
	const char *const env[] = {"KERUTA_API_URL", "KERUTA_API_ENDPOINT", NULL};
	kt_result r;
	cr_assert(kt_run(&r, argv, env, C.dir, NULL, 30) == 0);
	cr_expect_eq(r.status, 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "no API URL: give --api-url or KERUTA_API_URL"), "%s", r.err);
	kt_result_free(&r);
}

Test(api_faults, path_templates_are_configurable_and_escaped)
{
	at_control(&C, "/_control/seed", "{\"tasks\":[{\"id\":\"a b?c#d%\",\"title\":\"odd id\"}]}");
	C.task = "a b?c#d%";
	at_pipeline(&C, "count: 3",
	            "  api_paths:\n    task: /api/tasks/{taskId}\n"
	            "    status: /api/tasks/{taskId}/status\n    logs: /api/tasks/{taskId}/logs\n"
	            "    script: /api/tasks/{taskId}/script\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "stderr:\n%s", r.err);
	cr_expect_eq(at_count(&C, "GET", "/api/tasks/a%20b%3Fc%23d%25"), 1);
	cr_expect_eq(at_count(&C, "PUT", "/api/tasks/a%20b%3Fc%23d%25/status"), 2);
	size_t n;
	char *got = at_lines(&C, &n);
	cr_expect_eq(n, 3, "%s", got);
	free(got);
	kt_result_free(&r);
}

/* An empty name in status_names counts as none: the agent sends the
 * default, as the launcher compares with it, never an empty status. */
Test(api_faults, empty_status_names_are_the_defaults)
{
	at_control(&C, "/_control/seed", "{\"scripts\":{\"t1\":{\"content\":\"true\"}}}");
	at_pipeline(&C, "count: 1", "  status_names:\n    in_progress: ''\n    completed: ''\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "stderr:\n%s", r.err);
	json_object *st = at_get(&C, "/_control/state");
	char buf[256];
	cr_expect_str_eq(statuses(st, buf, sizeof(buf)), "IN_PROGRESS COMPLETED ");
	json_object_put(st);
	kt_result_free(&r);
}

/* Ids become one path segment each: ".", "..", "", "/" and control
 * characters are refused before any request (curl drops dot segments:
 * "--task-id .." sent the token to /api/v1/tasks/status). */
Test(api_faults, hostile_ids_are_refused_before_any_request)
{
	char long_id[202];
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	const char *const bad[] = {"..", ".", "", "a/b", "/", "t1\n", "t\x01", long_id};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		C.task = bad[i];
		kt_result r;
		cr_expect_eq(at_agent(&C, &r, NULL, token_env, 30), 2, "task id '%s': stderr:\n%s", bad[i],
		             r.err);
		cr_expect(kt_contains(r.err, "invalid task id"), "%s", r.err);
		kt_result_free(&r);
		const char *const args[] = {"--repository-id", bad[i], NULL};
		C.task = "t1";
		cr_expect_eq(at_agent(&C, &r, args, token_env, 30), 2, "repository id '%s': stderr:\n%s",
		             bad[i], r.err);
		cr_expect(kt_contains(r.err, "invalid repository id"), "%s", r.err);
		kt_result_free(&r);
	}
	json_object *reqs = at_get(&C, "/_control/requests");
	cr_expect_eq(json_object_array_length(reqs), 0, "requests were made: %s",
	             json_object_to_json_string(reqs));
	json_object_put(reqs);

	/* from keruta-api itself: the task names a repository and a document
	 * ".."; nothing is requested with them */
	at_control(&C, "/_control/seed",
	           "{\"tasks\":[{\"id\":\"t1\",\"repositoryId\":\"..\",\"documentIds\":[\"..\"]}]}");
	kt_result r;
	cr_expect_eq(at_agent(&C, &r, NULL, token_env, 30), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "invalid repository id '..'"), "%s", r.err);
	reqs = at_get(&C, "/_control/requests");
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *p;
		json_object_object_get_ex(json_object_array_get_idx(reqs, i), "path", &p);
		const char *path = json_object_get_string(p);
		cr_expect(strcmp(path, "/api/v1/tasks/t1") == 0 ||
		                  strcmp(path, "/api/v1/tasks/t1/status") == 0 || strcmp(path, "/api/v1/tasks/t1/script") == 0 ||
		                  strcmp(path, "/api/v1/tasks/t1/logs") == 0,
		          "unexpected request %s", path);
	}
	json_object_put(reqs);
	kt_result_free(&r);
}

Test(api_faults, unknown_placeholder_is_named)
{
	at_pipeline(&C, "count: 1", "  api_paths:\n    task: /api/v1/tasks/{task}\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 2, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "api_paths.task"), "%s", r.err);
	cr_expect(kt_contains(r.err, "unknown placeholder"), "%s", r.err);
	kt_result_free(&r);
}

/* A status path that needs an id the task does not have: no status can
 * be sent, and the run says so and fails rather than pass unreported. */
Test(api_faults, status_path_missing_its_id_fails_the_run)
{
	at_pipeline(&C, "count: 1",
	            "  api_paths:\n    status: /api/v1/repositories/{repositoryId}/status\n");
	kt_result r;
	int rc = at_agent(&C, &r, NULL, token_env, 30);
	cr_expect_neq(rc, 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "needs a repository id and there is none"), "%s", r.err);
	cr_expect_eq(at_count(&C, "PUT", "/api/v1/tasks/t1/status"), 0);
	kt_result_free(&r);
}

Test(api_faults, task_scripts_and_malformed_script_field)
{
	at_control(&C, "/_control/seed", "{\"flatScripts\":{\"t1\":{\"executeScript\":[1,2]}}}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 1, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "field 'executeScript' must be a string"), "%s", r.err);
	kt_result_free(&r);
}

/* keruta-api's own answer with a malformed part: each named, the task
 * failed with the original agent's SCRIPT_FETCH_ERROR. */
Test(api_faults, keruta_api_script_answer_malformed)
{
	static const struct {
		const char *seed, *want;
	} cases[] = {
	        {"{\"content\":[1]}", "field 'script.content' must be a string"},
	        {"{\"content\":\"true\",\"parameters\":[1]}", "field 'script.parameters' must be an object"},
	        {"{\"content\":\"true\",\"parameters\":{\"env\":{\"1BAD\":\"x\"}}}",
	         "script.parameters.env entry '1BAD'"},
	        {"{\"content\":\"true\",\"parameters\":{\"env\":{\"A=B\":\"x\"}}}",
	         "script.parameters.env entry 'A=B'"},
	        {"{\"content\":\"true\",\"parameters\":{\"env\":{\"OK\":{\"n\":1}}}}",
	         "script.parameters.env entry 'OK'"},
	        {"{\"content\":\"true\",\"parameters\":{\"env\":\"A=B\"}}",
	         "field 'script.parameters.env' must be an object of NAME: value"},
	        /* keruta-api's ScriptResponse, its environment not a map */
	        {"{\"executeScript\":\"true\",\"environment\":\"A=B\"}",
	         "field 'environment' must be an object of NAME: value"},
	        {"{\"executeScript\":\"true\",\"environment\":[\"A=B\"]}",
	         "field 'environment' must be an object of NAME: value"},
	        {"{\"executeScript\":\"true\",\"environment\":{\"A\":[\"x\"]}}",
	         "environment entry 'A'"},
	        {"{\"success\":false,\"message\":\"no script\"}", "success: false: no script"},
	        {"{\"success\":true,\"taskId\":\"t9\",\"script\":{\"content\":\"true\"}}",
	         "sent the script of task 't9'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *seed = NULL;
		cr_assert(asprintf(&seed, "{\"scripts\":{\"t1\":%s}}", cases[i].seed) > 0);
		at_control(&C, "/_control/seed", seed);
		free(seed);
		kt_result r;
		cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 1, "case %zu stderr:\n%s", i, r.err);
		cr_expect(kt_contains(r.err, cases[i].want), "case %zu: %s", i, r.err);
		kt_result_free(&r);
	}
	json_object *st = at_get(&C, "/_control/state");
	const char *text = json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN);
	cr_expect(kt_contains(text, "\"errorCode\":\"SCRIPT_FETCH_ERROR\""), "%s", text);
	json_object_put(st);
}

/* The repository service for a plugin: keruta-api is asked only for a
 * task that names a repository by id; a task that brings its URL needs
 * no request, and one with neither is "not found", not a failure. */
Test(api_faults, repository_lookup_by_id_by_url_and_neither)
{
	static const struct {
		const char *task, *want;
		int gets;
	} cases[] = {
	        {"{\"id\":\"t1\",\"repositoryId\":\"r1\"}",
	         "repository ok\nrepository_url https://example.invalid/r.git\n", 1},
	        {"{\"id\":\"t1\",\"repository\":{\"url\":\"https://git.example/own.git\"}}",
	         "repository ok\nrepository_url https://git.example/own.git\n", 0},
	        {"{\"id\":\"t1\",\"repository\":\"https://git.example/plain.git\"}",
	         "repository ok\nrepository_url https://git.example/plain.git\n", 0},
	        {"{\"id\":\"t1\"}", "repository not-found\nrepository_url (null)\n", 0},
	};
	at_pipeline(&C, "repository: true", NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *seed = NULL;
		cr_assert(asprintf(&seed, "{\"tasks\":[%s]}", cases[i].task) > 0);
		at_control(&C, "/_control/reset", "{}");
		at_control(&C, "/_control/seed", seed);
		at_control(&C, "/_control/seed",
		           "{\"repositories\":[{\"id\":\"r1\",\"url\":"
		           "\"https://example.invalid/r.git\"}]}");
		free(seed);
		kt_rmrf(C.report);
		kt_result r;
		cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "case %zu stderr:\n%s", i, r.err);
		char *rep = kt_read_file(C.report, NULL);
		cr_expect(rep && kt_contains(rep, cases[i].want), "case %zu: %s", i, rep ? rep : "");
		cr_expect_eq(at_count(&C, "GET", "/repositories/r1"), cases[i].gets, "case %zu", i);
		free(rep);
		kt_result_free(&r);
	}
}

Test(api_faults, documents_and_install_script_download)
{
	at_control(&C, "/_control/seed",
	           "{\"documents\":{\"d1\":{\"name\":\"notes \\\"v2\\\".md\",\"content\":\"hello doc\\n\"},"
	           "\"big\":{\"name\":\"big.bin\",\"content\":\"0123456789abcdef\"}},"
	           "\"installScripts\":{\"r1\":\"#!/bin/sh\\necho installing\\n\"}}");
	char *with = NULL;
	cr_assert(asprintf(&with, "document: d1, document_to: %s/doc.out, install_to: %s/install.sh",
	                   C.work, C.work) > 0);
	at_pipeline(&C, with, NULL);
	free(with);
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 0, "stderr:\n%s", r.err);
	char *rep = kt_read_file(C.report, NULL);
	cr_expect(kt_contains(rep, "document ok\ndocument_name notes \"v2\".md\n"), "%s", rep);
	cr_expect(kt_contains(rep, "install ok\n"), "%s", rep);
	free(rep);
	char *p = kt_path(C.work, "doc.out"), *doc = kt_read_file(p, NULL);
	cr_expect_str_eq(doc ? doc : "(none)", "hello doc\n");
	free(doc);
	free(p);
	p = kt_path(C.work, "install.sh");
	char *sh = kt_read_file(p, NULL);
	cr_expect_str_eq(sh ? sh : "(none)", "#!/bin/sh\necho installing\n");
	free(sh);
	free(p);
	kt_result_free(&r);
	kt_rmrf(C.report);

	/* over the cap: the transfer stops and no partial file remains */
	cr_assert(asprintf(&with, "document: big, document_to: %s/big.out, document_max: 10",
	                   C.work) > 0);
	at_pipeline(&C, with, NULL);
	free(with);
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 30), 1, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "larger than the limit of 10 bytes"), "%s", r.err);
	cr_expect(kt_contains(r.err, "partial file removed"), "%s", r.err);
	p = kt_path(C.work, "big.out");
	cr_expect(access(p, F_OK) != 0, "the partial download was left behind");
	free(p);
	kt_result_free(&r);
	kt_rmrf(C.report);

	/* no document, no install script: not found */
	at_control(&C, "/_control/reset", "{}");
	at_control(&C, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\",\"repositoryId\":\"r9\"}]}");
	/* a cap smaller than the error body must not hide the 404 */
	cr_assert(asprintf(&with, "document: nope, document_to: %s/x, document_max: 5, install_to: %s/i.sh", C.work,
	                   C.work) > 0);
	at_pipeline(&C, with, NULL);
	free(with);
	at_agent(&C, &r, NULL, token_env, 30);
	rep = kt_read_file(C.report, NULL);
	cr_expect(kt_contains(rep, "install not-found\n"), "%s", rep);
	cr_expect(kt_contains(rep, "document not-found\n"), "%s", rep);
	free(rep);
	kt_result_free(&r);
}

/* What keruta-api's answers may hold beyond the usual, each a clear
 * outcome: another task than the one asked for, ids that are no path
 * segment, a malformed repository record, a task that brings its install
 * script itself, and an artifact upload refused or answered with
 * something unreadable. */
Test(api_faults, unusual_answers_have_clear_outcomes)
{
	static const struct {
		const char *seed, *fault, *with, *want, *report;
		int status;
	} cases[] = {
	        {NULL,
	         "{\"match\":{\"method\":\"GET\",\"path_regex\":\"/tasks/t1$\"},\"action\":\"status\","
	         "\"code\":200,\"body\":{\"id\":\"t9\"}}",
	         NULL, "keruta-api answered task 't9' when asked for task 't1'", NULL, 1},
	        {NULL,
	         "{\"match\":{\"method\":\"GET\",\"path_regex\":\"/tasks/t1$\"},\"action\":\"status\","
	         "\"code\":200,\"body\":{\"id\":\"..\"}}",
	         NULL, "invalid task id '..'", NULL, 2},
	        {"{\"tasks\":[{\"id\":\"t1\",\"documentIds\":[\"d1\",\"a/b\"]}]}", NULL, NULL,
	         "invalid document id 'a/b'", NULL, 2},
	        {"{\"repositories\":[{\"id\":\"r1\",\"url\":[\"x\"]}]}", NULL, "repository: true",
	         "repository r1", "repository failed\n", 1},
	        {"{\"tasks\":[{\"id\":\"t1\",\"installScript\":\"echo own\\n\"}]}", NULL,
	         "install_to: %s/own.sh", NULL, "install ok\n", 0},
	        {NULL,
	         "{\"match\":{\"method\":\"POST\",\"path_regex\":\"/documents$\"},\"action\":\"status\","
	         "\"code\":404}",
	         "upload: %s/a.txt, upload_text: x", "keruta-api answered 404", "upload failed\n", 1},
	        {NULL,
	         "{\"match\":{\"method\":\"POST\",\"path_regex\":\"/documents$\"},\"action\":\"garbage\"}",
	         "upload: %s/a.txt, upload_text: x", NULL, "upload ok\n", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].seed)
			at_control(&C, "/_control/seed", cases[i].seed);
		if (cases[i].fault)
			at_control(&C, "/_control/fault", cases[i].fault);
		char *with = NULL;
		cr_assert(asprintf(&with, cases[i].with ? cases[i].with : "count: 1", C.work) > 0);
		at_pipeline(&C, with, NULL);
		free(with);
		kt_rmrf(C.report);
		kt_result r;
		cr_expect_eq(at_agent(&C, &r, NULL, token_env, 30), cases[i].status, "case %zu: %s", i,
		             r.err);
		if (cases[i].want)
			cr_expect(kt_contains(r.err, cases[i].want), "case %zu: %s", i, r.err);
		char *rep = kt_read_file(C.report, NULL);
		if (cases[i].report)
			cr_expect(rep && kt_contains(rep, cases[i].report), "case %zu: %s", i, rep);
		free(rep);
		kt_result_free(&r);
		at_control(&C, "/_control/reset", "{}");
		at_control(&C, "/_control/seed",
		           "{\"tasks\":[{\"id\":\"t1\",\"repositoryId\":\"r1\"}],"
		           "\"repositories\":[{\"id\":\"r1\",\"url\":\"https://example.invalid/r.git\"}]}");
	}
	char *own = kt_path(C.work, "own.sh"), *text = kt_read_file(own, NULL);
	cr_expect_str_eq(text ? text : "", "echo own\n", "the task's own install script is written");
	free(text);
	free(own);
}
