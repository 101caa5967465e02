/*
 * api_backends.c - the local backend and the keruta-api backend run the
 * same pipeline over the same task and produce the same results: install
 * script, document (and its name), artifact bytes and name, log lines.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

TestSuite(api_backends, .init = setup, .fini = teardown, .timeout = 60);

static const char *const stages =
        "count: 7, install_to: %1$s/.keruta/install.sh, document: d1, "
        "document_to: %1$s/.keruta/doc.out, upload: %1$s/result.txt, "
        "upload_name: report/result.txt, upload_text: \"artifact bytes\\n\\u00e9\\n\"";

static void pipeline_for(const char *work, const char *report, const char *path)
{
	char *with = NULL;
	cr_assert(asprintf(&with, stages, work) > 0);
	char *save_report = C.report, *save_pipe = C.pipeline;
	C.report = (char *)report;
	C.pipeline = (char *)path;
	at_pipeline(&C, with, NULL);
	C.report = save_report;
	C.pipeline = save_pipe;
	free(with);
}

static char *file_in(const char *dir, const char *name)
{
	char *p = kt_path(dir, name), *text = kt_read_file(p, NULL);
	free(p);
	return text ? text : strdup("(missing)");
}

Test(api_backends, local_and_api_give_the_same_results)
{
	at_control(&C, "/_control/seed",
	           "{\"installScripts\":{\"r1\":\"#!/bin/sh\\necho installing\\n\"},"
	           "\"documents\":{\"d1\":{\"name\":\"notes.md\",\"content\":\"hello doc\\n\"}}}");

	/* the API run */
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "mkdir -p '%s/.keruta'", C.work) > 0 && system(cmd) == 0);
	free(cmd);
	char *api_report = kt_path(C.dir, "api.report");
	pipeline_for(C.work, api_report, C.pipeline);
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, NULL, 30), 0, "stderr:\n%s", r.err);
	kt_result_free(&r);

	/* the local run, from a task file with the same content */
	char *lwork = kt_path(C.dir, "local"), *lreport = kt_path(C.dir, "local.report");
	char *lpipe = kt_path(C.dir, "local.yaml"), *task = kt_path(C.dir, "task.yaml");
	char *art = kt_path(C.dir, "artifacts"), *events = kt_path(C.dir, "events.jsonl");
	cr_assert(asprintf(&cmd, "mkdir -p '%s/.keruta'", lwork) > 0 && system(cmd) == 0);
	free(cmd);
	kt_write_file(task, "id: t1\ntitle: a task\nrepositoryId: r1\n"
	                    "installScript: \"#!/bin/sh\\necho installing\\n\"\n"
	                    "documents:\n  - {id: d1, name: notes.md, content: \"hello doc\\n\"}\n");
	pipeline_for(lwork, lreport, lpipe);
	const char *const largv[] = {kt_agent(), "execute", "--task-file", task, "--work-dir", lwork,
	                             "--pipeline", lpipe, "--artifacts-dir", art, "--events-file",
	                             events, "--termination-log", "/dev/null", NULL};
	cr_assert(kt_run(&r, largv, NULL, C.dir, NULL, 30) == 0);
	cr_assert_eq(r.status, 0, "local run failed:\n%s", r.err);
	kt_result_free(&r);

	/* same outcome of every service, same files */
	char *a = kt_read_file(api_report, NULL), *l = kt_read_file(lreport, NULL);
	cr_assert(a && l);
	cr_expect_str_eq(a, l);
	cr_expect(kt_contains(a, "document_name notes.md\n"), "%s", a);
	cr_expect(kt_contains(a, "upload ok\n"), "%s", a);
	free(a);
	free(l);
	const char *files[] = {".keruta/install.sh", ".keruta/doc.out"};
	for (int i = 0; i < 2; i++) {
		a = file_in(C.work, files[i]);
		l = file_in(lwork, files[i]);
		cr_expect_str_eq(a, l, "%s differs", files[i]);
		free(a);
		free(l);
	}

	/* the artifact: bytes and name as uploaded, and as copied */
	json_object *st = at_get(&C, "/_control/state"), *up, *t1, *name, *path;
	cr_assert(json_object_object_get_ex(st, "uploads", &up) &&
	          json_object_object_get_ex(up, "t1", &t1) && json_object_array_length(t1) == 1,
	          "%s", json_object_to_json_string(st));
	json_object_object_get_ex(json_object_array_get_idx(t1, 0), "name", &name);
	json_object_object_get_ex(json_object_array_get_idx(t1, 0), "path", &path);
	cr_expect_str_eq(json_object_get_string(name), "report/result.txt");
	a = kt_read_file(json_object_get_string(path), NULL);
	l = file_in(art, "report/result.txt");
	cr_expect_str_eq(a ? a : "(missing)", l);
	cr_expect_str_eq(l, "artifact bytes\n\xc3\xa9\n");
	free(a);
	free(l);
	json_object_put(st);

	/* the same log lines */
	size_t n;
	char *got = at_lines(&C, &n), *ev = kt_read_file(events, NULL);
	cr_expect_eq(n, 7);
	cr_expect_eq(kt_count(ev, "\"type\":\"log\",\"stream\":\"stdout\""), 7, "%s", ev);
	free(got);
	free(ev);

	free(api_report);
	free(lwork);
	free(lreport);
	free(lpipe);
	free(task);
	free(art);
	free(events);
}
