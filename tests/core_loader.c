/*
 * The plugin loader: each failure is one clear message (and, through the
 * binary, one line and exit status 2), never a crash; the search order is
 * --plugin-dir, KERUTA_PLUGIN_PATH, the pipeline's plugin_path, installed.
 */
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "krtest.h"
#include "loader.h"
#include "module.h"

/* "MAJOR.MINOR" of the agent under test: the messages must follow a bump. */
static const char *agent_abi(void)
{
	static char v[32];
	snprintf(v, sizeof(v), "%d.%d", KR_ABI_MAJOR, KR_ABI_MINOR);
	return v;
}

static char *fixtures(void)
{
	return kt_path(kt_builddir(), "tests/fixtures/.libs");
}

static char *fixture(const char *name)
{
	char *dir = fixtures();
	char file[128];
	snprintf(file, sizeof(file), "%s.so", name);
	char *p = kt_path(dir, file);
	free(dir);
	return p;
}

static void copy(const char *from, const char *to)
{
	size_t len;
	char *data = kt_read_file(from, &len);
	cr_assert_not_null(data, "cannot read %s", from);
	kt_write_bytes(to, data, len);
	free(data);
}

/* Load `name` from the fixtures directory; return the error message. */
static char *load_error(const char *name)
{
	kr_loader l;
	kr_error err = {0};
	kr_loader_init(&l);
	char *dir = fixtures();
	kr_loader_add_dir(&l, dir);
	const kr_loaded *p = kr_loader_load(&l, name, &err);
	cr_assert_null(p, "plugin %s loaded but must be refused", name);
	cr_expect_eq(err.code, 2);
	kr_loader_free(&l);
	free(dir);
	return strdup(err.msg);
}

Test(loader, good_plugin_loads_and_is_cached)
{
	kr_loader l;
	kr_error err = {0};
	kr_loader_init(&l);
	char *dir = fixtures();
	kr_loader_add_dir(&l, dir);
	const kr_loaded *a = kr_loader_load(&l, "fx_ok", &err);
	cr_assert_not_null(a, "%s", err.msg);
	cr_expect_str_eq(a->desc->name, "fx_ok");
	cr_expect_eq(a->desc->abi_major, KR_ABI_MAJOR);
	cr_expect_eq(kr_loader_load(&l, "fx_ok", &err), a);
	kr_loader_free(&l);
	free(dir);
}

Test(loader, not_found_lists_every_directory_searched)
{
	kr_loader l;
	kr_error err = {0};
	kr_loader_init(&l);
	kr_loader_add_dir(&l, "/nonexistent/one");
	kr_loader_add_path_list(&l, "/nonexistent/two::/nonexistent/three");
	cr_assert_null(kr_loader_load(&l, "nosuch", &err));
	cr_expect(strstr(err.msg, "plugin 'nosuch' not found") != NULL, "%s", err.msg);
	cr_expect(strstr(err.msg, "/nonexistent/one, /nonexistent/two, /nonexistent/three") != NULL,
	          "%s", err.msg);
	kr_loader_free(&l);
}

Test(loader, other_major_is_refused_naming_both_versions)
{
	char *msg = load_error("fx_major");
	char want[128];
	snprintf(want, sizeof(want), "built for plugin ABI %d.0, but this agent speaks ABI %s",
	         KR_ABI_MAJOR + 1, agent_abi());
	cr_expect(strstr(msg, want) != NULL, "%s", msg);
	free(msg);
}

Test(loader, newer_minor_is_refused)
{
	char *msg = load_error("fx_minor");
	char want[128];
	snprintf(want, sizeof(want), "built for plugin ABI %d.%d, newer than this agent's ABI %s",
	         KR_ABI_MAJOR, KR_ABI_MINOR + 1, agent_abi());
	cr_expect(strstr(msg, want) != NULL, "%s", msg);
	free(msg);
}

Test(loader, missing_descriptor_is_not_a_plugin)
{
	char *msg = load_error("fx_nodesc");
	cr_expect(strstr(msg, "not a keruta-agent plugin: it exports no 'keruta_plugin'") != NULL,
	          "%s", msg);
	free(msg);
}

Test(loader, missing_run_callback)
{
	char *msg = load_error("fx_norun");
	cr_expect(strstr(msg, "descriptor has no run callback") != NULL, "%s", msg);
	free(msg);
}

Test(loader, truncated_descriptor)
{
	char *msg = load_error("fx_small");
	cr_expect(strstr(msg, "descriptor is 8 bytes") != NULL, "%s", msg);
	free(msg);
}

Test(loader, option_of_an_unknown_type)
{
	char *msg = load_error("fx_opttype");
	cr_expect(strstr(msg, "option 'mode' has unknown type 42") != NULL, "%s", msg);
	free(msg);
}

Test(loader, text_file_is_not_a_shared_object)
{
	char *dir = kt_tmpdir();
	char *path = kt_path(dir, "bogus.so");
	kt_write_file(path, "#!/bin/sh\necho not an ELF file\n");
	kr_loader l;
	kr_error err = {0};
	kr_loader_init(&l);
	kr_loader_add_dir(&l, dir);
	cr_assert_null(kr_loader_load(&l, "bogus", &err));
	cr_expect(strstr(err.msg, "cannot load plugin") != NULL, "%s", err.msg);
	kr_loader_free(&l);
	kt_rmrf(dir);
	free(path);
	free(dir);
}

Test(loader, file_name_must_match_descriptor)
{
	char *dir = kt_tmpdir();
	char *src = fixture("fx_ok");
	char *dst = kt_path(dir, "other.so");
	copy(src, dst);
	kr_loader l;
	kr_error err = {0};
	kr_loader_init(&l);
	kr_loader_add_dir(&l, dir);
	cr_assert_null(kr_loader_load(&l, "other", &err));
	cr_expect(strstr(err.msg, "named 'other' but its descriptor says 'fx_ok'") != NULL, "%s",
	          err.msg);
	kr_loader_free(&l);
	kt_rmrf(dir);
	free(src);
	free(dst);
	free(dir);
}

Test(loader, hostile_names_are_refused_before_any_file_access)
{
	kr_loader l;
	kr_error err = {0};
	kr_loader_init(&l);
	kr_loader_add_dir(&l, "/tmp");
	cr_assert_null(kr_loader_load(&l, "..", &err));
	cr_expect(strstr(err.msg, "plugin name '..' is not valid") != NULL, "%s", err.msg);
	kr_error_clear(&err);
	cr_assert_null(kr_loader_load(&l, "a b", &err));
	cr_expect(strstr(err.msg, "is not valid") != NULL, "%s", err.msg);
	kr_loader_free(&l);
}

Test(loader, search_order_flag_env_pipeline)
{
	char *root = kt_tmpdir();
	char *dirs[4];
	const char *names[4] = {"flag", "env", "pipe", "unused"};
	for (int i = 0; i < 4; i++) {
		dirs[i] = kt_path(root, names[i]);
		cr_assert_eq(kr_mkdirs(dirs[i], 0755), 0);
	}
	char *src = fixture("fx_ok");
	char *in_env = kt_path(dirs[1], "fx_ok.so");
	char *in_pipe = kt_path(dirs[2], "fx_ok.so");
	char *in_flag = kt_path(dirs[0], "fx_ok.so");
	copy(src, in_env);
	copy(src, in_pipe);

	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nplugin_path: [%s]\nphases: {}\n", dirs[2]) > 0);
	kr_error err = {0};
	kr_pipeline *p = kr_pipeline_parse("p.yaml", text, strlen(text), &err);
	cr_assert_not_null(p, "%s", err.msg);
	kr_settings *s = kr_settings_new();
	kr_settings_set(s, KR_S_PLUGIN_DIR, dirs[0]);
	char *env = NULL;
	cr_assert(asprintf(&env, "%s:%s", dirs[3], dirs[1]) > 0);
	setenv("KERUTA_PLUGIN_PATH", env, 1);

	kr_loader l;
	kr_loader_init(&l);
	kr_agent_plugin_dirs(&l, s, p);
	cr_assert_geq(l.n_dirs, 5);
	cr_expect_str_eq(l.dirs[0], dirs[0]);
	cr_expect_str_eq(l.dirs[1], dirs[3]);
	cr_expect_str_eq(l.dirs[2], dirs[1]);
	cr_expect_str_eq(l.dirs[3], dirs[2]);
	const kr_loaded *pl = kr_loader_load(&l, "fx_ok", &err);
	cr_assert_not_null(pl, "%s", err.msg);
	cr_expect_str_eq(pl->path, in_env, "the environment's directory comes before plugin_path");
	kr_loader_free(&l);

	copy(src, in_flag);
	kr_loader_init(&l);
	kr_agent_plugin_dirs(&l, s, p);
	pl = kr_loader_load(&l, "fx_ok", &err);
	cr_assert_not_null(pl, "%s", err.msg);
	cr_expect_str_eq(pl->path, in_flag, "--plugin-dir comes first");
	kr_loader_free(&l);

	kr_settings_free(s);
	kr_pipeline_free(p);
	kt_rmrf(root);
	free(root);
	for (int i = 0; i < 4; i++)
		free(dirs[i]);
	free(src);
	free(in_env);
	free(in_pipe);
	free(in_flag);
	free(text);
	free(env);
}

/* Through the binary: `validate` on a pipeline with one stage `s` (its
 * flow mapping body) and a settings block; one line on stderr naming
 * where (file:line:col), exit status 2, no crash. */
static void validate_stage_fails(const char *stage, const char *settings, const char *fragment,
                                 const char *where)
{
	char *dir = kt_tmpdir();
	char *pipeline = kt_path(dir, "p.yaml");
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nphases:\n  execute: [s]\nstages:\n  s: {%s}\n%s%s",
	                   stage, settings ? "settings:\n" : "", settings ? settings : "") > 0);
	kt_write_file(pipeline, text);
	char *fx = fixtures();
	const char *argv[] = {kt_agent(), "validate", pipeline, "--plugin-dir", fx,
	                      "--log-format", "text", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 30), 0);
	cr_expect_eq(r.status, 2, "exit status %d for %s; stderr: %s", r.status, text, r.err);
	cr_expect_eq(kt_count(r.err, "\n"), 1, "want exactly one line, got: %s", r.err);
	cr_expect(kt_contains(r.err, fragment), "want '%s' in: %s", fragment, r.err);
	cr_expect(kt_contains(r.err, where), "want '%s' (where) in: %s", where, r.err);
	kt_result_free(&r);
	kt_rmrf(dir);
	free(dir);
	free(pipeline);
	free(text);
	free(fx);
}

static void validate_fails_with(const char *plugin, const char *fragment)
{
	char stage[128];
	snprintf(stage, sizeof(stage), "plugin: %s", plugin);
	validate_stage_fails(stage, NULL, fragment, "p.yaml:5:");
}

/* Durations, sizes and numbers are finite decimals: strtod's "nan" (which
 * switched a timeout off), "inf" and hex are refused where they are
 * written. */
Test(loader_cli, nan_inf_and_hex_are_not_numbers)
{
	static const char *const bad[] = {"nan", "NaN", "nan(0x1)", "inf", "-inf", "infinity",
	                                  "0x10", "0x1p4", " 5", ".", "1e", "e5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char stage[128];
		snprintf(stage, sizeof(stage), "plugin: fx_ok, timeout: \"%s\", with: {trace: t}", bad[i]);
		validate_stage_fails(stage, NULL, "'timeout' must be a duration", "p.yaml:5:31:");
		char settings[128];
		snprintf(settings, sizeof(settings), "  log_max_total: \"%s\"\n", bad[i]);
		validate_stage_fails("plugin: fx_ok, with: {trace: t}", settings, "must be a size", "p.yaml:7:");
		snprintf(settings, sizeof(settings), "  api_retry_max_time: \"%s\"\n", bad[i]);
		validate_stage_fails("plugin: fx_ok, with: {trace: t}", settings, "must be a duration", "p.yaml:7:");
		snprintf(settings, sizeof(settings), "  log_batch_lines: \"%s\"\n", bad[i]);
		validate_stage_fails("plugin: fx_ok, with: {trace: t}", settings, "must be a non-negative integer",
		                     "p.yaml:7:");
	}
	/* what stays valid */
	validate_stage_fails("plugin: fx_ok, timeout: 1.5m, with: {trace: t}", "  log_max_total: 1e3\n  nope: 1\n",
	                     "unknown key 'nope'", "p.yaml:8:3:");
}

Test(loader_cli, each_failure_is_one_line_and_exit_2)
{
	validate_fails_with("nosuch", "plugin 'nosuch' not found");
	char major[64], minor[64];
	snprintf(major, sizeof(major), "but this agent speaks ABI %s", agent_abi());
	snprintf(minor, sizeof(minor), "newer than this agent's ABI %s", agent_abi());
	validate_fails_with("fx_major", major);
	validate_fails_with("fx_minor", minor);
	validate_fails_with("fx_nodesc", "not a keruta-agent plugin");
	validate_fails_with("fx_norun", "no run callback");
	validate_fails_with("fx_opttype", "option 'mode' has unknown type 42");
}

/* A FIFO or a directory as the pipeline file: said so at once, never read
 * (a FIFO hung the agent). */
Test(loader_cli, pipeline_that_is_not_a_file, .timeout = 60)
{
	char *dir = kt_tmpdir();
	char *fifo = kt_path(dir, "p.yaml");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	const char *argv[] = {kt_agent(), "validate", fifo, "--log-format", "text", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 20), 0);
	cr_expect(!r.timed_out, "the agent hung on a FIFO");
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "is not a regular file"), "%s", r.err);
	kt_result_free(&r);
	const char *argv2[] = {kt_agent(), "validate", dir, "--log-format", "text", NULL};
	cr_assert_eq(kt_run(&r, argv2, NULL, NULL, NULL, 20), 0);
	cr_expect_eq(r.status, 2, "%s", r.err);
	cr_expect(kt_contains(r.err, "is a directory"), "%s", r.err);
	kt_result_free(&r);
	kt_rmrf(dir);
	free(dir);
	free(fifo);
}

Test(loader_cli, plugins_lists_good_and_bad)
{
	char *fx = fixtures();
	const char *argv[] = {kt_agent(), "plugins", "-v", "--plugin-dir", fx, NULL};
	const char *env[] = {"KERUTA_PIPELINE=/nonexistent.yaml", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, env, NULL, NULL, 30), 0);
	cr_expect_eq(r.status, 2, "invalid plugins in the path make the listing fail: %s", r.out);
	char fx_ok[64], hello[64];
	snprintf(fx_ok, sizeof(fx_ok), "fx_ok            %s", agent_abi());
	snprintf(hello, sizeof(hello), "hello            %s", agent_abi());
	cr_expect(kt_contains(r.out, fx_ok), "%s", r.out);
	cr_expect(kt_contains(r.out, "with trace"), "options are listed with -v: %s", r.out);
	cr_expect(kt_contains(r.out, "with trace            string   "), "with their type: %s",
	          r.out);
	cr_expect(kt_contains(r.out, "fx_major.so      INVALID"), "%s", r.out);
	cr_expect(kt_contains(r.out, hello), "%s", r.out);
	kt_result_free(&r);
	free(fx);
}

/* The file to check is named positionally, with --pipeline, or by
 * KERUTA_PIPELINE, like every other command. */
Test(loader_cli, validate_takes_the_file_every_way)
{
	char *dir = kt_tmpdir();
	char *pipeline = kt_path(dir, "v.yaml");
	kt_write_file(pipeline, "version: 1\nphases:\n  execute: [s]\nstages:\n"
	                        "  s: {plugin: fx_ok, with: {trace: t.log}}\n");
	char *fx = fixtures();
	char *env_var = NULL;
	cr_assert(asprintf(&env_var, "KERUTA_PIPELINE=%s", pipeline) > 0);
	const char *by_arg[] = {kt_agent(), "validate", pipeline, "--plugin-dir", fx, NULL};
	const char *by_flag[] = {kt_agent(), "validate", "--pipeline", pipeline, "--plugin-dir", fx, NULL};
	const char *by_env[] = {kt_agent(), "validate", "--plugin-dir", fx, NULL};
	const char *const *argvs[] = {by_arg, by_flag, by_env};
	const char *env[] = {env_var, NULL};
	for (int i = 0; i < 3; i++) {
		kt_result r;
		cr_assert_eq(kt_run(&r, argvs[i], i == 2 ? env : NULL, NULL, NULL, 30), 0);
		cr_expect_eq(r.status, 0, "way %d: exit %d: %s", i, r.status, r.err);
		cr_expect(kt_contains(r.out, "v.yaml: valid (execute: 1"), "way %d: %s", i, r.out);
		kt_result_free(&r);
	}
	kt_rmrf(dir);
	free(dir);
	free(pipeline);
	free(fx);
	free(env_var);
}

/* `cmd` (render or execute) with the module variable set to `mod` and
 * KT_STALE_STAMP to `how`: exit 4 with a message holding `want` and what
 * to do (`todo`), and the module's entry point never called. */
static void expect_module_refused(const char *cmd, const char *mod, const char *how,
                                  const char *want, const char *todo)
{
	char *dir = kt_tmpdir();
	char *mark = kt_path(dir, "called");
	char *task = kt_path(dir, "task.yaml");
	char *pipeline = kt_path(kt_srcdir(), "conf/pipeline.yaml");
	kt_write_file(task, "id: t-1\ntitle: module\n");
	char *env[4] = {NULL};
	int render = strcmp(cmd, "render") == 0;
	cr_assert(asprintf(&env[0], "%s=%s",
	                   render ? "KERUTA_LAUNCHER_MODULE" : "KERUTA_API_MODULE", mod) > 0);
	cr_assert(asprintf(&env[1], "KT_STALE_MARK=%s", mark) > 0);
	cr_assert(asprintf(&env[2], "KT_STALE_STAMP=%s", how) > 0);
	const char *argv_render[] = {kt_agent(), "render", "--task-file", task, NULL};
	const char *argv_exec[] = {kt_agent(), "execute", "--pipeline", pipeline, "--task-id", "t-1",
	                           "--api-url", "http://127.0.0.1:9", "--work-dir", dir, NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, render ? argv_render : argv_exec, (const char *const *)env, dir,
	                    NULL, 30), 0);
	cr_expect_eq(r.status, 4, "%s %s: exit %d: %s", cmd, how, r.status, r.err);
	cr_expect(kt_contains(r.err, want), "%s %s: want '%s' in: %s", cmd, how, want, r.err);
	cr_expect(kt_contains(r.err, todo), "%s %s: want '%s' in: %s", cmd, how, todo, r.err);
	cr_expect(access(mark, F_OK) != 0, "%s %s: the module was called", cmd, how);
	kt_result_free(&r);
	for (int i = 0; i < 3; i++)
		free(env[i]);
	kt_rmrf(dir);
	free(dir);
	free(mark);
	free(task);
	free(pipeline);
}

#define REINSTALL "reinstall keruta-agent"

/* A launcher.so or backend-api.so from another build reads the settings
 * table with another layout: refused before anything in it runs, saying
 * what to do.  Each field of the stamp is checked on its own: a module of
 * this version built with another settings table or module ABI is refused
 * too. */
Test(loader_cli, a_module_from_another_build_is_refused_unused, .timeout = 120)
{
	char *mod = kt_path(kt_builddir(), "tests/fixtures/.libs/stale_module.so");
	static const char *const cmds[] = {"render", "execute"};
	char *settings = NULL, *abi = NULL;
	cr_assert(asprintf(&settings, "(version %s, %u settings", PACKAGE_VERSION,
	                   (unsigned)KR_S_COUNT + 1) > 0);
	cr_assert(asprintf(&abi, "module ABI %u; this agent", (unsigned)KR_MODULE_ABI + 1) > 0);
	expect_module_refused("render", mod, "", "launcher module of another keruta-agent build",
	                      REINSTALL);
	expect_module_refused("execute", mod, "", "keruta-api module of another keruta-agent build",
	                      REINSTALL);
	for (int i = 0; i < 2; i++) {
		expect_module_refused(cmds[i], mod, "noversion", "(version ?,", REINSTALL);
		expect_module_refused(cmds[i], mod, "settings", settings, REINSTALL);
		expect_module_refused(cmds[i], mod, "abi", abi, REINSTALL);
	}
	free(settings);
	free(abi);
	free(mod);
}

/* A shared object that is not the module (here a stage plugin) is named,
 * with the symbol it lacks. */
Test(loader_cli, a_module_without_its_symbol_is_refused, .timeout = 60)
{
	char *mod = kt_path(kt_builddir(), "tests/fixtures/.libs/fx_ok.so");
	expect_module_refused("render", mod, "",
	                      "is not the launcher module of keruta-agent: it has no "
	                      "kr_launcher_module",
	                      REINSTALL);
	expect_module_refused("execute", mod, "",
	                      "is not the keruta-api module of keruta-agent: it has no "
	                      "kr_backend_api_module",
	                      REINSTALL);
	free(mod);
}

/* A module file that is missing: the path, dlopen's reason and the
 * variable that moves it.  `version` still answers, saying the keruta-api
 * module is not loaded; without the variable the installed path is
 * tried. */
Test(loader_cli, a_missing_module_is_named, .timeout = 60)
{
	char *dir = kt_tmpdir();
	char *mod = kt_path(dir, "no-such-module.so");
	expect_module_refused("render", mod, "", "cannot load the launcher module",
	                      "KERUTA_LAUNCHER_MODULE names another file");
	expect_module_refused("execute", mod, "", "cannot load the keruta-api module",
	                      "KERUTA_API_MODULE names another file");

	char *env[2] = {NULL};
	cr_assert(asprintf(&env[0], "KERUTA_API_MODULE=%s", mod) > 0);
	const char *version[] = {kt_agent(), "version", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, version, (const char *const *)env, dir, NULL, 30), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.out, "keruta-agent " PACKAGE_VERSION), "%s", r.out);
	cr_expect(kt_contains(r.out, "(keruta-api module not loaded: cannot load the keruta-api "
	                             "module "),
	          "%s", r.out);
	cr_expect(kt_contains(r.out, mod), "%s", r.out);
	kt_result_free(&r);
	free(env[0]);

	/* empty: the installed module, which a build tree may not have yet */
	const char *unset[] = {"KERUTA_API_MODULE=", NULL};
	cr_assert_eq(kt_run(&r, version, unset, dir, NULL, 30), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	if (kt_contains(r.out, "not loaded"))
		cr_expect(kt_contains(r.out, "/keruta-agent/backend-api.so"), "%s", r.out);
	else
		cr_expect(kt_contains(r.out, "libcurl"), "%s", r.out);
	kt_result_free(&r);
	kt_rmrf(dir);
	free(dir);
	free(mod);
}
