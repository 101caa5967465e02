/*
 * git_exclude.c - the git-exclude stage through the real agent, checked
 * with the real git CLI.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git_helpers.h"

static char *base, *wd;

static void setup(void)
{
	base = kt_tmpdir();
	wd = kt_path(base, "work");
}

static void teardown(void)
{
	gt_free_all();
	kt_rmrf(base);
	free(base);
	free(wd);
}

TestSuite(git_exclude, .init = setup, .fini = teardown, .timeout = 60);

static void run_exclude(const char *with, int want_status)
{
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  git-exclude: { plugin: git-exclude%s%s }",
	                   with ? ", with: " : "", with ? with : "") > 0);
	kt_result r;
	cr_assert_eq(gt_agent(&r, "execute", wd, NULL, "[git-exclude]", stages, NULL), 0);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, want_status, "agent exit %d:\n%s", r.status, all);
	kt_result_free(&r);
	free(all);
	free(stages);
}

/* A git-exclude run that must fail with exit 1, its output naming `want`. */
static void expect_exclude_fails(const char *want)
{
	kt_result r;
	cr_assert_eq(gt_agent(&r, "execute", wd, NULL, "[git-exclude]",
	                      "  git-exclude: { plugin: git-exclude }", NULL),
	             0);
	char *all = gt_output(&r);
	cr_expect_eq(r.status, 1, "%s", all);
	cr_expect(kt_contains(all, want), "want '%s' in:\n%s", want, all);
	kt_result_free(&r);
	free(all);
}

Test(git_exclude, idempotent_with_patterns)
{
	free(gt_sh(base, "git init -q -b main work && cd work && echo a > a && git add a && "
	                 "git commit -qm a && mkdir -p .keruta/doc && echo x > .keruta/doc/x && "
	                 "echo y > build.log && echo z > other.txt && "
	                 "printf '# mine\\n/.keruta\\n/.keruta\\n' >> .git/info/exclude"));
	for (int i = 0; i < 3; i++)
		run_exclude("{ patterns: ['*.log', '/.keruta'] }", 0);
	char *path = kt_path(wd, ".git/info/exclude");
	char *text = kt_read_file(path, NULL);
	cr_assert_not_null(text);
	cr_assert_eq(kt_count(text, "/.keruta\n"), 1, "%s", text);
	cr_assert_eq(kt_count(text, "*.log\n"), 1, "%s", text);
	cr_assert(kt_contains(text, "# mine\n"), "other lines are kept: %s", text);
	char *status = gt_sh(wd, "git status --porcelain");
	cr_assert_str_eq(status, "?? other.txt");
	free(path), free(text), free(status);
}

/* Our lines already there with trailing blanks or a CR (an editor's, or a
 * file written on Windows) count as there: git ignores those blanks too,
 * so adding them again would only grow the file on every run. */
Test(git_exclude, lines_with_trailing_blanks_are_not_added_again)
{
	free(gt_sh(base, "git init -q -b main work && "
	                 "printf '/.keruta \\r\\n*.log\\t\\n' > work/.git/info/exclude"));
	run_exclude("{ patterns: ['*.log'] }", 0);
	char *text = kt_read_file(gt_path(wd, ".git/info/exclude"), NULL);
	cr_assert_not_null(text);
	cr_assert_str_eq(text, "/.keruta \r\n*.log\t\n");
	free(text);
}

Test(git_exclude, creates_info_dir)
{
	free(gt_sh(base, "git init -q -b main work && rm -rf work/.git/info && "
	                 "mkdir -p work/.keruta && echo x > work/.keruta/f"));
	run_exclude(NULL, 0);
	char *status = gt_sh(wd, "git status --porcelain");
	cr_assert_str_eq(status, "");
	char *text = kt_read_file(gt_path(wd, ".git/info/exclude"), NULL);
	cr_assert_str_eq(text, "/.keruta\n");
	free(status), free(text);
}

Test(git_exclude, worktree_uses_common_dir)
{
	free(gt_sh(base, "git init -q -b main main && cd main && echo a > a && git add a && "
	                 "git commit -qm a && git worktree add -q ../work -b wt && "
	                 "mkdir -p ../work/.keruta && echo x > ../work/.keruta/f"));
	cr_assert(kt_contains(gt_q(wd, "cat .git"), "gitdir: "));
	cr_assert_str_eq(gt_q(wd, "git status --porcelain"), "?? .keruta/");
	run_exclude(NULL, 0);
	run_exclude(NULL, 0);
	cr_assert_str_eq(gt_q(wd, "git status --porcelain"), "");
	char *text = kt_read_file(gt_path(base, "main/.git/info/exclude"), NULL);
	cr_assert_eq(kt_count(text, "/.keruta\n"), 1, "%s", text);
	free(text);
}

Test(git_exclude, gitdir_file_like_a_submodule)
{
	free(gt_sh(base, "git init -q -b main real && mkdir work && "
	                 "mv real/.git gitdir && printf 'gitdir: ../gitdir\\n' > work/.git && "
	                 "git --git-dir=gitdir config core.worktree ../work && "
	                 "mkdir -p work/.keruta && echo x > work/.keruta/f && echo y > work/y"));
	run_exclude(NULL, 0);
	cr_assert_str_eq(gt_q(wd, "git status --porcelain"), "?? y");
	char *text = kt_read_file(gt_path(base, "gitdir/info/exclude"), NULL);
	cr_assert(kt_contains(text, "/.keruta\n"));
	free(text);
}

Test(git_exclude, no_repository_is_skipped_and_bad_gitfile_fails)
{
	cr_assert_eq(mkdir(wd, 0755), 0);
	run_exclude(NULL, 0);
	char *dotgit = kt_path(wd, ".git");
	kt_write_file(dotgit, "gitdir: /nonexistent/place\n");
	expect_exclude_fails("does not point to a git directory");
	kt_write_file(dotgit, "garbage\n");
	run_exclude(NULL, 1);
	free(dotgit);
}

Test(git_exclude, bad_pattern_is_a_config_error)
{
	free(gt_sh(base, "git init -q -b main work"));
	run_exclude("{ patterns: [\"a\\nb\"] }", 2);
}

/* Files a repository's earlier task could leave in .git: a FIFO would
 * block a plain open() forever. */
Test(git_exclude, a_fifo_in_place_of_exclude_or_commondir_fails_clearly)
{
	static const char *const where[] = {".git/info/exclude", ".git/commondir"};
	for (size_t i = 0; i < 2; i++) {
		free(gt_sh(base, "rm -rf work && git init -q -b main work && mkdir -p work/.git/info && "
		                 "rm -f work/%s && mkfifo work/%s",
		           where[i], where[i]));
		kt_result r;
		cr_assert_eq(gt_agent(&r, "execute", wd, NULL, "[git-exclude]",
		                      "  git-exclude: { plugin: git-exclude }", NULL),
		             0);
		char *all = gt_output(&r);
		cr_expect_eq(r.status, 1, "%s: %s", where[i], all);
		cr_expect(kt_contains(all, where[i]) && kt_contains(all, "not a regular file"),
		          "%s: %s", where[i], all);
		kt_result_free(&r);
		free(all);
	}
}

/* Started with standard input closed (as some supervisors do), the agent's
 * first new file is descriptor 0: the exclude file is written all the
 * same. */
Test(git_exclude, works_with_standard_input_closed)
{
	free(gt_sh(base, "git init -q -b main work && mkdir -p work/.keruta && echo x > work/.keruta/f"));
	char *pipe = kt_path(base, "pipeline.yaml");
	kt_write_file(pipe, "version: 1\nphases:\n  execute: [git-exclude]\nstages:\n"
	                    "  git-exclude: { plugin: git-exclude }\n");
	const char *argv[] = {"/bin/sh", "-c", "exec \"$0\" \"$@\" <&-", kt_agent(), "execute",
	                      "--pipeline", pipe, "--work-dir", wd, "--log-format", "text",
	                      "--backend", "local", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 60), 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	char *text = kt_read_file(gt_path(wd, ".git/info/exclude"), NULL);
	cr_assert(text && kt_contains(text, "/.keruta\n"), "%s", text ? text : "(none)");
	cr_assert_str_eq(gt_q(wd, "git status --porcelain"), "");
	kt_result_free(&r);
	free(text), free(pipe);
}

/* An exclude file whose last line has no line break keeps that line whole;
 * ours go on lines of their own after it, and a pattern given twice is
 * written once. */
Test(git_exclude, last_line_without_newline_and_a_pattern_given_twice)
{
	free(gt_sh(base, "git init -q -b main work && "
	                 "printf '# mine\\n/.keruta\\n/.keruta\\nlast' > work/.git/info/exclude"));
	run_exclude("{ patterns: ['*.tmp', '*.tmp'] }", 0);
	char *text = kt_read_file(gt_path(wd, ".git/info/exclude"), NULL);
	cr_assert_not_null(text);
	cr_expect_str_eq(text, "# mine\n/.keruta\nlast\n*.tmp\n");
	free(text);
}

/* What .git or its pointer files may hold that is no repository, each
 * refused with the file and the reason, and nothing written. */
Test(git_exclude, broken_git_pointers_are_refused_with_the_reason)
{
	cr_assert_eq(mkdir(wd, 0755), 0);
	char *dotgit = kt_path(wd, ".git");

	kt_write_file(dotgit, "gitdir: \n");
	expect_exclude_fails("does not point to a git directory (it names no directory)");

	kt_write_file(dotgit, "gitdir: x");
	cr_assert_eq(truncate(dotgit, 10), 0); /* "gitdir: x\0" */
	expect_exclude_fails("does not point to a git directory (it holds a NUL byte)");

	cr_assert_eq(unlink(dotgit), 0);
	free(gt_sh(base, "git init -q -b main elsewhere && ln -s ../elsewhere/.git work/.git"));
	expect_exclude_fails("is neither a directory nor a gitdir file");
	char *other = kt_read_file(gt_path(base, "elsewhere/.git/info/exclude"), NULL);
	cr_expect(other && !kt_contains(other, "/.keruta"), "%s", other ? other : "(none)");
	free(other);

	/* a worktree's commondir naming a directory that is gone */
	free(gt_sh(base, "rm -f work/.git && git init -q -b main real && mv real/.git gitdir && "
	                 "printf 'gitdir: ../gitdir\\n' > work/.git && "
	                 "printf '../gone\\n' > gitdir/commondir"));
	expect_exclude_fails("gitdir/commondir does not name a directory (no such directory)");

	/* info/ a plain file: exclude cannot be read under it */
	free(gt_sh(base, "rm -f gitdir/commondir && rm -rf gitdir/info && echo x > gitdir/info"));
	expect_exclude_fails("cannot read ");
	char *info = kt_read_file(gt_path(base, "gitdir/info"), NULL);
	cr_expect_str_eq(info, "x\n");
	free(info);
	free(dotgit);
}

/* Where the agent may not write (immutable, the one way to stop root):
 * an info/ it cannot create, an info/ it cannot add its temporary file
 * to, an exclude file it cannot replace.  Each fails the stage naming the
 * path, and the exclude file is left as it was. */
Test(git_exclude, an_exclude_that_cannot_be_written_fails_naming_it)
{
	static const struct {
		const char *stuck, *want;
	} cases[] = {{".git", "cannot create "},
	             {".git/info", "cannot write "},
	             {".git/info/exclude", "cannot replace "}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		free(gt_sh(base, "rm -rf work && git init -q -b main work && %s",
		           i == 0 ? "rm -rf work/.git/info" : "printf '# mine\\n' > work/.git/info/exclude"));
		char *stuck = kt_path(wd, cases[i].stuck);
		if (kt_immutable(stuck, 1) != 0) {
			free(stuck);
			cr_skip_test("needs root and a file system with the immutable attribute (chattr +i)");
		}
		kt_result r;
		int ran = gt_agent(&r, "execute", wd, NULL, "[git-exclude]",
		                   "  git-exclude: { plugin: git-exclude }", NULL);
		kt_immutable(stuck, 0);
		cr_assert_eq(ran, 0);
		char *all = gt_output(&r);
		cr_expect_eq(r.status, 1, "%s: %s", cases[i].stuck, all);
		cr_expect(kt_contains(all, cases[i].want) && kt_contains(all, "/.git/info"),
		          "%s: want '%s' in:\n%s", cases[i].stuck, cases[i].want, all);
		char *text = kt_read_file(gt_path(wd, ".git/info/exclude"), NULL);
		if (i == 0)
			cr_expect_null(text, "%s", text);
		else
			cr_expect_str_eq(text, "# mine\n");
		char *left = gt_sh(wd, "ls -a .git/info 2>/dev/null | grep -c exclude.keruta || true");
		cr_expect_str_eq(left, "0", "%s: a temporary file was left", cases[i].stuck);
		free(left);
		free(text);
		kt_result_free(&r);
		free(all);
		free(stuck);
	}
}
