/*
 * api_noload.c - commands that do not talk to keruta-api never load
 * libcurl or json-c (start-up cost): the dynamic loader's own trace
 * (LD_DEBUG=files) of `validate`, `plugins` and a local run is checked,
 * against `version`, which does load the module, as the control.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_util.h"

static at_ctx C;

static void setup(void)
{
	C.dir = kt_tmpdir();
	C.work = kt_path(C.dir, "work");
	C.report = kt_path(C.dir, "report");
	C.pipeline = kt_path(C.dir, "pipeline.yaml");
	at_pipeline(&C, "count: 3", NULL);
}

static void teardown(void)
{
	kt_rmrf(C.dir);
	free(C.dir);
	free(C.work);
	free(C.report);
	free(C.pipeline);
}

TestSuite(api_noload, .init = setup, .fini = teardown, .timeout = 60);

static const char *const ld_env[] = {"LD_DEBUG=files", NULL};

static void expect_not_loaded(const char *const *argv, const char *what)
{
	kt_result r;
	cr_assert(kt_run(&r, argv, ld_env, C.dir, NULL, 30) == 0);
	cr_expect_eq(r.status, 0, "%s failed:\n%s", what, r.err);
	cr_expect(kt_contains(r.err, "file="), "no loader trace for %s", what);
	cr_expect(!kt_contains(r.err, "libcurl"), "%s loaded libcurl", what);
	cr_expect(!kt_contains(r.err, "libjson-c"), "%s loaded json-c", what);
	cr_expect(!kt_contains(r.err, "backend-api"), "%s loaded the api module", what);
	kt_result_free(&r);
}

Test(api_noload, validate_does_not_load_libcurl)
{
	const char *const argv[] = {kt_agent(), "validate", C.pipeline, NULL};
	expect_not_loaded(argv, "validate");
}

Test(api_noload, plugins_does_not_load_libcurl)
{
	/* only our fixture: the broken ones of the core tests would fail the listing */
	char *fx = kt_path(C.dir, "fx"), *cmd = NULL;
	cr_assert(asprintf(&cmd, "mkdir -p '%s' && cp '%s/tests/fixtures/.libs/api_lines.so' '%s/'",
	                   fx, kt_builddir(), fx) > 0);
	cr_assert(system(cmd) == 0);
	free(cmd);
	const char *const argv[] = {kt_agent(), "plugins", "--plugin-dir", fx, NULL};
	expect_not_loaded(argv, "plugins");
	free(fx);
}

Test(api_noload, local_run_does_not_load_libcurl)
{
	char *task = kt_path(C.dir, "task.yaml");
	kt_write_file(task, "id: t1\n");
	const char *const argv[] = {kt_agent(), "execute", "--task-file", task, "--work-dir", C.dir,
	                            "--pipeline", C.pipeline, "--termination-log", "/dev/null",
	                            NULL};
	expect_not_loaded(argv, "a local run");
	free(task);
}

Test(api_noload, version_loads_it_as_a_control)
{
	const char *const argv[] = {kt_agent(), "version", NULL};
	kt_result r;
	cr_assert(kt_run(&r, argv, ld_env, C.dir, NULL, 30) == 0);
	cr_expect(kt_contains(r.err, "libcurl"), "the check above cannot see libcurl:\n%.2000s",
	          r.err);
	cr_expect(kt_contains(r.out, "libcurl 7") || kt_contains(r.out, "libcurl 8"), "%s", r.out);
	cr_expect(kt_contains(r.out, "json-c 0."), "%s", r.out);
	kt_result_free(&r);
}
