/*
 * Option rows across ABI minors (core/loader.c): a plugin's descriptor and
 * option rows are read up to min(its size, the agent's), so a plugin built
 * against 1.2 (rows of the 1.0 layout, no option_size) and one whose rows
 * and descriptor are larger than the agent's both load with working
 * options; a table whose defaults or bindings cannot work refuses the
 * plugin naming it and the option; bound options land in the plugin's
 * state, one member per option.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "krtest.h"
#include "loader.h"

/* Run `keruta-agent CMD` (execute or validate) in local mode on a pipeline
 * whose one stage `a` has the flow mapping body `stage`. */
static void agent(kt_result *r, const char *cmd, const char *stage)
{
	char *dir = kt_tmpdir();
	char *work = kt_path(dir, "work");
	char *pipeline = kt_path(dir, "p.yaml");
	char *task = kt_path(dir, "task.yaml");
	char *fx = kt_path(kt_builddir(), "tests/fixtures/.libs");
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nphases:\n  execute: [a]\nstages:\n  a: {%s}\n",
	                   stage) > 0);
	kt_write_file(pipeline, text);
	kt_write_file(task, "id: t-1\ntitle: rows\n");
	const char *run[] = {kt_agent(), "execute", "--pipeline", pipeline, "--task-file", task,
	                     "--work-dir", work, "--plugin-dir", fx, "--termination-log", "",
	                     "--log-format", "text", NULL};
	const char *check[] = {kt_agent(), "validate", pipeline, "--plugin-dir", fx,
	                       "--log-format", "text", NULL};
	cr_assert_eq(kt_run(r, strcmp(cmd, "execute") == 0 ? run : check, NULL, NULL, NULL, 60), 0);
	kt_rmrf(dir);
	free(dir);
	free(work);
	free(pipeline);
	free(task);
	free(fx);
	free(text);
}

static void expect_line(const char *stage, const char *line)
{
	kt_result r;
	agent(&r, "execute", stage);
	cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, line), "want '%s' in: %s", line, r.err);
	kt_result_free(&r);
}

Test(rows, a_plugin_built_for_1_2_loads_and_its_options_work, .timeout = 120)
{
	expect_line("plugin: fx_oldrows",
	            "oldrows: greeting=hello count=7 flag=0 wait=120000 limit=1024 items=\n");
	expect_line("plugin: fx_oldrows, with: {greeting: hi, count: 3, flag: true, wait: 5s, "
	            "limit: 2KiB, items: [x, y]}",
	            "oldrows: greeting=hi count=3 flag=1 wait=5000 limit=2048 items=x|y\n");
	/* its rows are its own: a key it does not declare is still refused */
	kt_result r;
	agent(&r, "validate", "plugin: fx_oldrows, with: {nope: 1}");
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "unknown key 'nope'"), "%s", r.err);
	kt_result_free(&r);
}

Test(rows, rows_larger_than_the_agents_load_and_their_extra_bytes_are_ignored, .timeout = 120)
{
	expect_line("plugin: fx_bigrows, with: {text: hi, number: 42, items: [a]}",
	            "bound: text=hi number=42 flag=0 wait=1000 limit=1024 items=[a] env=[](null) "
	            "unset=as init left it\n");
}

Test(rows, a_bound_option_of_each_type_lands_in_its_member, .timeout = 120)
{
	expect_line("plugin: fx_bind, with: {text: hi, number: -42, flag: true, wait: 90s, "
	            "limit: 64KiB, items: [a, b], env: {K: v, X: y}}",
	            "bound: text=hi number=-42 flag=1 wait=90000 limit=65536 items=[a|b] "
	            "env=[K|v|X|y] unset=as init left it\n");
	/* defaults; an empty list is a list; no value, no default: untouched */
	expect_line("plugin: fx_bind, with: {items: []}",
	            "bound: text=fallback number=-1 flag=0 wait=1000 limit=1024 items=[] "
	            "env=[](null) unset=as init left it\n");
}

Test(rows, a_binding_past_the_state_fails_init_and_writes_nothing, .timeout = 120)
{
	kt_result r;
	agent(&r, "execute", "plugin: fx_bind, with: {small: true}");
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "init failed: stage 'a': option 'env' is bound at bytes"),
	          "%s", r.err);
	cr_expect(!kt_contains(r.err, "wrote the state"), "%s", r.err);
	kt_result_free(&r);
}

Test(rows, a_default_that_does_not_parse_refuses_the_plugin, .timeout = 120)
{
	kt_result r;
	agent(&r, "validate", "plugin: fx_baddefault");
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "fx_baddefault.so: plugin 'fx_baddefault': option 'retries' "
	                             "(int, default 'three') has a default that is not a valid "
	                             "value of its type; fix the plugin's option table and "
	                             "rebuild it"),
	          "%s", r.err);
	kt_result_free(&r);
}

/* The table rules, on descriptors made here. */
static int dummy_run(const kr_services *svc, void *state, kr_task *t)
{
	(void)svc, (void)state, (void)t;
	return KR_OK;
}

typedef struct st {
	int64_t n;
	int small;
} st;

static void refused(const kr_option *rows, const char *fragment)
{
	kr_plugin d = {.abi_major = KR_ABI_MAJOR, .abi_minor = KR_ABI_MINOR, .size = sizeof(d),
	               .name = "p", .run = dummy_run, .options = rows,
	               .option_size = sizeof(kr_option)};
	kr_error err = {0};
	cr_expect_eq(kr_loader_check_descriptor(&d, "p.so", &err), -1, "accepted: %s", fragment);
	cr_expect(kt_contains(err.msg, fragment), "want '%s' in: %s", fragment, err.msg);
	cr_expect_eq(err.code, 2);
}

Test(rows, an_option_table_that_cannot_work_is_refused_naming_the_option)
{
	refused((const kr_option[]){{.name = "x", .type = KR_OPT_STRING, .default_value = "a",
	                             .required = 1},
	                            {0}},
	        "plugin 'p': option 'x' (string, default 'a') is required and has a default");
	refused((const kr_option[]){{.name = "l", .type = KR_OPT_LIST, .default_value = "a"}, {0}},
	        "option 'l' (list, default 'a') has a default, but lists and maps take none");
	refused((const kr_option[]){{.name = "b", .type = KR_OPT_BOOL, .default_value = "maybe"},
	                            {0}},
	        "option 'b' (bool, default 'maybe') has a default that is not a valid value");
	refused((const kr_option[]){{.name = "d", .type = KR_OPT_DURATION, .default_value = "soon"},
	                            {0}},
	        "option 'd' (duration, default 'soon')");
	refused((const kr_option[]){{.name = "s", .type = KR_OPT_SIZE, .default_value = "big"}, {0}},
	        "option 's' (size, default 'big')");
	refused((const kr_option[]){{.name = "two words", .type = KR_OPT_INT}, {0}},
	        "plugin 'p': option 1 has the name 'two words', which is not valid");
	refused((const kr_option[]){{.name = "", .type = KR_OPT_INT}, {0}},
	        "option 1 has the name '', which is not valid");
	refused((const kr_option[]){{.name = "a", .type = KR_OPT_INT},
	                            {.name = "a", .type = KR_OPT_SIZE},
	                            {0}},
	        "option 'a' is declared twice (rows 1 and 2)");
	refused((const kr_option[]){{.name = "small", .type = KR_OPT_INT, KR_OPT_FIELD(st, small)},
	                            {0}},
	        "option 'small' (int) is bound to a member of 4 bytes, but an option of type int is "
	        "written as 8 bytes");
}

Test(rows, a_row_size_below_the_first_layout_is_refused)
{
	static const kr_option rows[] = {{.name = "a", .type = KR_OPT_INT}, {0}};
	kr_plugin d = {.abi_major = KR_ABI_MAJOR, .abi_minor = KR_ABI_MINOR, .size = sizeof(d),
	               .name = "p", .run = dummy_run, .options = rows, .option_size = 16};
	kr_error err = {0};
	cr_expect_eq(kr_loader_check_descriptor(&d, "p.so", &err), -1);
	cr_expect(kt_contains(err.msg, "p.so: option rows of 16 bytes"), "%s", err.msg);
}
