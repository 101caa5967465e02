/*
 * The collect stage through the real binary in local mode (artifacts are
 * copied to --artifacts-dir): every regular file under .keruta/doc, by
 * its relative name; symlinks and special files are skipped, never
 * followed or opened; size limits; upload failures fail the stage at the
 * end, naming the files.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include "init_harness.c"

#define RUN_PHASE "  run: [collect]\n"

static void assert_artifact(kx *x, const char *name, const void *data, size_t len)
{
	size_t got_len = 0;
	char *got = kx_read(x->arts, name, &got_len);
	cr_assert_not_null(got, "artifact '%s' missing; log:\n%s", name, x->log);
	cr_assert_eq(got_len, len, "artifact '%s' has %zu bytes, not %zu", name, got_len, len);
	cr_assert(memcmp(got, data, len) == 0, "artifact '%s' differs", name);
	free(got);
}

Test(collect, nested_dirs_and_empty_files)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	kx_write(x.work, ".keruta/tasks/t-1/doc/report.md", "# report\n");
	kx_write(x.work, ".keruta/tasks/t-1/doc/sub/deeper/data.bin", "");
	kx_write_bytes(x.work, ".keruta/tasks/t-1/doc/sub/bin", "a\0b\xff", 4);
	kx_write(x.work, ".keruta/tasks/t-1/doc/empty", "");
	kx_write(x.work, ".keruta/tasks/t-1/doc/.hidden", "h");
	kx_write(x.work, "README", "not an artifact");
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_artifact(&x, "report.md", "# report\n", 9);
	assert_artifact(&x, "sub/deeper/data.bin", "", 0);
	assert_artifact(&x, "sub/bin", "a\0b\xff", 4);
	assert_artifact(&x, "empty", "", 0);
	assert_artifact(&x, ".hidden", "h", 1);
	cr_assert(!kx_exists(x.arts, "README"));
	cr_assert_eq(kt_count(x.events, "\"type\":\"artifact\""), 5, "%s", x.events);
	cr_assert(kt_contains(x.events, "\"name\":\"sub/deeper/data.bin\""), "%s", x.events);
	/* local mode copies: nothing may claim an upload */
	cr_assert(kt_contains(x.log, "collected 5 files"), "%s", x.log);
	cr_assert(!kt_contains(x.log, "upload"), "%s", x.log);
	kx_free(&x);
}

Test(collect, symlinks_pointing_out_are_skipped)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	char *secret = kt_path(x.dir, "token");
	kt_write_file(secret, "service-account-token");
	char *secret_dir = kt_path(x.dir, "secrets");
	mkdir(secret_dir, 0755);
	kx_write(secret_dir, "inner", "inner-secret");
	kx_write(x.work, ".keruta/tasks/t-1/doc/ok.txt", "ok");
	char *l1 = kt_path(x.work, ".keruta/tasks/t-1/doc/token");
	char *l2 = kt_path(x.work, ".keruta/tasks/t-1/doc/shadow");
	char *l3 = kt_path(x.work, ".keruta/tasks/t-1/doc/dirlink");
	char *l4 = kt_path(x.work, ".keruta/tasks/t-1/doc/inside");
	cr_assert_eq(symlink(secret, l1), 0);
	cr_assert_eq(symlink("/etc/shadow", l2), 0);
	cr_assert_eq(symlink(secret_dir, l3), 0);
	cr_assert_eq(symlink("ok.txt", l4), 0);
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_artifact(&x, "ok.txt", "ok", 2);
	cr_assert_eq(kx_count_entries(x.arts), 1, "only ok.txt may be uploaded; log:\n%s", x.log);
	cr_assert(kt_contains(x.log, "skipped token: symlink"), "%s", x.log);
	cr_assert(kt_contains(x.log, "skipped shadow: symlink"), "%s", x.log);
	cr_assert(kt_contains(x.log, "skipped dirlink: symlink"), "%s", x.log);
	cr_assert(!kt_contains(x.events, "service-account-token"));
	free(secret);
	free(secret_dir);
	free(l1);
	free(l2);
	free(l3);
	free(l4);
	kx_free(&x);
}

Test(collect, doc_dir_itself_a_symlink_is_not_followed)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	char *outside = kt_path(x.dir, "outside");
	mkdir(outside, 0755);
	kx_write(outside, "secret", "s");
	kx_write(x.work, ".keruta/tasks/t-1/placeholder", "");
	char *link = kt_path(x.work, ".keruta/tasks/t-1/doc");
	cr_assert_eq(symlink(outside, link), 0);
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(!kx_exists(x.arts, "secret"), "the symlinked directory was followed");
	cr_assert(kt_contains(x.log, "not followed"), "%s", x.log);
	free(outside);
	free(link);
	kx_free(&x);
}

Test(collect, fifo_and_socket_skipped_without_hanging)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	kx_write(x.work, ".keruta/tasks/t-1/doc/a.txt", "a");
	char *fifo = kt_path(x.work, ".keruta/tasks/t-1/doc/pipe");
	cr_assert_eq(mkfifo(fifo, 0644), 0);
	char *sock = kt_path(x.work, ".keruta/tasks/t-1/doc/sock");
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cr_assert_lt(strlen(sock), sizeof(sa.sun_path));
	strcpy(sa.sun_path, sock);
	cr_assert_eq(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	kx_agent(&x, "run", NULL, NULL); /* a blocking open would hit the 60 s limit */
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_artifact(&x, "a.txt", "a", 1);
	cr_assert(!kx_exists(x.arts, "pipe"));
	cr_assert(!kx_exists(x.arts, "sock"));
	cr_assert(kt_contains(x.log, "skipped pipe: special file"), "%s", x.log);
	cr_assert(kt_contains(x.log, "skipped sock: special file"), "%s", x.log);
	close(sfd);
	free(sock);
	free(fifo);
	kx_free(&x);
}

Test(collect, size_limits)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE,
	            "  collect: {plugin: collect, with: {max_file_size: 1KB, "
	            "max_total_size: 1500}}\n");
	char buf[2000];
	memset(buf, 'q', sizeof(buf));
	kx_write_bytes(x.work, ".keruta/tasks/t-1/doc/a-big", buf, 1001);
	kx_write_bytes(x.work, ".keruta/tasks/t-1/doc/b-900", buf, 900);
	kx_write_bytes(x.work, ".keruta/tasks/t-1/doc/c-700", buf, 700); /* 900 + 700 > 1500 */
	kx_write_bytes(x.work, ".keruta/tasks/t-1/doc/d-600", buf, 600);
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(!kx_exists(x.arts, "a-big"));
	assert_artifact(&x, "b-900", buf, 900);
	cr_assert(!kx_exists(x.arts, "c-700"));
	assert_artifact(&x, "d-600", buf, 600);
	cr_assert(kt_contains(x.log, "skipped a-big: over the per-file limit"), "%s", x.log);
	cr_assert(kt_contains(x.log, "skipped c-700: over the total limit"), "%s", x.log);
	kx_free(&x);
}

/* The timeout only guards against a hang: on a loaded machine collecting
 * 10,000 files takes minutes. */
Test(collect, ten_thousand_small_files, .timeout = 400)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	char *doc = kx_mk(x.work, ".keruta/tasks/t-1/doc/x");
	doc[strlen(doc) - 2] = '\0';
	char name[64];
	for (int d = 0; d < 10; d++) {
		snprintf(name, sizeof(name), "%s/d%d", doc, d);
		mkdir(name, 0755);
		for (int i = 0; i < 1000; i++) {
			snprintf(name, sizeof(name), "%s/d%d/f%04d", doc, d, i);
			kt_write_file(name, "x");
		}
	}
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%.4000s", x.log);
	cr_assert(kt_contains(x.log, "collected 10000 files"), "%.4000s", x.log);
	cr_assert_eq(kt_count(x.events, "\"type\":\"artifact\""), 10000);
	for (int d = 0; d < 10; d++) {
		snprintf(name, sizeof(name), "%s/d%d", x.arts, d);
		cr_assert_eq(kx_count_entries(name), 1000);
	}
	free(doc);
	kx_free(&x);
}

Test(collect, upload_failure_fails_at_the_end_naming_files)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	kx_write(x.work, ".keruta/tasks/t-1/doc/a.txt", "a");
	kx_write(x.work, ".keruta/tasks/t-1/doc/b.txt", "b");
	kt_write_file(x.arts, "a file where the artifacts directory should be");
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "could not collect 2 files: a.txt, b.txt"), "%s",
	          x.termtext);
	cr_assert(kt_contains(x.termtext, "\"stage\":\"collect\""), "%s", x.termtext);
	kx_free(&x);
}

Test(collect, nothing_to_collect_skips)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "nothing to collect"), "%s", x.log);
	kx_free(&x);
}

Test(collect, configured_dir_relative_to_work_dir)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, "  collect: {plugin: collect, with: {dir: out/reports}}\n");
	kx_write(x.work, "out/reports/r.txt", "r");
	kx_write(x.work, ".keruta/tasks/t-1/doc/not-this", "n");
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_artifact(&x, "r.txt", "r", 1);
	cr_assert(!kx_exists(x.arts, "not-this"));
	kx_free(&x);
}

Test(collect, cleanup_command_with_source_pod)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, "  cleanup: [collect, cleanup]\n", NULL);
	kx_write(x.work, ".keruta/tasks/t-1/doc/result.txt", "done");
	kx_write(x.work, ".keruta/tasks/t-1/execute.sh", "true");
	const char *args[] = {"--task-id", "t-1", "--source-pod", "task-t-1-abcde", NULL};
	kx_agent(&x, "cleanup", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "pod task-t-1-abcde"), "%s", x.log);
	assert_artifact(&x, "result.txt", "done", 4);
	cr_assert(!kx_exists(x.work, ".keruta/tasks/t-1/execute.sh"));
	cr_assert(kx_exists(x.work, ".keruta/tasks/t-1/doc/result.txt"));
	/* the same through the environment */
	kx_agent(&x, "cleanup", NULL, (const char *const[]){"KERUTA_SOURCE_POD=pod-from-env", NULL});
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "pod pod-from-env"), "%s", x.log);
	kx_free(&x);
}

/* The run records its pod on the work volume; the cleanup Job collects
 * only from the volume of the pod it was told about. */
Test(collect, cleanup_checks_the_volume_is_the_source_pods)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE "  cleanup: [collect]\n", NULL);
	const char *id[] = {"--task-id", "t-1", NULL};
	kx_agent(&x, "run", id, (const char *const[]){"KERUTA_POD_NAME=keruta-job-t-1-aaaaa", NULL});
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	char *rec = kx_read(x.work, ".keruta/tasks/t-1/pod", NULL);
	cr_assert_not_null(rec, "the run records its pod; log:\n%s", x.log);
	cr_expect_str_eq(rec, "keruta-job-t-1-aaaaa");
	free(rec);
	/* left after the run's collect: only the cleanup Job can send it */
	kx_write(x.work, ".keruta/tasks/t-1/doc/result.txt", "done");

	/* another pod's volume: nothing collected, the task's cleanup fails */
	const char *wrong[] = {"--task-id", "t-1", "--source-pod", "keruta-job-t-1-zzzzz", NULL};
	kx_agent(&x, "cleanup", wrong, NULL);
	cr_expect_neq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "keruta-job-t-1-aaaaa") && kt_contains(x.log, "not from source pod keruta-job-t-1-zzzzz"),
	          "%s", x.log);
	cr_expect(!kx_exists(x.arts, "result.txt"), "nothing collected from another pod's volume");

	/* the right one: collected, and the check is in the task's log */
	const char *right[] = {"--task-id", "t-1", "--source-pod", "keruta-job-t-1-aaaaa", NULL};
	kx_agent(&x, "cleanup", right, NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.events, "is the one source pod keruta-job-t-1-aaaaa used"), "%s",
	          x.events);
	assert_artifact(&x, "result.txt", "done", 4);
	kx_free(&x);
}

/* The pod record lies in the task's area, where the task's own code can
 * write: a FIFO there once blocked the run's collect (writing it) and the
 * cleanup Job's (reading it) forever. */
Test(collect, a_fifo_in_place_of_the_pod_record_blocks_nothing)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE "  cleanup: [collect]\n", NULL);
	kx_write(x.work, ".keruta/tasks/t-1/doc/result.txt", "done");
	char *rec = kt_path(x.work, ".keruta/tasks/t-1/pod");
	cr_assert_eq(mkfifo(rec, 0600), 0);
	const char *id[] = {"--task-id", "t-1", NULL};
	kx_agent(&x, "run", id, (const char *const[]){"KERUTA_POD_NAME=keruta-job-t-1-aaaaa", NULL});
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	char *text = kx_read(x.work, ".keruta/tasks/t-1/pod", NULL);
	cr_expect_str_eq(text ? text : "", "keruta-job-t-1-aaaaa", "the record replaces the FIFO");
	free(text);

	cr_assert_eq(unlink(rec), 0);
	cr_assert_eq(mkfifo(rec, 0600), 0);
	const char *src[] = {"--task-id", "t-1", "--source-pod", "keruta-job-t-1-aaaaa", NULL};
	kx_agent(&x, "cleanup", src, NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "not a regular file"), "the reason is named: %s", x.log);
	free(rec);
	kx_free(&x);
}

/* What a task's code can leave in doc/ that is never uploaded: a name
 * with a line break (it would forge log lines and artifact names), a
 * symlink whose target holds one (shown with '?'), a tree nested more
 * than 64 deep.  More than 100 skips are counted, not each logged; the
 * summary gives the count by reason. */
Test(collect, control_characters_deep_trees_and_many_skips)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	kx_write(x.work, ".keruta/tasks/t-1/doc/ok.txt", "ok");
	kx_write(x.work, ".keruta/tasks/t-1/doc/bad\nname", "forged");
	char *doc = kt_path(x.work, ".keruta/tasks/t-1/doc");
	char *link = kt_path(doc, "0-odd-link");
	cr_assert_eq(symlink("there\nNOT A LOG LINE", link), 0);
	for (int i = 0; i < 110; i++) {
		char name[32];
		snprintf(name, sizeof(name), "links/l%03d", i);
		char *l = kx_mk(doc, name);
		cr_assert_eq(symlink("/etc/passwd", l), 0);
		free(l);
	}
	char deep[65 * 2 + 16] = "";
	for (int i = 0; i < 65; i++)
		strcat(deep, "d/");
	strcat(deep, "f");
	kx_write(doc, deep, "deep");
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_artifact(&x, "ok.txt", "ok", 2);
	cr_expect_eq(kx_count_entries(x.arts), 1, "only ok.txt; log:\n%s", x.log);
	cr_expect(kt_contains(x.log, "skipped 0-odd-link: symlink (-> there?NOT A LOG LINE, not "
	                             "followed)"),
	          "%s", x.log);
	cr_expect(kt_contains(x.log, ": control characters in the name"), "%s", x.log);
	cr_expect(!kt_contains(x.log, "\nNOT A LOG LINE"), "%s", x.log);
	cr_expect(kt_contains(x.log, "more files skipped; only counting them from now on"), "%s",
	          x.log);
	cr_expect(!kt_contains(x.log, "skipped links/l109"), "the 101st skip is not logged: %s", x.log);
	cr_expect(kt_contains(x.log, "skipped 113 (111 symlink, 1 control characters in the name, "
	                             "1 nested too deep)"),
	          "%s", x.log);
	free(link);
	free(doc);
	kx_free(&x);
}

/* More than ten files that cannot be collected: the first ten are named,
 * then "and more". */
Test(collect, many_failed_uploads_name_ten_and_more)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE, NULL);
	for (int i = 0; i < 12; i++) {
		char name[64];
		snprintf(name, sizeof(name), ".keruta/tasks/t-1/doc/f%02d", i);
		kx_write(x.work, name, "x");
	}
	kt_write_file(x.arts, "a file where the artifacts directory should be");
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_expect(kt_contains(x.termtext, "could not collect 12 files: f00, f01, f02, f03, f04, f05, "
	                                  "f06, f07, f08, f09 and more"),
	          "%s", x.termtext);
	kx_free(&x);
}

/* `dir:` as an absolute path is collected from there; one that is a file
 * is named, and nothing is collected; an empty `dir:` means the task's
 * doc/. */
Test(collect, absolute_dir_a_file_as_dir_and_empty_dir_option)
{
	kx x;
	kx_setup(&x);
	char *abs = kt_path(x.dir, "reports");
	kx_write(x.dir, "reports/r.txt", "r");
	kx_write(x.work, ".keruta/tasks/t-1/doc/d.txt", "d");
	char *stages = NULL;
	cr_assert(asprintf(&stages, "  collect: {plugin: collect, with: {dir: \"%s\"}}\n", abs) > 0);
	kx_pipeline(&x, RUN_PHASE, stages);
	free(stages);
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_artifact(&x, "r.txt", "r", 1);
	cr_expect(!kx_exists(x.arts, "d.txt"), "%s", x.log);

	char *file = kt_path(abs, "r.txt");
	cr_assert(asprintf(&stages, "  collect: {plugin: collect, with: {dir: \"%s\"}}\n", file) > 0);
	kx_pipeline(&x, RUN_PHASE, stages);
	free(stages);
	kx_agent(&x, "run", NULL, NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "r.txt is not a directory (a symlink?); not followed, nothing "
	                             "collected from it"),
	          "%s", x.log);
	cr_expect(kt_contains(x.log, "nothing to collect"), "%s", x.log);

	kx_pipeline(&x, RUN_PHASE, "  collect: {plugin: collect, with: {dir: \"\"}}\n");
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	assert_artifact(&x, "d.txt", "d", 1);
	free(file);
	free(abs);
	kx_free(&x);
}

/* A pod record the task's code replaced with a directory (the run cannot
 * write it: warned, the run still passes) or with a symlink (the cleanup
 * Job does not read through it: named, nothing confirmed). */
Test(collect, a_pod_record_replaced_by_a_directory_or_a_symlink)
{
	kx x;
	kx_setup(&x);
	kx_pipeline(&x, RUN_PHASE "  cleanup: [collect]\n", NULL);
	kx_write(x.work, ".keruta/tasks/t-1/doc/result.txt", "done");
	kx_write(x.work, ".keruta/tasks/t-1/pod/inside", "x");
	const char *id[] = {"--task-id", "t-1", NULL};
	kx_agent(&x, "run", id, (const char *const[]){"KERUTA_POD_NAME=keruta-job-t-1-aaaaa", NULL});
	cr_expect_eq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "cannot record pod keruta-job-t-1-aaaaa in the task's area"),
	          "%s", x.log);

	char *rec = kt_path(x.work, ".keruta/tasks/t-1/pod");
	kt_rmrf(rec);
	char *victim = kt_path(x.dir, "victim");
	kt_write_file(victim, "keruta-job-t-1-aaaaa\n");
	cr_assert_eq(symlink(victim, rec), 0);
	const char *src[] = {"--task-id", "t-1", "--source-pod", "keruta-job-t-1-aaaaa", NULL};
	kx_agent(&x, "cleanup", src, NULL);
	cr_expect_eq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "has no record of the pod that ran task t-1 (a symlink, not a "
	                             "regular file)"),
	          "%s", x.log);
	free(victim);
	free(rec);
	kx_free(&x);
}
