/*
 * The built-in stages' init: a `with:` value the stage refuses fails init
 * with the stage's reason and exit status 2, and leaves nothing behind:
 * fini is not called after a failed init, so a stage that kept its state
 * would leak it (valgrind's leak check, through the real binary; SKIP
 * without valgrind).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "krtest.h"

static int have_valgrind(void)
{
	const char *argv[] = {"valgrind", "--version", NULL};
	kt_result r;
	int ok = kt_run(&r, argv, NULL, NULL, NULL, 30) == 0 && r.status == 0;
	kt_result_free(&r);
	return ok;
}

/* Run one stage whose init must fail under valgrind; the leak summary and
 * the agent's stderr are checked. */
static void init_fails_without_a_leak(const char *stage, const char *reason)
{
	char *dir = kt_tmpdir();
	char *work = kt_path(dir, "work");
	char *pipeline = kt_path(dir, "p.yaml");
	char *task = kt_path(dir, "task.yaml");
	char *log = kt_path(dir, "vg.log");
	char *logopt = NULL, *text = NULL;
	cr_assert(asprintf(&logopt, "--log-file=%s", log) > 0);
	cr_assert(asprintf(&text, "version: 1\nphases:\n  execute: [s]\nstages:\n  s: {%s}\n",
	                   stage) > 0);
	kt_write_file(pipeline, text);
	kt_write_file(task, "id: t-1\ntitle: init\n");
	const char *argv[] = {"valgrind", "-q", "--leak-check=full", "--show-leak-kinds=definite",
	                      "--errors-for-leak-kinds=definite", "--error-exitcode=99", logopt,
	                      kt_agent(), "execute", "--pipeline", pipeline, "--task-file", task,
	                      "--work-dir", work, "--termination-log", "", "--log-format", "text",
	                      NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 120), 0);
	char *vg = kt_read_file(log, NULL);
	cr_expect_eq(r.status, 2, "stage {%s}: exit %d; stderr: %s\nvalgrind: %s", stage, r.status,
	             r.err, vg ? vg : "");
	cr_expect(kt_contains(r.err, reason), "want '%s' in: %s", reason, r.err);
	cr_expect(vg && !kt_contains(vg, "definitely lost"), "stage {%s} leaked:\n%s", stage,
	          vg ? vg : "(no valgrind log)");
	free(vg);
	kt_result_free(&r);
	kt_rmrf(dir);
	free(dir);
	free(work);
	free(pipeline);
	free(task);
	free(log);
	free(logopt);
	free(text);
}

Test(stages_init, a_refused_value_fails_init_and_leaks_nothing, .timeout = 600)
{
#ifdef __SANITIZE_ADDRESS__
	cr_skip_test("built with ASan, which valgrind cannot run; the plain build checks this");
#endif
	if (!have_valgrind())
		cr_skip_test("valgrind is not installed (apt-get install valgrind)");
	init_fails_without_a_leak("plugin: clone, with: {token_type: digest}",
	                          "clone: token_type must be basic or bearer, not 'digest'");
	init_fails_without_a_leak("plugin: clone, with: {retries: 101}",
	                          "clone: retries must be between 0 and 100, not 101");
	init_fails_without_a_leak("plugin: clone, with: {depth: -1}",
	                          "clone: depth must be 0 (full) or more, not -1");
	init_fails_without_a_leak("plugin: cleanup, with: {remove: [../etc]}",
	                          "cleanup: `remove:` entry '../etc' must be a path relative to "
	                          "the task's area");
	init_fails_without_a_leak("plugin: git-exclude, with: {patterns: [\"a\\nb\"]}",
	                          "git-exclude: pattern 1 is empty or holds a line break");
	init_fails_without_a_leak("plugin: execute, with: {shell: \" \"}",
	                          "execute: `with: shell:` is empty");
}
