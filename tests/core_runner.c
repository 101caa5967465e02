/*
 * The runner, through the real binary and the local backend: stages run
 * in order, `when:` decides what runs after a failure, timeouts stop a
 * stage, and the first failure is the task's, with its stage and reason.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "krtest.h"

/* The shared fixture; a stage's trace goes to dir/trace. */
typedef kf run;

static char *fixture_plugins(void)
{
	return kt_path(kt_builddir(), "tests/fixtures/.libs");
}

/* Run `keruta-agent execute` on a pipeline whose stages are all fx_ok;
 * `stages` is the YAML under `stages:` with @T@ standing for the trace. */
static void run_pipeline(run *x, const char *phase, const char *stages, const char *const *extra)
{
	kf_init(x, "id: t-1\ntitle: runner test\n");
	char *trace = kt_path(x->dir, "trace");

	/* substitute the trace path */
	size_t cap = strlen(stages) * 2 + 4096;
	char *body = calloc(1, cap);
	for (const char *p = stages; *p;) {
		if (strncmp(p, "@T@", 3) == 0) {
			strcat(body, trace);
			p += 3;
		} else {
			strncat(body, p, 1);
			p++;
		}
	}
	char *text = NULL;
	cr_assert(asprintf(&text, "version: 1\nphases:\n  execute: %s\nstages:\n%s", phase, body) > 0);
	kf_pipeline(x, text);
	char *fx = fixture_plugins();
	/* no termination message unless a test names the file (the last flag wins) */
	const char *argv[32] = {"--plugin-dir", fx, "--termination-log", ""};
	int n = 4;
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	cr_assert_eq(kf_run(x, &x->r, "execute", argv, NULL, 60), 0);
	free(fx);
	free(text);
	free(body);
	free(trace);
}

static void run_free(run *x)
{
	kf_free(x);
}

static char *trace_of(run *x)
{
	char *trace = kt_path(x->dir, "trace");
	char *t = kt_read_file(trace, NULL);
	free(trace);
	return t ? t : strdup("");
}

#define FX(label, extra) "  " label ": {plugin: fx_ok, with: {trace: @T@, label: " label extra "}"

Test(runner, stages_run_in_order_and_share_the_context)
{
	run x = {0};
	run_pipeline(&x, "[a, b]",
	             FX("a", "") "}\n" FX("b", ", action: check-prev") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "stderr: %s", x.r.err);
	char *t = trace_of(&x);
	/* every init before the first run; fini after all runs, in reverse */
	const char *want = "a:pass init";
	cr_expect(kt_contains(t, "a init action=pass"), "%s", t);
	(void)want;
	char *ia = strstr(t, "a init"), *ib = strstr(t, "b init"), *ra = strstr(t, "a:pass run"),
	     *rb = strstr(t, "b:check-prev run"), *fa = strstr(t, "a:pass fini"),
	     *fb = strstr(t, "b:check-prev fini");
	cr_assert(ia && ib && ra && rb && fa && fb, "%s", t);
	cr_expect(ia < ib && ib < ra && ra < rb && rb < fb && fb < fa, "order: %s", t);
	/* b saw what a left in the context */
	cr_expect(kt_contains(t, "b:check-prev a:pass"), "%s", t);
	cr_expect(kt_contains(x.events, "\"status\":\"IN_PROGRESS\""), "%s", x.events);
	cr_expect(kt_contains(x.events, "\"status\":\"COMPLETED\""), "%s", x.events);
	cr_expect(kt_contains(x.r.err, "[a] passed in"), "%s", x.r.err);
	free(t);
	run_free(&x);
}

Test(runner, failure_skips_on_success_and_runs_always_and_on_failure)
{
	run x = {0};
	run_pipeline(&x, "[a, b, c, d, e]",
	             FX("a", "") "}\n"
	             FX("b", ", action: fail") "}\n"
	             FX("c", "") "}\n"
	             FX("d", "") ", when: on_failure}\n"
	             FX("e", "") ", when: always}\n", NULL);
	cr_expect_eq(x.r.status, 1, "a failed task exits 1; stderr: %s", x.r.err);
	char *t = trace_of(&x);
	cr_expect(kt_contains(t, "a:pass run"), "%s", t);
	cr_expect(kt_contains(t, "b:fail run"), "%s", t);
	cr_expect(!kt_contains(t, "c:pass run"), "on_success after a failure must not run: %s", t);
	cr_expect(kt_contains(t, "d:pass run"), "on_failure runs after a failure: %s", t);
	cr_expect(kt_contains(t, "e:pass run"), "always runs after a failure: %s", t);
	/* fini for every stage whose init ran, also the skipped one */
	cr_expect_eq(kt_count(t, " fini"), 5, "%s", t);
	cr_expect(kt_contains(x.r.err, "[c] skipped (when: on_success, an earlier stage failed)"),
	          "%s", x.r.err);
	/* the first failure is the task's, and it reaches the backend */
	cr_expect(kt_contains(x.events, "\"status\":\"FAILED\""), "%s", x.events);
	cr_expect(kt_contains(x.events, "stage b failed: fx was told to fail"), "%s", x.events);
	free(t);
	run_free(&x);
}

Test(runner, on_failure_stage_does_not_run_when_all_pass)
{
	run x = {0};
	run_pipeline(&x, "[a, d]", FX("a", "") "}\n" FX("d", "") ", when: on_failure}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	char *t = trace_of(&x);
	cr_expect(!kt_contains(t, "d:pass run"), "%s", t);
	free(t);
	run_free(&x);
}

Test(runner, failure_without_reason_is_still_explained)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: silent-fail") "}\n", NULL);
	cr_expect_eq(x.r.status, 1);
	cr_expect(kt_contains(x.events, "returned an error (-1) without a reason"), "%s", x.events);
	run_free(&x);
}

/* Only KR_OK and KR_SKIPPED pass: a positive code that is no run() result
 * (KR_NOT_FOUND is a services answer) must not let a stage pass silently. */
Test(runner, a_run_result_other_than_ok_or_skipped_fails_the_stage)
{
	const char *actions[] = {"not-found", "odd"};
	const char *codes[] = {"(2)", "(7)"};
	for (int i = 0; i < 2; i++) {
		run x = {0};
		char stage[256];
		snprintf(stage, sizeof(stage), FX("a", ", action: %s") "}\n" FX("b", "") "}\n", actions[i]);
		run_pipeline(&x, "[a, b]", stage, NULL);
		cr_expect_eq(x.r.status, 1, "%s: %s", actions[i], x.r.err);
		cr_expect(kt_contains(x.events, codes[i]), "%s: %s", actions[i], x.events);
		char *t = trace_of(&x);
		cr_expect(!kt_contains(t, "b:pass run"), "a stage after the failure ran: %s", t);
		free(t);
		run_free(&x);
	}
}

/* A plugin built against smaller kr_process / kr_process_result structs:
 * the agent reads and writes only as many bytes as the plugin's size
 * members say, so neither garbage past them is read nor memory past them
 * written. */
Test(runner, a_plugin_with_older_smaller_process_structs_is_served_within_their_sizes)
{
	run x = {0};
	run_pipeline(&x, "[a]", "  a: {plugin: fx_oldproc}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "old-layout process ran: exit 3, result intact"), "%s",
	          x.r.err);
	run_free(&x);
}

/* The executable exports none of its functions (its own modules get
 * them as a table, core/host.h): neither the runner and the pipeline
 * reader nor what the modules call (settings, task, log) is in an
 * operator plugin's reach. */
Test(runner, a_plugin_cannot_resolve_the_cores_internals)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: probe-core") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "fx probe done"), "%s", x.r.err);
	cr_expect(!kt_contains(x.r.err, "fx resolved core internal kr_runner_run"), "%s", x.r.err);
	cr_expect(!kt_contains(x.r.err, "fx resolved core internal kr_pipeline_load"), "%s", x.r.err);
	cr_expect(!kt_contains(x.r.err, "fx resolved core internal kr_settings_get"), "%s", x.r.err);
	cr_expect(!kt_contains(x.r.err, "fx resolved core internal kr_task_set"), "%s", x.r.err);
	cr_expect(!kt_contains(x.r.err, "fx resolved core internal kr_log"), "%s", x.r.err);
	run_free(&x);
}

/* A list item at the count is NULL, an empty list's first included, so a
 * plugin walking a list cannot read past it. */
Test(runner, task_lists_end_at_their_counts)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: list-ends") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "fx lists end at their counts"), "%s", x.r.err);
	run_free(&x);
}

/* A failure reason is masked whole before it is cut to size: a secret
 * across the cut keeps no part of it. */
Test(runner, a_secret_across_the_reasons_cut_is_not_kept)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: long-secret-fail") "}\n", NULL);
	cr_expect_eq(x.r.status, 1, "%s", x.r.err);
	cr_expect(x.events && kt_contains(x.events, "xxxxxxxx"), "no reason recorded: %s",
	          x.events ? x.events : "(none)");
	cr_expect(!kt_contains(x.events, "sekret"), "the secret's start leaked into the reason");
	cr_expect(!kt_contains(x.r.err, "sekret"), "the secret's start leaked into the log");
	run_free(&x);
}

Test(runner, skipped_stage_counts_as_passed)
{
	run x = {0};
	run_pipeline(&x, "[a, b]", FX("a", ", action: skip") "}\n" FX("b", "") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	char *t = trace_of(&x);
	cr_expect(kt_contains(t, "b:pass run"), "%s", t);
	cr_expect(kt_contains(x.r.err, "[a] passed in"), "%s", x.r.err);
	free(t);
	run_free(&x);
}

Test(runner, timeout_cancels_the_stage_and_fails_the_task)
{
	run x = {0};
	run_pipeline(&x, "[a, b, c]",
	             FX("a", ", action: spin") ", timeout: 300ms}\n"
	             FX("b", "") "}\n"
	             FX("c", "") ", when: always}\n", NULL);
	cr_expect_eq(x.r.status, 1, "%s", x.r.err);
	char *t = trace_of(&x);
	cr_expect(kt_contains(t, "a:spin cancelled"), "the plugin saw cancelled(): %s", t);
	cr_expect(!kt_contains(t, "b:pass run"), "%s", t);
	cr_expect(kt_contains(t, "c:pass run"), "%s", t);
	cr_expect(kt_contains(x.events, "stage a failed: timed out after 300ms"), "%s", x.events);
	free(t);
	run_free(&x);
}

Test(runner, stage_ignoring_its_timeout_is_abandoned)
{
	/* a plugin that never returns: the agent exits after the grace period
	 * instead of hanging the pod, and still leaves the outcome behind */
	run x = {0};
	char *tl = NULL;
	char *dir = kt_tmpdir();
	tl = kt_path(dir, "termination-log");
	const char *extra[] = {"--grace-period", "200ms", "--termination-log", tl, NULL};
	run_pipeline(&x, "[a]", FX("a", ", action: stubborn") ", timeout: 200ms}\n", extra);
	cr_expect_eq(x.r.status, 1, "%s", x.r.err);
	cr_expect_eq(x.r.timed_out, 0);
	cr_expect(kt_contains(x.r.err, "did not stop within the grace period"), "%s", x.r.err);
	char *outcome = kt_read_file(tl, NULL);
	cr_expect(kt_contains(outcome, "\"status\":\"FAILED\""), "%s", outcome ? outcome : "(none)");
	free(outcome);
	kt_rmrf(dir);
	free(dir);
	free(tl);
	run_free(&x);
}

Test(runner, init_failure_stops_before_any_stage_runs)
{
	run x = {0};
	run_pipeline(&x, "[a, bad]", FX("a", "") "}\n  bad: {plugin: fx_initfail}\n", NULL);
	cr_expect_eq(x.r.status, 2, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "stage 'bad'"), "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "init failed: cannot reach the license server"), "%s", x.r.err);
	char *t = trace_of(&x);
	cr_expect(!kt_contains(t, "a:pass run"), "nothing runs when an init fails: %s", t);
	cr_expect(kt_contains(t, "a:pass fini"), "what was inited is finished: %s", t);
	free(t);
	run_free(&x);
}

Test(runner, with_block_is_checked_against_the_option_table)
{
	run x = {0};
	run_pipeline(&x, "[a]", "  a: {plugin: fx_ok, with: {trace: /x, cuont: 3}}\n", NULL);
	cr_expect_eq(x.r.status, 2);
	cr_expect(kt_contains(x.r.err, "pipeline.yaml:5:40: unknown key 'cuont' in 'with' of stage 'a' (did you mean 'count'?)"),
	          "%s", x.r.err);
	run_free(&x);

	run y = {0};
	run_pipeline(&y, "[a]", "  a: {plugin: fx_ok, with: {trace: /x, count: many}}\n", NULL);
	cr_expect_eq(y.r.status, 2);
	cr_expect(kt_contains(y.r.err, "option 'count' of stage 'a' must be an integer, not 'many'"),
	          "%s", y.r.err);
	run_free(&y);

	run z = {0};
	run_pipeline(&z, "[a]", "  a: {plugin: fx_ok, with: {label: x}}\n", NULL);
	cr_expect_eq(z.r.status, 2);
	cr_expect(kt_contains(z.r.err, "stage 'a' needs option 'trace'"), "%s", z.r.err);
	run_free(&z);
}

Test(runner, typed_options_reach_the_plugin)
{
	run x = {0};
	run_pipeline(&x, "[a]",
	             FX("a", ", count: 7, flag: yes, wait: 2m, limit: 2MiB, items: [p, q, r], "
	                     "env: {A: b}") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	char *t = trace_of(&x);
	cr_expect(kt_contains(t, "count=7 flag=1 wait=120000 limit=2097152 items=3 env=1"), "%s", t);
	cr_expect(kt_contains(t, "entries p q r A=b\n"), "%s", t);
	free(t);
	run_free(&x);
}

/* One stage of fx_ok with `extra` in its with: block is refused before
 * any plugin is initialised: exit 2, the needle on stderr, no trace. */
static void bad_option(const char *extra, const char *needle)
{
	run x = {0};
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  a: {plugin: fx_ok, with: {trace: @T@, label: a%s}}\n", extra) >
	          0);
	run_pipeline(&x, "[a]", stages, NULL);
	cr_expect_eq(x.r.status, 2, "%s: exit %d: %s", extra, x.r.status, x.r.err);
	cr_expect(kt_contains(x.r.err, "pipeline.yaml:5:"), "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, needle), "'%s' not in: %s", needle, x.r.err);
	char *trace = kt_path(x.dir, "trace");
	cr_expect(access(trace, F_OK) != 0, "%s: the plugin was started", extra);
	free(trace);
	free(stages);
	run_free(&x);
}

/* Every kind of option refuses a value of another kind where it is
 * written; a boolean is a plain word, so a quoted "true" is text. */
Test(runner, each_option_kind_refuses_a_value_of_another_kind)
{
	bad_option(", file: [x]", "option 'file' of stage 'a' must be a string");
	bad_option(", count: ~", "option 'count' of stage 'a' must be an integer");
	bad_option(", count: 1.5", "option 'count' of stage 'a' must be an integer, not '1.5'");
	bad_option(", flag: maybe", "option 'flag' of stage 'a' must be true or false, not 'maybe'");
	bad_option(", flag: 'true'", "option 'flag' of stage 'a' must be true or false, not 'true'");
	bad_option(", flag: {a: b}", "option 'flag' of stage 'a' must be true or false");
	bad_option(", wait: soon",
	           "option 'wait' of stage 'a' must be a duration such as 30s, 10m or 2h, not 'soon'");
	bad_option(", limit: huge",
	           "option 'limit' of stage 'a' must be a size such as 512KiB or 100MB, not 'huge'");
	bad_option(", items: p", "option 'items' of stage 'a' must be a list of strings, not 'p'");
	bad_option(", items: [p, [q]]", "option 'items' of stage 'a' must be a list of strings");
	bad_option(", env: [A]", "option 'env' of stage 'a' must be a mapping of strings");
	bad_option(", env: {A: {b: c}}", "option 'env' of stage 'a' must be a mapping of strings");
}

Test(runner, a_with_block_for_a_plugin_without_options_is_refused)
{
	run x = {0};
	run_pipeline(&x, "[a]", "  a: {plugin: fx_initfail, with: {mode: fast}}\n", NULL);
	cr_expect_eq(x.r.status, 2, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "pipeline.yaml:5:35: unknown key 'mode' in 'with' of stage "
	                               "'a': its plugin takes no options"),
	          "%s", x.r.err);
	cr_expect(!kt_contains(x.r.err, "license server"), "the plugin was started: %s", x.r.err);
	run_free(&x);
}

/* A plugin asking for an option its table lacks, or for none (NULL), or
 * giving no place for the value, gets nothing, and the log says which,
 * so the slip is found. */
Test(runner, an_option_the_plugin_did_not_declare_answers_nothing)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: undeclared") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "plugin asked for option 'nope', which it does not declare"),
	          "%s", x.r.err);
	char *t = trace_of(&x);
	cr_expect(kt_contains(t, "undeclared string=none int=2 bool=2 duration=2 size=2 "
	                         "list=0/none map=0/none/none"),
	          "%s", t);
	cr_expect(kt_contains(t, "no name or no place: string=none int=2 bool=2 duration=2 size=2"),
	          "%s", t);
	cr_expect(kt_contains(x.r.err, "plugin asked for an option without a name (NULL)"), "%s",
	          x.r.err);
	free(t);
	run_free(&x);
}

/* A plugin that opens the task's area after task code removed it gets
 * what plugin.h promises: -1 (not any negative number) and ENOENT. */
Test(runner, area_open_without_the_area_says_minus_one_and_enoent)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: area-gone") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "area_open without the area: -1, No such file or directory"),
	          "%s", x.r.err);
	run_free(&x);
}

/* A plugin asking to upload a file that is not there: the stage fails
 * saying which file could not be read, and nothing is sent. */
Test(runner, uploading_a_missing_file_fails_the_stage_and_names_it)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: upload, file: /nonexistent-dir/x.txt") "}\n",
	             NULL);
	cr_expect_eq(x.r.status, 1, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "cannot read /nonexistent-dir/x.txt to upload it: No such "
	                               "file or directory"),
	          "%s", x.r.err);
	run_free(&x);
}

/* The pipeline file's own `settings:` block applies (here where the
 * events go), below the command line. */
Test(runner, the_pipelines_settings_block_applies)
{
	char *dir = kt_tmpdir();
	char *ev = kt_path(dir, "events-from-the-pipeline.jsonl"), *other = kt_path(dir, "cli.jsonl");
	char *stages = NULL;
	cr_assert(asprintf(&stages, FX("a", "") "}\nsettings:\n  events_file: %s\n", ev) > 0);
	run x = {0};
	run_pipeline(&x, "[a]", stages, NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	char *text = kt_read_file(ev, NULL);
	cr_expect(kt_contains(text, "\"status\":\"COMPLETED\""), "%s: %s", ev, text ? text : "(none)");
	cr_expect(access(x.evpath, F_OK) != 0, "the events went to the default place too");
	free(text);
	run_free(&x);
	unlink(ev);
	const char *const cli[] = {"--events-file", other, NULL};
	run_pipeline(&x, "[a]", stages, cli);
	cr_expect(access(ev, F_OK) != 0, "the pipeline's setting won over the command line");
	cr_expect(access(other, F_OK) == 0, "the command line's events file was not written");
	run_free(&x);
	kt_rmrf(dir);
	free(dir), free(ev), free(other), free(stages);
}

/* Local mode with --artifacts-dir: an artifact whose name is taken there
 * by a directory fails its stage, saying which file could not be
 * written. */
Test(runner, an_artifact_that_cannot_be_written_names_the_file)
{
	char *dir = kt_tmpdir();
	char *arts = kt_path(dir, "artifacts"), *src = kt_path(dir, "src.txt"),
	     *taken = kt_path(arts, "upload.txt");
	kt_write_file(src, "the artifact\n");
	cr_assert(mkdir(arts, 0755) == 0 && mkdir(taken, 0755) == 0);
	char *stages = NULL;
	cr_assert(asprintf(&stages, FX("a", ", action: upload, file: %s") "}\n", src) > 0);
	const char *const args[] = {"--artifacts-dir", arts, NULL};
	run x = {0};
	run_pipeline(&x, "[a]", stages, args);
	cr_expect_eq(x.r.status, 1, "%s", x.r.err);
	char *want = NULL;
	cr_assert(asprintf(&want, "cannot write %s: Is a directory", taken) > 0);
	cr_expect(kt_contains(x.r.err, want), "want '%s' in: %s", want, x.r.err);
	run_free(&x);
	kt_rmrf(dir);
	free(dir), free(arts), free(src), free(taken), free(stages), free(want);
}

/* The same for a path below the work dir itself, once the work dir is
 * gone (moved away by task code). */
Test(runner, area_open_below_a_vanished_work_dir_says_minus_one)
{
	run x = {0};
	run_pipeline(&x, "[a]", FX("a", ", action: workdir-gone") "}\n", NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.r.err);
	cr_expect(kt_contains(x.r.err, "area_open without the work dir: -1, No such file or directory"),
	          "%s", x.r.err);
	run_free(&x);
}

Test(runner, empty_phase_is_a_configuration_error)
{
	run x = {0};
	run_pipeline(&x, "[]", FX("a", "") "}\n", NULL);
	cr_expect_eq(x.r.status, 2);
	cr_expect(kt_contains(x.r.err, "phase 'execute' lists no stages"), "%s", x.r.err);
	run_free(&x);
}

/* A malformed task file stops the run before any stage, names the field,
 * and still leaves the outcome in the termination message. */
static void bad_task(const char *task_text, const char *fragment)
{
	kf f;
	kf_init(&f, task_text);
	char *trace = kt_path(f.dir, "trace");
	char *fx = fixture_plugins();
	char *ptext = NULL;
	cr_assert(asprintf(&ptext, "version: 1\nphases: {execute: [a]}\nstages:\n  a: {plugin: fx_ok, with: {trace: %s}}\n", trace) > 0);
	kf_pipeline(&f, ptext);
	const char *args[] = {"--plugin-dir", fx, NULL};
	kt_result r;
	cr_assert_eq(kf_run(&f, &r, "execute", args, NULL, 30), 0);
	cr_expect_eq(r.status, 2, "a bad task file is a usage error: %s", r.err);
	cr_expect(kt_contains(r.err, fragment), "want '%s' in: %s", fragment, r.err);
	char *t = kt_read_file(trace, NULL);
	cr_expect(!kt_contains(t, "run"), "no stage may run: %s", t ? t : "");
	char *outcome = kt_read_file(f.term, NULL);
	cr_expect(kt_contains(outcome, "\"status\":\"FAILED\""), "%s", outcome ? outcome : "(none)");
	/* no stage ran: the agent itself is named as what failed */
	cr_expect(kt_contains(outcome, "\"stage\":\"agent\""), "%s", outcome ? outcome : "(none)");
	free(outcome);
	free(t);
	kt_result_free(&r);
	kf_free(&f);
	free(trace);
	free(fx);
	free(ptext);
}

Test(taskfile, malformed_task_files_name_the_field)
{
	bad_task("title: no id\n", "task.yaml: the task has no 'id'");
	bad_task("id: 1\ntitle: [a, b]\n", "task.yaml:2:8: 'title' must be a string, not a list");
	bad_task("id: 1\nenv: [A=b]\n", "task.yaml:2:6: 'env' must be a mapping");
	bad_task("id: 1\nenv: {\"A=B\": c}\n", "'env' name 'A=B' must be 1 to 255 characters without '='");
	bad_task("id: 1\ndocuments: {a: b}\n", "'documents' must be a list");
	bad_task("id: 1\ndocuments: [{name: x}]\n", "document 1 has no 'id'");
	bad_task("- just\n- a list\n", "a task file must be a mapping");
	bad_task("id: 1\nid: 2\n", "duplicate key 'id'");
	bad_task("{\"id\": \"1\", \"title\": \"a\"\n", "did not find expected");
}

Test(taskfile, json_task_file_with_api_field_names)
{
	kf f;
	kf_init(&f, NULL);
	char *task = kt_path(f.dir, "task.json");
	char *fx = fixture_plugins();
	kf_pipeline(&f, "version: 1\nphases: {execute: [h]}\nstages:\n  h: {plugin: hello}\n");
	kt_write_file(task, "{\"id\": \"42\", \"name\": \"From \\\"JSON\\\" \\u00e9\", \"priority\": 3,"
	                    " \"parentTaskId\": \"41\"}");
	/* the last --task-file wins over the fixture's */
	const char *args[] = {"--task-file", task, "--plugin-dir", fx, "--termination-log", "", NULL};
	kt_result r;
	cr_assert_eq(kf_run(&f, &r, "execute", args, NULL, 30), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	char *hello = kt_path(f.work, ".keruta/hello.txt");
	char *text = kt_read_file(hello, NULL);
	cr_expect_str_eq(text ? text : "", "Hello, From \"JSON\" \xc3\xa9!\n");
	free(text);
	free(hello);
	kt_result_free(&r);
	kf_free(&f);
	free(task);
	free(fx);
}
