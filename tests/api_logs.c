/*
 * api_logs.c - log shipping end to end: every line emitted arrives, in
 * order, across an API outage, a full memory queue, a spool left by an
 * earlier run; long lines are split with a marker; the token never
 * reaches the spool or the debug log.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api_util.h"

static at_ctx C;

static void setup(void)
{
	at_start(&C, NULL);
}

static void teardown(void)
{
	at_stop(&C);
}

TestSuite(api_logs, .init = setup, .fini = teardown, .timeout = 90);

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* .keruta/tasks/t1, where task t1's spool lives. */
static void make_task_area(void)
{
	const char *const parts[] = {".keruta", ".keruta/tasks", ".keruta/tasks/t1"};
	for (size_t i = 0; i < 3; i++) {
		char *d = kt_path(C.work, parts[i]);
		mkdir(d, 0755);
		free(d);
	}
}

static char *spool_path(void)
{
	return kt_path(C.work, ".keruta/tasks/t1/log-spool");
}

Test(api_logs, outage_in_the_middle_loses_no_line)
{
	at_pipeline(&C, "count: 3000, every: 100, pause: 60ms",
	            "  log_batch_lines: 50\n  log_batch_interval: 100ms\n");
	int out_fd, err_fd;
	pid_t pid = kt_spawn(at_agent_argv(&C, NULL), NULL, C.dir, &out_fd, &err_fd);
	cr_assert(pid > 0);
	/* wait until shipping is under way, then take the API down */
	size_t n = 0;
	for (int i = 0; i < 200 && n < 200; i++) {
		free(at_lines(&C, &n));
		sleep_ms(50);
	}
	cr_assert_geq(n, 200, "the agent shipped nothing within 10 s");
	at_control(&C, "/_control/down", "{\"seconds\":2}");
	kt_result r;
	cr_assert(kt_wait(&r, pid, out_fd, err_fd, 60) == 0);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);

	char *got = at_lines(&C, &n), *want = at_expected("line", 1, 3000);
	cr_expect_eq(n, 3000, "lines received: %zu", n);
	cr_expect(strcmp(got, want) == 0, "the lines differ from what was emitted, or their order");
	free(got);
	free(want);

	/* the outage really hit the shipper, and it said so */
	json_object *reqs = at_get(&C, "/_control/requests");
	int dropped = 0;
	long last_log = -1, final_status = -1;
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *q = json_object_array_get_idx(reqs, i), *rs, *p, *m, *b;
		json_object_object_get_ex(q, "path", &p);
		json_object_object_get_ex(q, "method", &m);
		if (json_object_object_get_ex(q, "response_status", &rs) &&
		    json_object_is_type(rs, json_type_string))
			dropped++;
		else if (strcmp(json_object_get_string(p), "/api/v1/tasks/t1/logs") == 0)
			last_log = (long)i;
		else if (strcmp(json_object_get_string(m), "PUT") == 0 &&
		         json_object_object_get_ex(q, "body", &b) &&
		         strstr(json_object_get_string(b), "COMPLETED"))
			final_status = (long)i;
	}
	json_object_put(reqs);
	cr_expect_gt(dropped, 0, "no request met the outage");
	cr_expect(kt_contains(r.err, "log shipping paused"), "%s", r.err);
	cr_expect_gt(final_status, last_log, "the final status went before the last log batch");
	char *sp = spool_path();
	cr_expect(access(sp, F_OK) != 0, "the spool was not deleted once drained");
	free(sp);
	kt_result_free(&r);
}

Test(api_logs, full_memory_queue_spills_to_the_spool_in_order)
{
	at_pipeline(&C, "count: 20000", "  log_batch_lines: 100\n  log_batch_interval: 50ms\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	size_t n;
	char *got = at_lines(&C, &n), *want = at_expected("line", 1, 20000);
	cr_expect_eq(n, 20000);
	cr_expect(strcmp(got, want) == 0, "lines lost or out of order");
	free(got);
	free(want);
	cr_expect_leq(at_count(&C, "POST", "/logs"), 400, "batches should be full-size");
	char *sp = spool_path();
	cr_expect(access(sp, F_OK) != 0);
	free(sp);
	kt_result_free(&r);
}

/* A spool that cannot be opened (a directory in its place): said once,
 * not once per line that would have gone there; the lines that reached
 * the API are there, and the exit code tells that others were lost. */
Test(api_logs, unusable_spool_is_reported_once)
{
	make_task_area();
	char *sp = spool_path();
	cr_assert_eq(mkdir(sp, 0755), 0);
	at_pipeline(&C, "count: 20000", "  log_batch_lines: 100\n  log_batch_interval: 50ms\n");
	kt_result r;
	/* lines were lost for want of the spool: the exit code says so (4, an
	 * exhausted resource of the agent) */
	int rc = at_agent(&C, &r, NULL, NULL, 60);
	cr_assert_eq(rc, 4, "exit %d, stderr:\n%s", rc, r.err);
	cr_expect_eq(kt_count(r.err, "cannot open the log spool"), 1, "%s", r.err);
	cr_expect(kt_contains(r.err, "could not be written"), "%s", r.err);
	size_t n;
	free(at_lines(&C, &n));
	cr_expect_gt(n, 0);
	free(sp);
	kt_result_free(&r);
}

Test(api_logs, spool_from_an_earlier_run_is_replayed_first)
{
	char *dir = kt_path(C.work, ".keruta");
	make_task_area();
	char *sp = spool_path();
	kt_write_file(sp, "{\"task\":\"t1\",\"stream\":\"stdout\",\"line\":\"old-000001\"}\n"
	                  "{\"task\":\"t1\",\"stream\":\"stdout\",\"line\":\"old-000002\"}\n"
	                  "this record was damaged\n"
	                  "{\"task\":\"t1\",\"stream\":\"stderr\",\"line\":\"old-000003\"}\n"
	                  "{\"task\":\"t1\",\"stream\":\"std");
	at_pipeline(&C, "count: 4", NULL);
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	size_t n;
	char *got = at_lines(&C, &n);
	cr_expect_str_eq(got, "old-000001\nold-000002\nold-000003\nline-000001\nline-000002\n"
	                      "line-000003\nline-000004\n");
	cr_expect(kt_contains(r.err, "damaged record"), "%s", r.err);
	cr_expect(access(sp, F_OK) != 0, "the replayed spool was not deleted");
	/* the streams survived the spool */
	json_object *st = at_get(&C, "/_control/state"), *logs, *t1, *s, *l;
	json_object_object_get_ex(st, "logs", &logs);
	json_object_object_get_ex(logs, "t1", &t1);
	int seen = 0;
	for (size_t i = 0; i < json_object_array_length(t1); i++) {
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "line", &l);
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "stream", &s);
		if (strcmp(json_object_get_string(l), "old-000003") == 0) {
			seen = 1;
			cr_expect_str_eq(json_object_get_string(s), "stderr");
		}
	}
	cr_expect(seen);
	json_object_put(st);
	free(got);
	free(sp);
	free(dir);
	kt_result_free(&r);
}

/* Spooled lines come back byte for byte, whatever they hold; records
 * that are not valid JSON are skipped, never sent as a broken body. */
Test(api_logs, spooled_lines_keep_every_byte)
{
	char *dir = kt_path(C.work, ".keruta");
	make_task_area();
	char *sp = spool_path();
	kt_write_file(sp, "{\"task\":\"t1\",\"stream\":\"stdout\",\"line\":\"q\\\"uo\\\\te\\t\\u0001 caf\xc3\xa9 \\u00e9 \\/\"}\n"
	                  "{\"task\":\"t1\",\"stream\":\"stdout\",\"line\":\"bad \"quote\"}\n"
	                  "{\"task\":\"t1\",\"stream\":\"stdout\",\"line\":\"bad escape \\x\"}\n"
	                  "{\"task\":\"t1\",\"stream\":\"stdout\",\"line\":\"ends in a backslash \\\"}\n"
	                  "{\"stream\":\"stderr\",\"line\":\"other key order\",\"task\":\"t1\"}\n"
	                  "{\"task\":\"t\\u0031\",\"stream\":\"stdout\",\"line\":\"escaped task id\"}\n"
	                  "{\"task\":\"t1\",\"stream\":\"stdout\",\"line\":\"\"}\n");
	at_pipeline(&C, "count: 1", NULL);
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	json_object *st = at_get(&C, "/_control/state"), *logs, *t1, *s, *l;
	json_object_object_get_ex(st, "logs", &logs);
	cr_assert(json_object_object_get_ex(logs, "t1", &t1));
	static const char *const want[][2] = {
	    {"stdout", "q\"uo\\te\t\x01 caf\xc3\xa9 \xc3\xa9 /"},
	    {"stderr", "other key order"},
	    {"stdout", "escaped task id"},
	    {"stdout", ""},
	    {"stdout", "line-000001"},
	};
	size_t n = json_object_array_length(t1), k = sizeof(want) / sizeof(want[0]), j = 0;
	for (size_t i = 0; i < n; i++) {
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "line", &l);
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "stream", &s);
		if (strcmp(json_object_get_string(s), "agent") == 0)
			continue; /* the agent's own progress lines */
		cr_assert_lt(j, k, "more lines than written: %s", json_object_get_string(l));
		cr_expect_str_eq(json_object_get_string(l), want[j][1], "line %zu", j);
		cr_expect_str_eq(json_object_get_string(s), want[j][0], "stream of line %zu", j);
		j++;
	}
	cr_expect_eq(j, k, "lines received: %zu", j);
	cr_expect(kt_contains(r.err, "damaged record"), "%s", r.err);
	json_object *reqs = at_get(&C, "/_control/requests"), *p, *rs;
	for (size_t i = 0; i < json_object_array_length(reqs); i++) {
		json_object *q = json_object_array_get_idx(reqs, i);
		json_object_object_get_ex(q, "path", &p);
		if (kt_contains(json_object_get_string(p), "/logs") &&
		    json_object_object_get_ex(q, "response_status", &rs))
			cr_expect_eq(json_object_get_int(rs), 200, "a log batch was refused: %s",
			             json_object_to_json_string(q));
	}
	json_object_put(reqs);
	json_object_put(st);
	free(sp);
	free(dir);
	kt_result_free(&r);
}

/* The stdout lines keruta-api received for t1 are one 2500-byte line of
 * 'a'..'z' repeated, in three parts of at most 1 KiB, each marked once. */
static void expect_three_marked_parts(void)
{
	json_object *st = at_get(&C, "/_control/state"), *logs, *t1;
	json_object_object_get_ex(st, "logs", &logs);
	cr_assert(json_object_object_get_ex(logs, "t1", &t1));
	const char *parts[8];
	size_t n = 0;
	for (size_t i = 0; i < json_object_array_length(t1) && n < 8; i++) {
		json_object *l, *stream;
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "line", &l);
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "stream", &stream);
		if (strcmp(json_object_get_string(stream), "stdout") == 0)
			parts[n++] = json_object_get_string(l);
	}
	cr_assert_eq(n, 3, "2500 bytes in parts of at most 1 KiB, not %zu", n);
	char whole[4096] = "";
	for (size_t i = 0; i < n; i++) {
		const char *s = parts[i];
		size_t len = strlen(s);
		cr_expect_leq(len, 1024);
		if (i > 0) {
			cr_expect(strncmp(s, "[continued] ", 12) == 0, "part %zu has no leading mark",
			          i + 1);
			s += 12, len -= 12;
		}
		if (i < n - 1) {
			cr_expect(len > 17 && strcmp(s + len - 17, " [line continues]") == 0,
			          "part %zu: no end mark", i + 1);
			len -= 17;
		}
		strncat(whole, s, len);
	}
	cr_expect_eq(strlen(whole), 2500);
	for (size_t i = 0; i < strlen(whole); i++)
		if (whole[i] != (char)('a' + i % 26)) {
			cr_expect_fail("byte %zu differs after joining the parts: %s", i, whole);
			break;
		}
	json_object_put(st);
}

Test(api_logs, long_line_is_split_with_visible_marks)
{
	at_pipeline(&C, "long_line: 2500", "  log_max_line: 1KiB\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	expect_three_marked_parts();
	kt_result_free(&r);
}

/* A child's long line is cut by the process runner and then passes the
 * log shipper: cut once, not again (parts of at most log_max_line, marks
 * included, each marked once). */
Test(api_logs, long_line_of_a_child_is_cut_once)
{
	kt_write_file(C.pipeline,
	              "version: 1\nphases:\n  execute: [run]\nstages:\n  run:\n"
	              "    plugin: execute\n    with:\n"
	              "      argv: [python3, -c, \"print(''.join(chr(97 + i % 26) for i in "
	              "range(2500)))\"]\n"
	              "settings:\n  log_max_line: 1KiB\n  log_batch_interval: 50ms\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	expect_three_marked_parts();
	kt_result_free(&r);
}

/* A child's output past log_max_total is cut once, by the process runner:
 * the log shipper, whose budget is the whole task's log, passes the head,
 * the line saying what was cut and the tail as they are. */
Test(api_logs, output_past_log_max_total_is_cut_once)
{
	kt_write_file(C.pipeline,
	              "version: 1\nphases:\n  execute: [run]\nstages:\n  run:\n"
	              "    plugin: execute\n    with:\n"
	              "      argv: [python3, -c, \"[print('line-%05d' % i) for i in "
	              "range(1, 2001)]\"]\n"
	              "settings:\n  log_max_total: 64KiB\n  log_batch_interval: 50ms\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	json_object *st = at_get(&C, "/_control/state"), *logs, *t1, *l;
	json_object_object_get_ex(st, "logs", &logs);
	cr_assert(json_object_object_get_ex(logs, "t1", &t1));
	size_t notices = 0, first = 0, last = 0;
	for (size_t i = 0; i < json_object_array_length(t1); i++) {
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "line", &l);
		const char *s = json_object_get_string(l);
		notices += kt_contains(s, "cut here") != 0;
		if (strncmp(s, "line-", 5) == 0) {
			if (!first)
				first = (size_t)atoi(s + 5);
			last = (size_t)atoi(s + 5);
		}
	}
	cr_expect_eq(notices, 1, "one line says what was cut, not %zu", notices);
	cr_expect_eq(first, 1, "the head is kept");
	cr_expect_eq(last, 2000, "the tail is kept");
	json_object_put(st);
	kt_result_free(&r);
}

Test(api_logs, token_never_reaches_the_spool_nor_the_debug_log)
{
	const char *token = "Tk-spool-CANARY-91377";
	kt_api_stop(&C.api);
	const char *const targs[] = {"--token", token, NULL};
	cr_assert(kt_api_start(&C.api, targs) == 0);
	at_control(&C, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\"}]}");
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	           "\"times\":-1}");
	/* the lines themselves carry the token: the core masks them */
	char with[256];
	snprintf(with, sizeof(with), "count: 40, every: 10, pause: 1s, prefix: %s", token);
	at_pipeline(&C, with, "  log_batch_interval: 50ms\n");
	char env_tok[128];
	snprintf(env_tok, sizeof(env_tok), "KERUTA_API_TOKEN=%s", token);
	const char *const env[] = {env_tok, NULL};
	const char *const args[] = {"--log-level", "debug", NULL};
	int out_fd, err_fd;
	pid_t pid = kt_spawn(at_agent_argv(&C, args), env, C.dir, &out_fd, &err_fd);
	cr_assert(pid > 0);
	char *sp = spool_path(), *spool = NULL;
	for (int i = 0; i < 200; i++) {
		free(spool);
		spool = kt_read_file(sp, NULL);
		if (spool && kt_count(spool, "\n") >= 20)
			break;
		sleep_ms(50);
	}
	kill(-pid, SIGKILL);
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 30);
	cr_assert(spool && kt_count(spool, "\n") >= 20, "the lines did not reach the spool: %s",
	          spool ? spool : "(no spool)");
	cr_expect(!kt_contains(spool, token), "the token is in the spool:\n%s", spool);
	cr_expect(kt_contains(spool, "\"line\":\"***-000001\""), "%s", spool);
	cr_expect(!kt_contains(r.err, token), "the token is in the log");
	cr_expect(kt_contains(r.err, "Authorization: ***"), "debug dump expected");
	cr_expect_gt(at_count(&C, "POST", "/logs"), 0);
	free(spool);
	free(sp);
	kt_result_free(&r);
}

/* The secret masker on the way to keruta-api: a secret whose last byte
 * equals its first, ending a read, is not cut in two. */
Test(api_logs, secret_ending_like_it_begins_never_reaches_the_api)
{
	char *child = kt_split_child(C.dir, "'token=eyJhbGciOie'", "'\\n'");
	char *text = NULL;
	cr_assert(asprintf(&text,
	                   "version: 1\nphases:\n  execute: [run]\nstages:\n  run:\n"
	                   "    plugin: execute\n    with:\n"
	                   "      argv: [python3, \"%s\"]\n"
	                   "settings:\n  secrets: [MY_SECRET]\n  log_batch_interval: 50ms\n",
	                   child) > 0);
	free(child);
	kt_write_file(C.pipeline, text);
	free(text);
	const char *const env[] = {"MY_SECRET=eyJhbGciOie", NULL};
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, env, 60), 0, "stderr:\n%s", r.err);
	size_t n;
	char *got = at_lines(&C, &n);
	cr_expect(got && kt_contains(got, "token=***"), "received: %s", got ? got : "");
	cr_expect(got && !kt_contains(got, "eyJ") && !kt_contains(got, "Oie"), "received: %s", got);
	json_object *st = at_get(&C, "/_control/state");
	const char *all = json_object_to_json_string(st);
	cr_expect(!kt_contains(all, "eyJ") && !kt_contains(all, "Oie"), "server state: %s", all);
	cr_expect(!kt_contains(r.out, "eyJ") && !kt_contains(r.out, "Oie"), "%s", r.out);
	json_object_put(st);
	free(got);
	kt_result_free(&r);
}

static char *final_status(void)
{
	json_object *st = at_get(&C, "/_control/state"), *all, *t1, *s;
	char *out = strdup("");
	if (json_object_object_get_ex(st, "statuses", &all) &&
	    json_object_object_get_ex(all, "t1", &t1) && json_object_array_length(t1) &&
	    json_object_object_get_ex(json_object_array_get_idx(t1, json_object_array_length(t1) - 1),
	                              "status", &s)) {
		free(out);
		out = strdup(json_object_get_string(s));
	}
	json_object_put(st);
	return out;
}

/* An ordinary outage: /logs answers 503 twice, then works.  The shipper
 * said "resumed" while holding its own lock, and that line came back to
 * it through the log sink: the agent hung for good. */
Test(api_logs, log_shipping_resumes_after_an_outage_and_the_run_ends)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	           "\"times\":2}");
	at_pipeline(&C, "count: 30, every: 10, pause: 300ms", "  log_batch_interval: 50ms\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "log shipping resumed"), "%s", r.err);
	char *st = final_status();
	cr_expect_str_eq(st, "COMPLETED");
	size_t n;
	char *got = at_lines(&C, &n), *want = at_expected("line", 1, 30);
	cr_expect_str_eq(got, want);
	free(got);
	free(want);
	free(st);
	kt_result_free(&r);
}

/* SIGTERM acts while keruta-api refuses every log batch. */
Test(api_logs, sigterm_acts_during_a_log_outage)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	           "\"times\":-1}");
	at_pipeline(&C, "count: 600, every: 10, pause: 100ms", "  log_batch_interval: 50ms\n");
	int out_fd, err_fd;
	pid_t pid = kt_spawn(at_agent_argv(&C, NULL), NULL, C.dir, &out_fd, &err_fd);
	cr_assert(pid > 0);
	for (int i = 0; i < 200 && at_count(&C, "POST", "/logs") < 3; i++)
		sleep_ms(50);
	cr_assert_geq(at_count(&C, "POST", "/logs"), 3, "no log batch was tried");
	kill(pid, SIGTERM);
	kt_result r;
	cr_assert_eq(kt_wait(&r, pid, out_fd, err_fd, 40), 0);
	cr_expect(!r.timed_out, "SIGTERM did not end the agent; stderr:\n%s", r.err);
	cr_expect_neq(r.status, 0);
	kt_result_free(&r);
}

Test(api_logs, refused_batches_are_dropped_without_looping)
{
	/* a refusal is final; the warning it causes must not be shipped into
	 * the same refusal again, so the run still ends promptly */
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":400,"
	           "\"times\":-1}");
	at_pipeline(&C, "count: 30, every: 10, pause: 500ms", "  log_batch_interval: 50ms\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 20), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "keruta-api refused"), "%s", r.err);
	cr_expect(!kt_contains(r.err, "not delivered"), "%s", r.err);
	/* 3 bursts of lines and a few agent lines; a loop would add ~20/s */
	cr_expect_lt(at_count(&C, "POST", "/logs"), 15);
	char *sp = spool_path();
	cr_expect(access(sp, F_OK) != 0, "refused lines do not belong in the spool");
	free(sp);
	kt_result_free(&r);
}

/* 429 (too many requests) is keruta-api asking to slow down, not a
 * refusal: the batches wait and are all delivered, none dropped. */
Test(api_logs, too_many_requests_delays_batches_and_loses_none)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":429,"
	           "\"times\":8}");
	at_pipeline(&C, "count: 5", "  log_batch_interval: 50ms\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	cr_expect(!kt_contains(r.err, "keruta-api refused"), "%s", r.err);
	size_t n;
	char *got = at_lines(&C, &n), *want = at_expected("line", 1, 5);
	cr_expect_eq(n, 5, "lines received: %zu\n%s", n, r.err);
	cr_expect(strcmp(got, want) == 0, "the lines differ from what was emitted");
	free(got);
	free(want);
	kt_result_free(&r);
}

/* A batch keruta-api turned away with Retry-After is sent again no sooner
 * than it asked, also when the HTTP layer has no retries left of its own
 * (api_retries: 0) and the shipper's shorter backoff decides. */
Test(api_logs, shipper_waits_the_retry_after_keruta_api_names)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	           "\"retry_after\":3,\"times\":1}");
	/* still running when the retry is due: the final flush does not decide */
	at_pipeline(&C, "count: 30, every: 5, pause: 1s",
	            "  log_batch_interval: 50ms\n  api_retries: 0\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	double t[2];
	cr_assert_eq(at_times(&C, "/api/v1/tasks/t1/logs", t, 2), 2, "%s", r.err);
	cr_expect_geq(t[1] - t[0], 2.9, "sent again after %.3f s despite Retry-After: 3",
	              t[1] - t[0]);
	size_t n;
	free(at_lines(&C, &n));
	cr_expect_eq(n, 30);
	kt_result_free(&r);
}

/* The same when the task has ended and its final flush sends the batch:
 * the agent waits out the Retry-After (within its flush budget) rather
 * than asking again twice a second. */
Test(api_logs, final_flush_waits_the_retry_after_keruta_api_names)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	           "\"retry_after\":2,\"times\":1}");
	at_pipeline(&C, "count: 5", "  log_batch_interval: 50ms\n  api_retries: 0\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	cr_expect_eq(r.status, 0, "%s", r.err);
	double t[2];
	cr_assert_eq(at_times(&C, "/api/v1/tasks/t1/logs", t, 2), 2, "%s", r.err);
	cr_expect_geq(t[1] - t[0], 1.9, "sent again after %.3f s despite Retry-After: 2",
	              t[1] - t[0]);
	size_t n;
	free(at_lines(&C, &n));
	cr_expect_eq(n, 5);
	kt_result_free(&r);
}

/* A token keruta-api refuses for /logs alone (401) is no outage: the
 * batches are dropped and said so, not retried until the final flush
 * gives up. */
Test(api_logs, batches_refused_with_401_are_not_taken_for_an_outage)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":401,"
	           "\"times\":-1}");
	at_pipeline(&C, "count: 5", "  log_batch_interval: 50ms\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 25), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "keruta-api refused"), "%s", r.err);
	cr_expect(!kt_contains(r.err, "log shipping paused"), "%s", r.err);
	char *sp = spool_path();
	cr_expect(access(sp, F_OK) != 0, "refused lines do not belong in the spool");
	free(sp);
	kt_result_free(&r);
}

Test(api_logs, past_log_max_total_only_head_and_tail_are_shipped)
{
	at_pipeline(&C, "count: 10000", "  log_max_total: 2KiB\n");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 60), 0, "stderr:\n%s", r.err);
	json_object *st = at_get(&C, "/_control/state"), *logs, *t1, *l;
	json_object_object_get_ex(st, "logs", &logs);
	cr_assert(json_object_object_get_ex(logs, "t1", &t1));
	size_t n = json_object_array_length(t1), marker = 0, first = 0, last = 0, count = 0;
	for (size_t i = 0; i < n; i++) {
		json_object_object_get_ex(json_object_array_get_idx(t1, i), "line", &l);
		const char *s = json_object_get_string(l);
		if (strstr(s, "of output cut here") && strstr(s, "log_max_total"))
			marker = i + 1;
		if (strncmp(s, "line-", 5) == 0) {
			count++;
			if (!first)
				first = (size_t)atoi(s + 5);
			last = (size_t)atoi(s + 5);
		}
	}
	cr_expect_gt(marker, 0, "no line says what was left out");
	cr_expect_eq(first, 1, "the head is kept");
	cr_expect_eq(last, 10000, "the tail is kept");
	cr_expect_lt(count, 10000, "the middle should have been left out");
	json_object_put(st);
	kt_result_free(&r);
}

/* keruta-api takes `skip` batches of the log, then none: what it did not
 * take stays in the spool, and the next run delivers exactly that, once
 * and in order (nothing it already had comes twice). */
static void log_left_by_a_run(int count, const char *every, int skip)
{
	char fault[256], lines[128];
	snprintf(fault, sizeof(fault),
	         "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	         "\"times\":-1,\"skip\":%d}",
	         skip);
	at_control(&C, "/_control/fault", fault);
	snprintf(lines, sizeof(lines), "count: %d%s", count, every);
	at_pipeline(&C, lines,
	            "  log_batch_lines: 50\n  log_batch_interval: 50ms\n  api_retry_max_time: 3s\n");
	kt_result r;
	cr_expect_eq(at_agent(&C, &r, NULL, NULL, 100), 3, "stderr:\n%s", r.err);
	size_t n1;
	char *first = at_lines(&C, &n1);
	cr_assert_gt(n1, 0, "%s", r.err);
	cr_assert_lt(n1, (size_t)count, "%s", r.err);
	kt_result_free(&r);

	at_control(&C, "/_control/reset", "{}");
	at_control(&C, "/_control/seed",
	           "{\"tasks\":[{\"id\":\"t1\",\"title\":\"a task\",\"status\":\"PENDING\"}]}");
	at_pipeline(&C, "count: 0", NULL);
	cr_expect_eq(at_agent(&C, &r, NULL, NULL, 100), 0, "stderr:\n%s", r.err);
	size_t n2;
	char *second = at_lines(&C, &n2);
	char *both = NULL, *want = at_expected("line", 1, count);
	cr_assert(asprintf(&both, "%s%s", first, second) > 0);
	cr_expect_eq(n1 + n2, (size_t)count, "first run %zu, second run %zu lines", n1, n2);
	cr_expect(strcmp(both, want) == 0, "lines lost, repeated or out of order");
	char *sp = spool_path();
	cr_expect(access(sp, F_OK) != 0, "the spool was not deleted once delivered");
	free(sp), free(first), free(second), free(both), free(want);
	kt_result_free(&r);
}

Test(api_logs, log_left_by_a_run_is_delivered_by_the_next_exactly_once, .timeout = 180)
{
	log_left_by_a_run(400, ", every: 100, pause: 100ms", 3);
}

/* The same when the lines came faster than they were sent: most of them
 * were already in the spool, part of it sent, when keruta-api stopped
 * taking them; the spool's unsent part is what the next run delivers. */
Test(api_logs, a_spool_partly_sent_is_kept_from_where_it_stopped, .timeout = 180)
{
	log_left_by_a_run(2000, "", 10);
}

/* keruta-api never takes the log: the run does not end as a plain success,
 * and says where the lines are. */
Test(api_logs, undelivered_log_is_reported_in_the_exit_code, .timeout = 120)
{
	at_control(&C, "/_control/fault",
	           "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	           "\"times\":-1}");
	at_pipeline(&C, "count: 5", "  log_batch_interval: 50ms\n");
	kt_result r;
	cr_expect_eq(at_agent(&C, &r, NULL, NULL, 100), 3, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "the task's log did not reach keruta-api"), "%s", r.err);
	cr_expect(kt_contains(r.err, "log-spool"), "%s", r.err);
	kt_result_free(&r);
}
