/*
 * The boundary around the core: the executable exports none of its kr_*
 * functions, so an operator plugin reaches the agent only through
 * kr_services, and the agent's own modules get the core's API as a table
 * (core/host.h) that they check before using it.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "host.h"
#include "krtest.h"
#include "module.h"

/* A plugin that calls kr_log itself (which the modules use) instead of
 * svc->log is refused at load, saying what it may use instead. */
Test(boundary, a_plugin_calling_a_core_function_does_not_load, .timeout = 60)
{
	char *dir = kt_tmpdir();
	char *pipeline = kt_path(dir, "p.yaml");
	kt_write_file(pipeline, "version: 1\nphases:\n  execute: [s]\nstages:\n  s: {plugin: fx_coreref}\n");
	char *fx = kt_path(kt_builddir(), "tests/fixtures/.libs");
	const char *argv[] = {kt_agent(), "validate", pipeline, "--plugin-dir", fx,
	                      "--log-format", "text", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 30), 0);
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "fx_coreref.so: cannot load plugin"), "%s", r.err);
	cr_expect(kt_contains(r.err, "undefined symbol: kr_log"), "%s", r.err);
	cr_expect(kt_contains(r.err, "only through the kr_services table"), "%s", r.err);
	kt_result_free(&r);
	kt_rmrf(dir);
	free(dir);
	free(pipeline);
	free(fx);
}

/* The module's descriptor head, from the built module file. */
static const kr_module_head *module_head(const char *file, const char *symbol)
{
	char *path = kt_path(kt_builddir(), file);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(h, "%s: %s", path, dlerror());
	const kr_module_head *head = dlsym(h, symbol);
	cr_assert_not_null(head, "%s has no %s", path, symbol);
	cr_assert_not_null(head->init);
	free(path);
	return head; /* the module stays loaded */
}

static void expect_refused(const kr_module_head *head, const kr_host *host, const char *file)
{
	kr_error err = {0};
	cr_expect_eq(head->init(host, &err), KR_FAILED, "%s took the table", file);
	cr_expect_eq(err.code, KR_EXIT_INTERNAL, "%s: %s", file, err.msg);
	cr_expect(kt_contains(err.msg, "the executable is older than the module"), "%s: %s", file,
	          err.msg);
	cr_expect(kt_contains(err.msg, "reinstall keruta-agent"), "%s: %s", file, err.msg);
}

/* A module run by an older executable (a table of an older ABI, or one
 * that ends before the members the module calls) refuses it instead of
 * calling past its end; the table it was built with, or a newer, larger
 * one, it takes. */
Test(boundary, a_module_refuses_an_older_or_smaller_core_api)
{
	static const char *const files[][2] = {{".libs/backend-api.so", KR_BACKEND_SYMBOL},
	                                       {".libs/launcher.so", KR_LAUNCHER_SYMBOL}};
	for (size_t i = 0; i < 2; i++) {
		const kr_module_head *head = module_head(files[i][0], files[i][1]);
		kr_host older = *kr_host_get();
		older.abi = KR_HOST_ABI - 1;
		expect_refused(head, &older, files[i][0]);
		kr_host smaller = *kr_host_get();
		smaller.size = (uint32_t)offsetof(kr_host, taskfile_load);
		expect_refused(head, &smaller, files[i][0]);
		expect_refused(head, NULL, files[i][0]);

		struct {
			kr_host host;
			void (*added)(void);
		} newer = {*kr_host_get(), NULL};
		newer.host.abi = KR_HOST_ABI + 1;
		newer.host.size = sizeof(newer);
		kr_error err = {0};
		cr_expect_eq(head->init(&newer.host, &err), KR_OK, "%s: %s", files[i][0], err.msg);
		cr_expect_eq(head->init(kr_host_get(), &err), KR_OK, "%s: %s", files[i][0], err.msg);
	}
}
