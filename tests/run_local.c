/*
 * run_local.c - local mode as a person meets it: the closing summary says
 * what happened (only for a task that started, with correct counts,
 * durations and only files that exist), the work dir defaults to
 * ./keruta-work, and nothing is written outside it (no
 * /dev/termination-log) unless asked.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_common.h"

static const char *const plugin_env[] = {NULL};

static char *summary_line(const char *out)
{
	const char *p = out ? strstr(out, "local run: ") : NULL;
	if (!p)
		return NULL;
	const char *end = strchr(p, '\n');
	return strndup(p, end ? (size_t)(end - p) : strlen(p));
}

Test(run_local, summary_counts_copies_and_durations)
{
	kf r;
	kf_init(&r, "id: t-1\nexecuteScript: |\n  echo one\n  mkdir -p .keruta/doc\n"
	            "  echo x > .keruta/doc/a.txt\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute, collect]\n"
	               "stages:\n  execute: {plugin: execute}\n  collect: {plugin: collect}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, plugin_env, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	char *line = summary_line(res.out);
	cr_assert_not_null(line, "no summary: %s", res.out);
	cr_expect(kt_contains(line, "COMPLETED in "), "%s", line);
	cr_expect(kt_contains(line, "(execute "), "no per-stage duration: %s", line);
	cr_expect(kt_contains(line, ", collect "), "%s", line);
	cr_expect(kt_contains(line, "1 artifact copied to "), "%s", line);
	cr_expect(!kt_contains(line, "1 artifacts"), "%s", line);
	cr_expect(!kt_contains(line, "uploaded"), "%s", line);
	cr_expect(kt_contains(line, r.evpath), "%s", line);
	free(line);
	kt_result_free(&res);
	kf_free(&r);
}

Test(run_local, no_artifacts_names_no_artifacts_dir_and_failure_is_marked)
{
	kf r;
	kf_init(&r, "id: t-1\nexecuteScript: \"exit 3\"\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	kt_result res;
	cr_assert_eq(kf_run(&r, &res, "execute", NULL, plugin_env, 60), 0);
	cr_expect_eq(res.status, 1, "%s", res.err);
	char *line = summary_line(res.out);
	cr_assert_not_null(line, "no summary: %s", res.out);
	cr_expect(kt_contains(line, "FAILED in "), "%s", line);
	cr_expect(kt_contains(line, "(failed)"), "%s", line);
	cr_expect(kt_contains(line, "no artifacts"), "%s", line);
	cr_expect(!kt_contains(line, "/artifacts"), "names a directory never made: %s", line);
	free(line);
	kt_result_free(&res);
	kf_free(&r);
}

/* Early errors: the task never started, so no summary naming files that
 * were never created. */
Test(run_local, no_summary_after_early_errors)
{
	const char *tasks[] = {NULL /* missing file */, "id: [unclosed\n", "id: t\nbogus: 1\n"};
	for (size_t i = 0; i < sizeof(tasks) / sizeof(tasks[0]); i++) {
		kf r;
		kf_init(&r, NULL);
		if (tasks[i])
			kt_write_file(r.task, tasks[i]);
		else
			unlink(r.task);
		rt_simple_pipeline(&r, "      argv: [/bin/true]\n", NULL);
		kt_result res;
		cr_assert_eq(kf_run(&r, &res, "execute", NULL, plugin_env, 60), 0);
		cr_expect_eq(res.status, 2, "case %zu: %s", i, res.err);
		cr_expect(!kt_contains(res.out, "local run:"), "case %zu: summary printed: %s", i,
		          res.out);
		cr_expect(!kt_contains(res.err, "local run:"), "case %zu: %s", i, res.err);
		struct stat st;
		cr_expect_neq(stat(r.evpath, &st), 0, "case %zu: events file made", i);
		kt_result_free(&res);
		kf_free(&r);
	}
}

/* Outside a pod, with no --work-dir and no --termination-log: the work is
 * in ./keruta-work and /dev/termination-log is not touched. */
Test(run_local, defaults_write_nothing_outside_the_work_dir)
{
	char *dir = kt_tmpdir();
	char *task = kt_path(dir, "task.yaml");
	char *pipeline = kt_path(dir, "pipeline.yaml");
	kt_write_file(task, "id: t-1\nexecuteScript: \"pwd\"\n");
	kt_write_file(pipeline, "version: 1\nphases:\n  execute: [execute]\n"
	                        "stages:\n  execute: {plugin: execute}\n");
	struct stat before, after;
	int existed = stat("/dev/termination-log", &before) == 0;
	const char *argv[] = {kt_agent(), "execute", "--task-file", task, "--pipeline", pipeline,
	                      "--log-format", "text", NULL};
	const char *env[] = {"KUBERNETES_SERVICE_HOST", "KERUTA_WORK_DIR", "KERUTA_TERMINATION_LOG",
	                     NULL};
	kt_result res;
	cr_assert_eq(kt_run(&res, argv, env, dir, NULL, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	char *wd = kt_path(dir, "keruta-work");
	cr_expect(kt_contains(res.out, wd), "the script did not run in ./keruta-work: %s", res.out);
	char *ev = kt_path(dir, "keruta-work/.keruta/events.jsonl");
	cr_expect_eq(access(ev, F_OK), 0, "no events in ./keruta-work");
	int exists = stat("/dev/termination-log", &after) == 0;
	cr_expect_eq(exists, existed, "/dev/termination-log was created by a local run");
	if (existed && exists)
		cr_expect(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
		                  before.st_mtim.tv_nsec == after.st_mtim.tv_nsec,
		          "/dev/termination-log was written by a local run");
	kt_result_free(&res);
	kt_rmrf(dir);
	free(ev);
	free(wd);
	free(task);
	free(pipeline);
	free(dir);
}

/* Every line of stderr is one JSON object (a cheap check: braces). */
static void all_json(const char *err)
{
	const char *p = err ? err : "";
	int lines = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		cr_expect(len >= 2 && p[0] == '{' && p[len - 1] == '}', "not a JSON line: %.*s",
		          (int)len, p);
		lines++;
		p += len + (nl ? 1 : 0);
	}
	cr_expect_gt(lines, 0, "nothing on stderr");
}

Test(run_local, json_mode_stderr_is_only_json)
{
	const char *argv[] = {kt_agent(), "bogus", "--log-format", "json", NULL};
	kt_result res;
	cr_assert_eq(kt_run(&res, argv, NULL, NULL, NULL, 30), 0);
	cr_expect_eq(res.status, 2);
	all_json(res.err);
	cr_expect(kt_contains(res.err, "unknown command 'bogus'"), "%s", res.err);
	kt_result_free(&res);

	kf r;
	kf_init(&r, "id: t-1\nexecuteScript: \"echo to-out; echo to-err >&2\"\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	const char *json[] = {"--log-format", "json", NULL};
	cr_assert_eq(kf_run(&r, &res, "execute", json, plugin_env, 60), 0);
	cr_expect_eq(res.status, 0, "%s", res.err);
	all_json(res.err);
	cr_expect(kt_contains(res.out, "to-out\n"), "%s", res.out);
	cr_expect(kt_contains(res.out, "to-err\n"), "the task's stderr is kept on stdout: %s", res.out);
	cr_expect(kt_contains(res.err, "local run: COMPLETED"), "the summary is a log line: %s",
	          res.err);
	kt_result_free(&res);
	kf_free(&r);
}

/* events.jsonl appends across runs; each run begins with a run-start. */
Test(run_local, events_mark_where_each_run_begins)
{
	kf r;
	kf_init(&r, "id: t-1\nexecuteScript: \"echo hi\"\n");
	kf_pipeline(&r, "version: 1\nphases:\n  execute: [execute]\n"
	               "stages:\n  execute: {plugin: execute}\n");
	kt_result res;
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(kf_run(&r, &res, "execute", NULL, plugin_env, 60), 0);
		cr_expect_eq(res.status, 0, "%s", res.err);
		kt_result_free(&res);
	}
	char *ev = kt_read_file(r.evpath, NULL);
	cr_assert_not_null(ev);
	cr_expect(strncmp(ev, "{\"time\":", 8) == 0 && strstr(ev, "\"type\":\"run-start\"") < strchr(ev, '\n'),
	          "the file does not begin with a run-start: %s", ev);
	size_t n = 0;
	for (const char *p = ev; (p = strstr(p, "\"type\":\"run-start\"")); p++)
		n++;
	cr_expect_eq(n, 2, "%s", ev);
	free(ev);
	kf_free(&r);
}
