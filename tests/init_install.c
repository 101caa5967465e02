/*
 * The install stage through the real binary in local mode: the script is
 * written to .keruta/install.sh (0700) and run from the work dir; its
 * output passes through and is shipped; a failing, killed or overlong
 * script fails init with the reason; no script or an empty one skips.
 */
#include <signal.h>
#include <sys/stat.h>

#include "init_harness.c"

#define INIT_PHASE "  init: [install, document]\n"

Test(install, success_runs_in_work_dir_and_ships_output)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\n"
	                      "title: The title\n"
	                      "repositoryId: repo-9\n"
	                      "installScript: |\n"
	                      "  echo install-says-hello\n"
	                      "  echo install-on-stderr >&2\n"
	                      "  pwd > marker\n"
	                      "  stat -c %a .keruta/tasks/t-1/install.sh >> marker\n"
	                      "  echo \"$KERUTA_TASK_ID $TASK_EXTRA\" >> marker\n"
	                      "  echo \"$KERUTA_TASK_TITLE|$KERUTA_REPOSITORY_ID|$KERUTA_WORK_DIR\" >> marker\n"
	                      "env: {TASK_EXTRA: from-task}\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "init failed:\n%s", x.log);
	char *marker = kx_read(x.work, "marker", NULL);
	cr_assert_not_null(marker, "the script did not run in the work dir:\n%s", x.log);
	char *want = NULL;
	cr_assert(asprintf(&want, "%s\n700\nt-1 from-task\nThe title|repo-9|%s\n", x.work, x.work) > 0);
	cr_assert_str_eq(marker, want);
	/* passed through to the agent's own output ... */
	cr_assert(kt_contains(x.r.out, "install-says-hello"), "stdout:\n%s", x.r.out);
	cr_assert(kt_contains(x.r.err, "install-on-stderr"), "stderr:\n%s", x.r.err);
	/* ... and shipped as log lines of the task */
	cr_assert(kt_contains(x.events, "install-says-hello"), "events:\n%s", x.events);
	cr_assert(kt_contains(x.events, "install-on-stderr"), "events:\n%s", x.events);
	free(want);
	free(marker);
	kx_free(&x);
}

Test(install, script_from_a_file)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_write(x.dir, "scripts/setup.sh", "#!/bin/sh\necho from-file > marker\n");
	kt_write_file(x.task, "id: t-1\ninstallScript: {path: scripts/setup.sh}\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	char *m = kx_read(x.work, "marker", NULL);
	cr_assert_str_eq(m ? m : "", "from-file\n");
	free(m);
	kx_free(&x);
}

/* installScript: {path: FIFO} (a ConfigMap mounted wrong): refused with
 * the file's name, never waited on, and nothing runs. */
Test(install, fifo_script_path_is_refused_not_waited_on)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	char *fifo = kt_path(x.dir, "setup-fifo");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	kt_write_file(x.task, "id: t-1\ninstallScript: {path: setup-fifo}\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 2, "%s", x.log);
	cr_expect(kt_contains(x.log, "setup-fifo") && kt_contains(x.log, "not a regular file"), "%s",
	          x.log);
	char *sh = kt_path(x.work, ".keruta/tasks/t-1/install.sh");
	cr_expect_neq(access(sh, F_OK), 0, "an install script was written");
	free(sh);
	free(fifo);
	kx_free(&x);
}

Test(install, failure_fails_init_with_exit_code)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\n"
	                      "installScript: \"echo about-to-fail; exit 7\"\n"
	                      "documents: [{id: d1, name: a.md, content: x}]\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "init should fail with 1:\n%s", x.log);
	cr_assert(kt_contains(x.termtext, "exit code 7"), "termination log: %s", x.termtext);
	cr_assert(kt_contains(x.termtext, "\"stage\":\"install\""), "%s", x.termtext);
	cr_assert(kt_contains(x.events, "\"status\":\"FAILED\""), "%s", x.events);
	cr_assert(kt_contains(x.events, "exit code 7"), "%s", x.events);
	/* the stages after it did not run */
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/documents/a.md"));
	kx_free(&x);
}

Test(install, killed_by_signal)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\ninstallScript: \"kill -9 $$\"\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "signal 9"), "termination log: %s", x.termtext);
	kx_free(&x);
}

Test(install, no_script_skips)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "no install script"), "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/install.sh"));
	kx_free(&x);
}

Test(install, empty_script_skips)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\ninstallScript: \"  \\n\\n\"\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "no install script"), "%s", x.log);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/install.sh"));
	kx_free(&x);
}

Test(install, timeout_kills_the_script_and_its_children)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE,
	            "  install: {plugin: install, with: {timeout: 1s}}\n"
	            "  document: {plugin: document}\n");
	kt_write_file(x.task, "id: t-1\n"
	                      "installScript: |\n"
	                      "  sleep 60 &\n"
	                      "  echo $! > child.pid\n"
	                      "  wait\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "did not finish within 1s"), "termination log: %s",
	          x.termtext);
	char *pid = kx_read(x.work, "child.pid", NULL);
	cr_assert_not_null(pid);
	/* the agent reaps what it kills: give the kernel a moment at most */
	int alive = 1;
	for (int i = 0; i < 50 && alive; i++) {
		alive = kill(atoi(pid), 0) == 0;
		if (alive)
			usleep(100000);
	}
	cr_assert(!alive, "the script's background child %s survived the timeout", pid);
	free(pid);
	kx_free(&x);
}

Test(install, keruta_symlink_in_repository_is_refused)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	char *elsewhere = kt_path(x.dir, "elsewhere");
	char *link = kt_path(x.work, ".keruta");
	cr_assert_eq(mkdir(elsewhere, 0755), 0);
	cr_assert_eq(symlink(elsewhere, link), 0);
	kt_write_file(x.task, "id: t-1\ninstallScript: \"touch marker\"\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "not a directory"), "%s", x.termtext);
	cr_assert_eq(kx_count_entries(elsewhere), 0, "something was written through the link");
	cr_assert(!kx_exists(x.work, "marker"));
	free(elsewhere);
	free(link);
	kx_free(&x);
}

Test(install, planted_install_sh_symlink_is_not_written_through)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	char *victim = kt_path(x.dir, "victim");
	kt_write_file(victim, "precious\n");
	kx_write(x.work, ".keruta/tasks/t-1/placeholder", "");
	char *link = kt_path(x.work, ".keruta/tasks/t-1/install.sh");
	cr_assert_eq(symlink(victim, link), 0);
	kt_write_file(x.task, "id: t-1\ninstallScript: \"echo ran > marker\"\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	char *v = kt_read_file(victim, NULL);
	cr_assert_str_eq(v, "precious\n");
	char *m = kx_read(x.work, "marker", NULL);
	cr_assert_str_eq(m ? m : "", "ran\n");
	free(m);
	free(v);
	free(victim);
	free(link);
	kx_free(&x);
}

/* A shell that does not exist, and a script running a command that does
 * not: both fail init, each saying which it was. */
Test(install, missing_shell_and_missing_command_are_told_apart)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE,
	            "  install: {plugin: install, with: {shell: /no/such/shell}}\n"
	            "  document: {plugin: document}\n");
	kt_write_file(x.task, "id: t-1\ninstallScript: \"touch marker\"\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "/no/such/shell"), "%s", x.termtext);
	cr_assert(!kx_exists(x.work, "marker"));

	kx_pipeline(&x, INIT_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\ninstallScript: \"no-such-command-xyz\"\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "exit code 127 (a command it runs, or the shell /bin/sh, "
	                                  "was not found)"),
	          "%s", x.termtext);
	kx_free(&x);
}

/* A script over 64 KiB is not read to decide whether it is empty: it runs. */
Test(install, long_script_runs)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	size_t n = 70000;
	char *text = malloc(n + 64);
	memset(text, '#', n);
	strcpy(text + n, "\ntouch marker\n");
	kx_write(x.dir, "scripts/long.sh", text);
	kt_write_file(x.task, "id: t-1\ninstallScript: {path: scripts/long.sh}\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kx_exists(x.work, "marker"), "%s", x.log);
	free(text);
	kx_free(&x);
}

/* An install.sh the agent cannot replace (immutable): init fails naming
 * it, and the old file is not run. */
Test(install, install_sh_that_cannot_be_replaced_fails)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\ninstallScript: \"touch marker\"\n");
	kx_write(x.work, ".keruta/tasks/t-1/install.sh", "touch old-ran\n");
	char *stuck = kt_path(x.work, ".keruta/tasks/t-1/install.sh");
	if (kt_immutable(stuck, 1) != 0) {
		free(stuck);
		kx_free(&x);
		cr_skip_test("needs root and a file system with the immutable attribute (chattr +i)");
	}
	kx_agent(&x, "init", NULL, NULL);
	kt_immutable(stuck, 0);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.log, "cannot create"), "%s", x.log);
	cr_assert(!kx_exists(x.work, "marker"));
	cr_assert(!kx_exists(x.work, "old-ran"));
	free(stuck);
	kx_free(&x);
}

/* `with: shell: ""` means the default shell, /bin/sh. */
Test(install, empty_shell_option_uses_bin_sh)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE,
	            "  install: {plugin: install, with: {shell: \"\"}}\n"
	            "  document: {plugin: document}\n");
	kt_write_file(x.task, "id: t-1\ninstallScript: \"touch marker\"\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kx_exists(x.work, "marker"), "%s", x.log);
	cr_assert(kt_contains(x.log, "with /bin/sh"), "%s", x.log);
	kx_free(&x);
}

/* The log line says the time limit as the pipeline would: whole hours in
 * h, a fraction of a second in ms, and 0 as no limit. */
Test(install, the_time_limit_is_logged_as_an_operator_writes_it)
{
	static const struct {
		const char *with, *logged;
	} cases[] = {{"2h", "(timeout 2h)"}, {"1500ms", "(timeout 1500ms)"}, {"0s", "(timeout none)"}};
	kx x;
	kx_setup(&x);
	kt_write_file(x.task, "id: t-1\ninstallScript: \"touch marker\"\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *stages = NULL;
		cr_assert(asprintf(&stages,
		                   "  install: {plugin: install, with: {timeout: %s}}\n"
		                   "  document: {plugin: document}\n",
		                   cases[i].with) > 0);
		kx_pipeline(&x, INIT_PHASE, stages);
		free(stages);
		kx_agent(&x, "init", NULL, NULL);
		cr_expect_eq(x.r.status, 0, "%s: %s", cases[i].with, x.log);
		cr_expect(kt_contains(x.log, cases[i].logged), "%s: want '%s' in:\n%s", cases[i].with,
		          cases[i].logged, x.log);
		cr_expect(kx_exists(x.work, "marker"), "%s", x.log);
	}
	kx_free(&x);
}

/* SIGTERM to the agent while the install script runs (the script sends
 * it to its parent, the agent, so the timing is the script's): init
 * stops as cancelled, the script is stopped before its next command, and
 * the outcome says terminated rather than naming an exit code. */
Test(install, sigterm_while_the_script_runs_cancels_init)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, INIT_PHASE, NULL);
	kt_write_file(x.task, "id: t-1\ninstallScript: |\n"
	                      "  kill -TERM $PPID\n"
	                      "  sleep 5\n"
	                      "  touch after\n");
	kx_agent(&x, "init", NULL, NULL);
	cr_expect_eq(x.r.status, 1, "%s", x.log);
	cr_expect(kt_contains(x.log, "received SIGTERM"), "%s", x.log);
	cr_expect(kt_contains(x.termtext, "terminated"), "%s", x.termtext);
	cr_expect(!kt_contains(x.log, "install script failed with exit code"), "%s", x.log);
	cr_expect(!kx_exists(x.work, "after"), "the script went on after SIGTERM");
	kx_free(&x);
}
