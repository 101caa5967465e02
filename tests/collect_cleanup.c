/*
 * The cleanup stage through the real binary in local mode: the agent's
 * temporary files go, the repository, .keruta/doc and the documents stay;
 * symlinks are removed as links, never followed; `when: always` runs it
 * after a failed stage and the task still ends FAILED with the reason.
 */
#include "init_harness.c"

#define CLEANUP_PHASE "  cleanup: [cleanup]\n"

static void fill_work_dir(kx *x)
{
	kx_write(x->work, ".git/HEAD", "ref: refs/heads/main\n");
	kx_write(x->work, "README", "repo\n");
	kx_write(x->work, "src/main.c", "int main(void) { return 0; }\n");
	kx_write(x->work, ".keruta/tasks/t-1/install.sh", "echo install");
	kx_write(x->work, ".keruta/tasks/t-1/execute.sh", "echo execute");
	kx_write(x->work, ".keruta/tasks/t-1/documents/spec.md", "spec");
	kx_write(x->work, ".keruta/tasks/t-1/documents/.fetch-a1b2c3.tmp", "partial");
	kx_write(x->work, ".keruta/tasks/t-1/documents/notes.tmp", "a document named .tmp");
	kx_write(x->work, ".keruta/tasks/t-1/doc/out.txt", "result");
}

static const char *const task_args[] = {"--task-id", "t-1", NULL};

Test(cleanup, removes_temp_files_and_keeps_the_repository)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE, NULL);
	fill_work_dir(&x);
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/install.sh"));
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/execute.sh"));
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/documents/.fetch-a1b2c3.tmp"));
	cr_assert(kx_exists(x.work, ".git/HEAD"));
	cr_assert(kx_exists(x.work, "README"));
	cr_assert(kx_exists(x.work, "src/main.c"));
	cr_assert(kx_exists(x.work, ".keruta/tasks/t-1/documents/spec.md"));
	cr_assert(kx_exists(x.work, ".keruta/tasks/t-1/documents/notes.tmp"));
	cr_assert(kx_exists(x.work, ".keruta/tasks/t-1/doc/out.txt"));
	cr_assert(kt_contains(x.log, "removed 3 temporary files"), "%s", x.log);
	/* nothing left to do the second time */
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "removed 0 temporary files"), "%s", x.log);
	kx_free(&x);
}

Test(cleanup, symlinks_are_removed_not_followed)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE, NULL);
	char *victim = kt_path(x.dir, "victim");
	kt_write_file(victim, "precious");
	kx_write(x.work, ".keruta/tasks/t-1/documents/keep.md", "k");
	char *link = kt_path(x.work, ".keruta/tasks/t-1/install.sh");
	cr_assert_eq(symlink(victim, link), 0);
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/install.sh"));
	char *v = kt_read_file(victim, NULL);
	cr_assert_str_eq(v ? v : "(gone)", "precious");
	free(v);
	free(victim);
	free(link);
	kx_free(&x);
}

Test(cleanup, extra_patterns)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE,
	            "  cleanup: {plugin: cleanup, with: {remove: [\"spool/*.jsonl\", "
	            "\"env-*\"]}}\n");
	kx_write(x.work, ".keruta/tasks/t-1/spool/0001.jsonl", "{}");
	kx_write(x.work, ".keruta/tasks/t-1/spool/keep.txt", "k");
	kx_write(x.work, ".keruta/tasks/t-1/env-DESCRIPTION", "long");
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/spool/0001.jsonl"));
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/env-DESCRIPTION"));
	cr_assert(kx_exists(x.work, ".keruta/tasks/t-1/spool/keep.txt"));
	kx_free(&x);
}

Test(cleanup, pattern_leaving_keruta_is_a_config_error)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE,
	            "  cleanup: {plugin: cleanup, with: {remove: [\"../README\"]}}\n");
	kx_write(x.work, "README", "repo");
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 2, "%s", x.log);
	cr_assert(kt_contains(x.log, "../README"), "%s", x.log);
	cr_assert(kx_exists(x.work, "README"));
	kx_free(&x);
}

Test(cleanup, remove_work_dir_empties_it_and_follows_no_link)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE,
	            "  cleanup: {plugin: cleanup, with: {remove_work_dir: true}}\n");
	fill_work_dir(&x);
	char *outside = kt_path(x.dir, "outside");
	mkdir(outside, 0755);
	kx_write(outside, "keep", "k");
	char *link = kt_path(x.work, "src/outside-link");
	cr_assert_eq(symlink(outside, link), 0);
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert_eq(kx_count_entries(x.work), 0, "the work dir is not empty");
	cr_assert(kx_exists(x.dir, "work"), "the work dir itself must stay (a mount point)");
	cr_assert(kx_exists(outside, "keep"), "a symlink was followed");
	free(outside);
	free(link);
	kx_free(&x);
}

Test(cleanup, runs_after_a_failed_stage_and_the_task_fails)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  execute: [install, document, cleanup]\n", NULL);
	kt_write_file(x.task, "id: t-1\n"
	                      "installScript: \"echo broken; exit 3\"\n"
	                      "documents: [{id: d1, name: a.md, content: x}]\n");
	kx_agent(&x, "execute", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	/* cleanup ran: the install script it wrote is gone */
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/install.sh"), "%s", x.log);
	cr_assert(kt_contains(x.log, "[cleanup] passed"), "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/documents/a.md"));
	/* and the failure of install is the task's */
	cr_assert(kt_contains(x.events, "\"status\":\"FAILED\""), "%s", x.events);
	cr_assert(kt_contains(x.events, "stage install failed"), "%s", x.events);
	cr_assert(kt_contains(x.events, "exit code 3"), "%s", x.events);
	cr_assert(kt_contains(x.termtext, "\"stage\":\"install\""), "%s", x.termtext);
	kx_free(&x);
}

/* Nothing to clean is not a failure: no area of the task, no work dir. */
Test(cleanup, no_area_and_no_work_dir_skip)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE, NULL);
	kx_write(x.work, "README", "repo\n");
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "no area of this task"), "%s", x.log);
	cr_assert(kx_exists(x.work, "README"));
	kt_rmrf(x.work);
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "does not exist; nothing to clean"), "%s", x.log);
	kx_free(&x);
}

/* A work dir that is a file: a failure naming it, and the file stays. */
Test(cleanup, work_dir_that_is_a_file_fails)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE, NULL);
	kt_rmrf(x.work);
	kt_write_file(x.work, "not a directory\n");
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.log, "cannot open the work dir"), "%s", x.log);
	char *text = kt_read_file(x.work, NULL);
	cr_assert_str_eq(text ? text : "", "not a directory\n");
	free(text);
	kx_free(&x);
}

/* Entries that cannot be removed (immutable): the others still go; a
 * temporary file is a warning, the work dir's content a failure that
 * counts what could not be removed (not the directories holding it). */
Test(cleanup, entries_that_cannot_be_removed_are_reported)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, CLEANUP_PHASE, NULL);
	fill_work_dir(&x);
	char *stuck = kt_path(x.work, ".keruta/tasks/t-1/install.sh");
	if (kt_immutable(stuck, 1) != 0) {
		free(stuck);
		kx_free(&x);
		cr_skip_test("needs root and a file system with the immutable attribute (chattr +i)");
	}
	kx_agent(&x, "cleanup", task_args, NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "cannot remove install.sh from the task's area"), "%s", x.log);
	cr_expect(!kx_exists(x.work, ".keruta/tasks/t-1/execute.sh"));
	cr_expect(kt_contains(x.log, "removed 2 temporary files"), "%s", x.log);

	kx_pipeline(&x, "  cleanup: [cleanup]\n",
	            "  cleanup: {plugin: cleanup, with: {remove_work_dir: true}}\n");
	kx_agent(&x, "cleanup", task_args, NULL);
	kt_immutable(stuck, 0);
	cr_expect_eq(x.r.status, 1, "%s", x.log);
	cr_expect(kt_contains(x.log, "could not remove 1 entries in the work dir"), "%s", x.log);
	cr_expect(!kx_exists(x.work, "README"));
	cr_expect(!kx_exists(x.work, "src"));
	cr_expect(kx_exists(x.work, ".keruta/tasks/t-1/install.sh"));
	free(stuck);
	kx_free(&x);
}
