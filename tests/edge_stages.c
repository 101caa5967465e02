/*
 * edge_stages.c - what a user reads after a run where things went wrong,
 * through the real agent in local mode: which failure is reported when
 * several stages fail, texts we build (the reason, the status message)
 * that hold quotes, backslashes and control characters parsed back as
 * JSON, and the cleanup stage's `remove:` list checked at its first and
 * last entries and kept inside .keruta/.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_common.h"

/* The termination log parsed (the caller puts it). */
static json_object *termination(kf *r)
{
	char *text = kt_read_file(r->term, NULL);
	cr_assert(text, "no termination log");
	json_object *o = json_tokener_parse(text);
	cr_assert(o, "the termination log is not JSON: %s", text);
	free(text);
	return o;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* Every line of the events file is one JSON object; the message of the
 * last status event (caller frees), or NULL. */
static char *final_status_message(kf *r, char *status, size_t status_size)
{
	char *text = kt_read_file(r->evpath, NULL);
	cr_assert(text, "no events file");
	char *msg = NULL, *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_object *o = json_tokener_parse(line);
		cr_assert(o, "an event is not JSON: %s", line);
		const char *type = str_field(o, "type");
		if (type && strcmp(type, "status") == 0) {
			free(msg);
			const char *m = str_field(o, "message");
			msg = m ? strdup(m) : NULL;
			snprintf(status, status_size, "%s", str_field(o, "status"));
		}
		json_object_put(o);
	}
	free(text);
	return msg;
}

Test(edge_stages, the_first_failure_is_reported_when_later_stages_fail_too)
{
	kf r;
	kf_init(&r, NULL);
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [first, second, third]\nstages:\n"
	               "  first:\n    plugin: execute\n    with: {command: 'exit 3'}\n"
	               "  second:\n    plugin: execute\n    when: always\n"
	               "    with: {command: 'exit 5'}\n"
	               "  third:\n    plugin: execute\n    when: on_failure\n"
	               "    with: {command: 'exit 0'}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1, "a failed task exits 1: %s", res.err);
	json_object *t = termination(&r);
	cr_expect_str_eq(str_field(t, "status"), "FAILED");
	cr_expect_str_eq(str_field(t, "stage"), "first");
	const char *reason = str_field(t, "reason");
	cr_assert(reason);
	cr_expect(kt_contains(reason, "exit code 3"), "reason: %s", reason);
	json_object *code;
	cr_assert(json_object_object_get_ex(t, "exitCode", &code), "no exitCode");
	cr_expect_eq(json_object_get_int(code), 3, "exitCode is the failed stage's, not a later one's");
	json_object_put(t);
	char status[32] = "";
	char *msg = final_status_message(&r, status, sizeof(status));
	cr_expect_str_eq(status, "FAILED");
	cr_assert(msg, "no final status message");
	cr_expect(kt_contains(msg, "stage first failed") && kt_contains(msg, "exit code 3"), "%s",
	          msg);
	cr_expect(!kt_contains(msg, "second") && !kt_contains(msg, "exit code 5"), "%s", msg);
	cr_expect(kt_contains(res.err, "task failed in stage first"), "%s", res.err);
	cr_expect(!kt_contains(res.err, "not delivered"), "every line was written: %s", res.err);
	free(msg);
	kt_result_free(&res);
	kf_free(&r);
}

/* The repository URL is the task's text: a failed clone quotes it in the
 * reason, which goes into the termination log and the status message. */
Test(edge_stages, reasons_holding_quotes_backslashes_and_tabs_stay_valid_json)
{
	kf r;
	kf_init(&r, "id: t-1\nrepository:\n  url: \"http://127.0.0.1:1/a\\\"b\\\\c\\td.git\"\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [clone]\nstages:\n"
	               "  clone: {plugin: clone}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 1, "%s", res.err);
	const char *url = "http://127.0.0.1:1/a\"b\\c\td.git";
	json_object *t = termination(&r);
	const char *reason = str_field(t, "reason");
	cr_assert(reason);
	cr_expect(kt_contains(reason, url), "the URL is not in the reason as written: %s", reason);
	json_object_put(t);
	char status[32] = "";
	char *msg = final_status_message(&r, status, sizeof(status));
	cr_assert(msg);
	cr_expect(kt_contains(msg, url), "%s", msg);
	free(msg);
	kt_result_free(&res);
	kf_free(&r);
}

static int exists(kf *r, const char *rel)
{
	char *p = kt_path(r->work, rel);
	struct stat st;
	int e = lstat(p, &st) == 0;
	free(p);
	return e;
}

static void touch(kf *r, const char *rel)
{
	char *p = kt_path(r->work, rel);
	kt_write_file(p, "x");
	free(p);
}

static void cleanup_pipeline(kf *r, const char *remove)
{
	char *y;
	cr_assert(asprintf(&y, "version: 1\nphases:\n  execute: [cleanup]\nstages:\n"
	                       "  cleanup:\n    plugin: cleanup\n    with:\n      remove: %s\n",
	                   remove) > 0);
	kf_pipeline(r, y);
	free(y);
}

Test(edge_stages, cleanup_removes_the_first_and_the_last_entry)
{
	kf r;
	kf_init(&r, NULL);
	/* `remove:` names files of the task's own area */
	char *k = kt_path(r.work, ".keruta/tasks/t-1");
	const char *mk[] = {"mkdir", "-p", k, NULL};
	kt_result m;
	cr_assert_eq(kt_run(&m, mk, NULL, NULL, NULL, 30), 0);
	kt_result_free(&m);
	free(k);
	touch(&r, ".keruta/tasks/t-1/first.tmp");
	touch(&r, ".keruta/tasks/t-1/middle.tmp");
	touch(&r, ".keruta/tasks/t-1/last.tmp");
	touch(&r, ".keruta/tasks/t-1/kept.txt");
	cleanup_pipeline(&r, "[first.tmp, middle.tmp, last.tmp]");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	cr_expect(!exists(&r, ".keruta/tasks/t-1/first.tmp"), "the first entry was not removed");
	cr_expect(!exists(&r, ".keruta/tasks/t-1/middle.tmp"));
	cr_expect(!exists(&r, ".keruta/tasks/t-1/last.tmp"), "the last entry was not removed");
	cr_expect(exists(&r, ".keruta/tasks/t-1/kept.txt"), "a file not listed was removed");
	kt_result_free(&res);
	kf_free(&r);
}

/* Each entry that could leave .keruta/ is refused before anything is
 * removed, whether it is the first or the last of the list; the file it
 * names is still there. */
static void refused(const char *list, const char *bad)
{
	kf r;
	kf_init(&r, NULL);
	/* entries name files of the task's own area, .keruta/tasks/t-1/:
	 * a.tmp is there, and ../outside.txt is what the escaping entries
	 * would reach */
	char *k = kt_path(r.work, ".keruta/tasks/t-1");
	const char *mk[] = {"mkdir", "-p", k, NULL};
	kt_result m;
	cr_assert_eq(kt_run(&m, mk, NULL, NULL, NULL, 30), 0);
	kt_result_free(&m);
	free(k);
	touch(&r, ".keruta/tasks/t-1/a.tmp");
	touch(&r, ".keruta/tasks/outside.txt");
	cleanup_pipeline(&r, list);
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, NULL, 60), 0);
	cr_expect_eq(res.status, 2, "%s: a pipeline error exits 2: %s", list, res.err);
	cr_expect(kt_contains(res.err, bad), "%s: the message does not name '%s': %s", list, bad,
	          res.err);
	cr_expect(exists(&r, ".keruta/tasks/outside.txt"), "%s: a file outside the area was removed",
	          list);
	cr_expect(exists(&r, ".keruta/tasks/t-1/a.tmp"), "%s: removed before the list was checked",
	          list);
	kt_result_free(&res);
	kf_free(&r);
}

Test(edge_stages, cleanup_refuses_entries_leaving_keruta_first_or_last)
{
	refused("['../outside.txt', a.tmp]", "../outside.txt");
	refused("[a.tmp, '../outside.txt']", "../outside.txt");
	refused("[a.tmp, '/etc/x']", "/etc/x");
	refused("[a.tmp, 'sub/../../outside.txt']", "sub/../../outside.txt");
	refused("[a.tmp, 'sub/..']", "sub/..");
	refused("[a.tmp, '']", "must be a path");
}

/* A failed stage, then a `when: always` stage that does not stop after
 * SIGTERM: the agent gives up on it after the grace period, and what it
 * reports is still the first failure, not the stuck stage. */
Test(edge_stages, a_stuck_stage_after_a_failure_keeps_the_first_reason)
{
	kf r;
	kf_init(&r, NULL);
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [first, stuck]\nstages:\n"
	               "  first:\n    plugin: execute\n    with: {command: 'exit 3'}\n"
	               "  stuck: {plugin: stuck, when: always}\n");
	const char *args[] = {"--grace-period", "1s", NULL};
	int out_fd, err_fd;
	pid_t pid = kf_spawn(&r, "execute", args, NULL, &out_fd, &err_fd);
	cr_assert(pid > 0);
	char *mark = kt_path(r.work, ".keruta/stuck.txt");
	for (int i = 0; i < 600 && access(mark, F_OK) != 0; i++)
		usleep(50000);
	cr_assert_eq(access(mark, F_OK), 0, "the stuck stage never started");
	free(mark);
	kill(pid, SIGTERM);
	kt_result res;
	cr_assert_eq(kt_wait(&res, pid, out_fd, err_fd, 30), 0);
	cr_assert(!res.timed_out, "the agent did not give up on the stuck stage");
	cr_expect_eq(res.status, 1, "%s", res.err);
	json_object *t = termination(&r);
	cr_expect_str_eq(str_field(t, "status"), "FAILED");
	cr_expect_str_eq(str_field(t, "stage"), "first");
	const char *reason = str_field(t, "reason");
	cr_expect(reason && kt_contains(reason, "exit code 3"), "reason: %s", reason);
	json_object_put(t);
	kt_result_free(&res);
	kf_free(&r);
}
