/*
 * api_script.c - the answers to GET /tasks/{id}/script run by the execute
 * stage: keruta-api's ScriptResponse ({taskId, script: {installScript,
 * executeScript, cleanupScript}, environment}) and the original agent's
 * shape ({success, taskId, script: {content, language, filename,
 * parameters}}): the interpreter its language names (a #! line wins), the
 * file under .keruta/script/ whatever name the server sends, the
 * environment in the child's, and the status body of the original agent
 * ({status, message, progress, errorCode}).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_util.h"

static at_ctx C;
static const char *const token_env[] = {"KERUTA_API_TOKEN=s3cret-token", NULL};

static void setup(void)
{
	const char *const args[] = {"--token", "s3cret-token", NULL};
	at_start(&C, args);
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nphases:\n  execute: [execute]\n"
	                          "stages:\n  execute:\n    plugin: execute\n") > 0);
	kt_write_file(C.pipeline, text);
	free(text);
}

static void teardown(void)
{
	at_stop(&C);
}

TestSuite(api_script, .init = setup, .fini = teardown, .timeout = 120);

static void seed_script(const char *script_json)
{
	char *seed = NULL;
	cr_assert(asprintf(&seed, "{\"scripts\":{\"t1\":%s}}", script_json) > 0);
	at_control(&C, "/_control/seed", seed);
	free(seed);
}

/* The status bodies keruta-api received for t1, as one JSON text. */
static char *statuses(void)
{
	json_object *st = at_get(&C, "/_control/state"), *all, *t1;
	char *out = NULL;
	if (json_object_object_get_ex(st, "statuses", &all) &&
	    json_object_object_get_ex(all, "t1", &t1))
		out = strdup(json_object_to_json_string_ext(t1, JSON_C_TO_STRING_PLAIN));
	json_object_put(st);
	return out ? out : strdup("");
}

Test(api_script, language_filename_and_env_as_keruta_api_sends_them)
{
	if (system("command -v python3 >/dev/null 2>&1") != 0)
		cr_skip_test("python3 is not installed");
	seed_script("{\"content\":\"import os\\nprint('python ran', os.environ['GREETING'], "
	            "os.environ.get('KERUTA_TASK_ID'))\\n\",\"language\":\"python\","
	            "\"filename\":\"../../evil.py\",\"parameters\":{\"env\":{\"GREETING\":\"hello "
	            "world\"}}}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.out, "python ran hello world t1"), "%s\n%s", r.out, r.err);
	char *inside = kt_path(C.work, ".keruta/tasks/t1/script/evil.py");
	char *outside = kt_path(C.dir, "evil.py");
	struct stat st;
	cr_expect_eq(stat(inside, &st), 0, "the script is kept at %s", inside);
	cr_expect_neq(stat(outside, &st), 0, "nothing may be written outside the work dir");
	free(inside);
	free(outside);
	char *got = statuses();
	cr_expect_str_eq(got, "[{\"status\":\"IN_PROGRESS\"},"
	                      "{\"status\":\"COMPLETED\",\"progress\":\"100\"}]");
	free(got);
	kt_result_free(&r);
}

Test(api_script, a_shebang_wins_over_the_language)
{
	seed_script("{\"content\":\"#!/bin/sh\\necho shell ran \\\"$0\\\"\\n\",\"language\":\"python\","
	            "\"filename\":\"run.py\"}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.out, "shell ran "), "%s\n%s", r.out, r.err);
	cr_expect(kt_contains(r.out, "/.keruta/tasks/t1/script/run.py"), "%s", r.out);
	kt_result_free(&r);
}

Test(api_script, hostile_file_names_stay_inside_the_script_dir)
{
	static const struct {
		const char *given, *kept;
	} cases[] = {{"..", "script"},
	             {"../../../../tmp/x.sh", "x.sh"},
	             {"/nonexistent-keruta-test/passwd", "passwd"},
	             {"a/b/../../c.sh", "c.sh"},
	             {".bashrc", "bashrc"},
	             {"sub\\\\..\\\\..\\\\win.bat", "win.bat"},
	             {"new\\nline $(id).sh", "new_line___id_.sh"},
	             {"plain-name.sh", "plain-name.sh"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *seed = NULL;
		cr_assert(asprintf(&seed, "{\"content\":\"echo ran\\n\",\"language\":\"sh\","
		                          "\"filename\":\"%s\"}",
		                   cases[i].given) > 0);
		seed_script(seed);
		free(seed);
		kt_result r;
		cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 0, "case %zu stderr:\n%s", i, r.err);
		char *want = NULL;
		cr_assert(asprintf(&want, "%s/.keruta/tasks/t1/script/%s", C.work, cases[i].kept) > 0);
		struct stat st;
		cr_expect(stat(want, &st) == 0 && S_ISREG(st.st_mode), "case %zu: %s missing; %s", i,
		          want, r.err);
		/* a changed name is said; a name kept as given is not */
		cr_expect_eq(kt_contains(r.err, "written as"), strcmp(cases[i].given, cases[i].kept) != 0,
		             "case %zu: %s", i, r.err);
		free(want);
		kt_result_free(&r);
	}
}

Test(api_script, an_unknown_language_fails_clearly)
{
	seed_script("{\"content\":\"DISPLAY 'HI'.\\n\",\"language\":\"cobol\"}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 1, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "language 'cobol'"), "%s", r.err);
	char *got = statuses();
	cr_expect(kt_contains(got, "\"status\":\"FAILED\""), "%s", got);
	cr_expect(kt_contains(got, "\"errorCode\":\"SCRIPT_EXECUTION_ERROR\""), "%s", got);
	free(got);
	kt_result_free(&r);
}

Test(api_script, a_failing_script_sends_execution_error)
{
	seed_script("{\"content\":\"echo failing; exit 3\\n\",\"language\":\"bash\"}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 1, "stderr:\n%s", r.err);
	char *got = statuses();
	cr_expect(kt_contains(got, "{\"status\":\"FAILED\",\"message\":\"stage execute failed: the "
	                           "command failed with exit code 3\",\"errorCode\":\"EXECUTION_ERROR\"}"),
	          "%s", got);
	free(got);
	kt_result_free(&r);
}

Test(api_script, the_flat_shape_still_works)
{
	at_control(&C, "/_control/seed",
	           "{\"flatScripts\":{\"t1\":{\"executeScript\":\"echo flat ran\\n\"}}}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.out, "flat ran"), "%s", r.out);
	kt_result_free(&r);
}

/* keruta-api's ScriptResponse as its controller builds it: the three
 * scripts inside "script", the environment beside it. */
Test(api_script, keruta_api_script_response_runs_its_execute_script_with_its_environment)
{
	seed_script("{\"executeScript\":\"echo response ran \\\"$GREETING\\\"\\n\","
	            "\"environment\":{\"GREETING\":\"hello\"}}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.out, "response ran hello"), "%s\n%s", r.out, r.err);
	kt_result_free(&r);
}

/* keruta-api's environment is a Map<String, String>: a null value is an
 * empty one; JSON numbers and booleans are taken as their text. */
Test(api_script, keruta_api_environment_null_number_and_boolean_values)
{
	seed_script("{\"executeScript\":\"echo \\\"[${EMPTY-unset}] $NUM $YES\\\"\\n\","
	            "\"environment\":{\"EMPTY\":null,\"NUM\":42,\"YES\":true}}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.out, "[] 42 true\n"), "%s\n%s", r.out, r.err);
	kt_result_free(&r);
}

Test(api_script, keruta_api_environment_with_a_bad_name_is_refused)
{
	seed_script("{\"executeScript\":\"echo never\\n\",\"environment\":{\"BAD NAME\":\"x\"}}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 1, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.err, "environment entry 'BAD NAME'"), "%s", r.err);
	cr_expect(!kt_contains(r.out, "never"), "%s", r.out);
	kt_result_free(&r);
}

Test(api_script, a_symlink_in_place_of_the_script_dir_is_not_followed)
{
	/* task code of an earlier stage may plant one in the task's area */
	char *elsewhere = kt_path(C.dir, "elsewhere");
	char *area = kt_path(C.work, ".keruta/tasks/t1");
	char *link = kt_path(C.work, ".keruta/tasks/t1/script");
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "mkdir -p '%s' '%s' && ln -s '%s' '%s'", elsewhere, area, elsewhere,
	                   link) > 0);
	cr_assert_eq(system(cmd), 0);
	seed_script("{\"content\":\"echo ran\\n\",\"language\":\"sh\",\"filename\":\"run.sh\"}");
	kt_result r;
	cr_assert_eq(at_agent(&C, &r, NULL, token_env, 60), 0, "stderr:\n%s", r.err);
	cr_expect(kt_contains(r.out, "ran\n"), "%s\n%s", r.out, r.err);
	char *outside = kt_path(elsewhere, "run.sh");
	struct stat st;
	cr_expect_neq(lstat(outside, &st), 0, "the script was written through the symlink");
	cr_expect(lstat(link, &st) == 0 && S_ISDIR(st.st_mode), "script/ is a directory again");
	free(outside);
	free(cmd);
	free(link);
	free(area);
	free(elsewhere);
	kt_result_free(&r);
}
