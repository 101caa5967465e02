/*
 * The work area (.keruta) through the real binary: links planted in it are
 * removed, never written through; each artifact reaches keruta-api once
 * however often collect runs (the upload record); a child task on its
 * parent's work dir uploads and reads only its own files.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "init_harness.c"

#define PIPELINE_AREA                                                                      \
	"version: 1\nphases:\n  run: [execute, collect]\n  cleanup: [collect, cleanup]\n"      \
	"  init: [document]\n"                                                                  \
	"stages:\n  execute: {plugin: execute, with: {command: '%s'}}\n"                        \
	"  collect: {plugin: collect}\n  cleanup: {plugin: cleanup, when: always}\n"            \
	"  document: {plugin: document}\n"

static void area_pipeline(kx *x, const char *command)
{
	char *text = NULL;
	cr_assert(asprintf(&text, PIPELINE_AREA, command) > 0);
	kt_write_file(x->pipeline, text);
	free(text);
}

/* Entries of dir not starting with '.'; -1 when it cannot be read. */
static int visible_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Local mode with the default events file and artifacts dir, both in
 * the work dir's .keruta. */
static void agent_defaults(kx *x, const char *cmd)
{
	x->name_files = 0;
	kx_agent(x, cmd, NULL, NULL);
	x->name_files = 1;
}

Test(area, links_planted_in_the_area_are_removed_not_followed)
{
	kx x;
	kx_setup(&x);
	char *outside = kt_path(x.dir, "outside");
	cr_assert_eq(mkdir(outside, 0755), 0);
	char *victim = kt_path(x.dir, "victim");
	kt_write_file(victim, "precious\n");
	kx_write(x.work, ".keruta/tasks/t-1/placeholder", "");
	const char *links[][2] = {{".keruta/tasks/t-1/env", outside},
	                          {".keruta/doc", outside},
	                          {".keruta/documents", "/etc"},
	                          {".keruta/artifacts", outside},
	                          {".keruta/events.jsonl", victim},
	                          {".keruta/tasks/t-1/uploads", victim}};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char *l = kt_path(x.work, links[i][0]);
		cr_assert_eq(symlink(links[i][1], l), 0, "%s", links[i][0]);
		free(l);
	}
	/* a description over env_max goes to a file under env/ */
	char *task = NULL;
	char big[40000];
	memset(big, 'd', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert(asprintf(&task, "id: t-1\ndescription: %s\n", big) > 0);
	kt_write_file(x.task, task);
	area_pipeline(&x, "echo out > .keruta/doc/out.txt");
	agent_defaults(&x, "run");
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert_eq(visible_entries(outside), 0, "written through a planted link:\n%s", x.log);
	char *v = kt_read_file(victim, NULL);
	cr_assert_str_eq(v ? v : "", "precious\n", "written through a planted link");
	cr_assert(kt_contains(x.log, "removed 'env'"), "%s", x.log);
	/* what the agent wrote is where it belongs */
	char *art = kx_read(x.work, ".keruta/artifacts/out.txt", NULL);
	cr_assert_str_eq(art ? art : "", "out\n", "%s", x.log);
	char *env = kx_read(x.work, ".keruta/tasks/t-1/env/KERUTA_TASK_DESCRIPTION", NULL);
	cr_assert(env && strlen(env) == sizeof(big) - 1, "the env file is missing");
	char *events = kx_read(x.work, ".keruta/events.jsonl", NULL);
	cr_assert(kt_contains(events, "\"COMPLETED\""), "%s", events ? events : "(none)");
	free(events);
	free(env);
	free(art);
	free(v);
	free(task);
	free(victim);
	free(outside);
	kx_free(&x);
}

Test(area, a_keruta_symlink_is_refused)
{
	kx x;
	kx_setup(&x);
	char *outside = kt_path(x.dir, "outside");
	cr_assert_eq(mkdir(outside, 0755), 0);
	mkdir(x.work, 0755);
	char *l = kt_path(x.work, ".keruta");
	cr_assert_eq(symlink(outside, l), 0);
	area_pipeline(&x, "true");
	kx_agent(&x, "run", NULL, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "is not a directory"), "%s", x.termtext);
	cr_assert_eq(visible_entries(outside), 0);
	free(l);
	free(outside);
	kx_free(&x);
}

/* What stands in the area where the agent needs something else, other
 * than a link: a real directory or file at .keruta/doc or
 * .keruta/documents is someone's work, moved aside to .keruta/unowned/
 * and never uploaded; a file where the agent keeps a directory, and a
 * FIFO where it writes a file, are removed (opening a FIFO would block). */
Test(area, real_files_in_the_agents_places_are_moved_aside_or_removed)
{
	kx x;
	kx_setup(&x);
	kx_write(x.work, ".keruta/doc/mine.txt", "my notes\n");
	kx_write(x.work, ".keruta/documents", "a file of the repository\n");
	kx_write(x.work, ".keruta/tasks/t-1/documents", "not a directory\n");
	char *fifo = kt_path(x.work, ".keruta/events.jsonl");
	cr_assert_eq(mkfifo(fifo, 0644), 0);
	area_pipeline(&x, "echo out > .keruta/doc/out.txt");
	agent_defaults(&x, "run");
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_expect(kt_contains(x.log, "moved .keruta/doc aside to .keruta/unowned/doc."), "%s",
	          x.log);
	cr_expect(kt_contains(x.log, "moved .keruta/documents aside to "
	                             ".keruta/unowned/documents."),
	          "%s", x.log);
	cr_expect(kt_contains(x.log, "removed 'documents' from the agent's area .keruta: a file"),
	          "%s", x.log);
	cr_expect(kt_contains(x.log, "removed 'events.jsonl' from the agent's area: a special file"),
	          "%s", x.log);
	/* the names now show the task's own directories */
	char *doc = kt_path(x.work, ".keruta/doc");
	char target[256] = "";
	ssize_t n = readlink(doc, target, sizeof(target) - 1);
	cr_expect(n > 0 && strcmp(target, "tasks/t-1/doc") == 0, ".keruta/doc -> '%s'",
	          n > 0 ? target : "(not a link)");
	/* what was there is kept, whole, under unowned/ */
	char *unowned = kt_path(x.work, ".keruta/unowned");
	cr_expect_eq(visible_entries(unowned), 2, "%s", x.log);
	DIR *d = opendir(unowned);
	int mine = 0, file = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		char *rel = NULL;
		cr_assert(asprintf(&rel, ".keruta/unowned/%s", e->d_name) > 0);
		if (strncmp(e->d_name, "doc.", 4) == 0) {
			char *inner = NULL;
			cr_assert(asprintf(&inner, "%s/mine.txt", rel) > 0);
			char *t = kx_read(x.work, inner, NULL);
			mine = t && strcmp(t, "my notes\n") == 0;
			free(t);
			free(inner);
		} else if (strncmp(e->d_name, "documents.", 10) == 0) {
			char *t = kx_read(x.work, rel, NULL);
			file = t && strcmp(t, "a file of the repository\n") == 0;
			free(t);
		}
		free(rel);
	}
	if (d)
		closedir(d);
	cr_expect(mine, "the directory .keruta/doc was not kept under unowned/");
	cr_expect(file, "the file .keruta/documents was not kept under unowned/");
	/* only the task's own files are collected */
	char *art = kx_read(x.work, ".keruta/artifacts/out.txt", NULL);
	cr_expect_str_eq(art ? art : "", "out\n", "%s", x.log);
	cr_expect(!kx_exists(x.work, ".keruta/artifacts/mine.txt"), "someone's file was collected");
	struct stat st;
	cr_expect(lstat(fifo, &st) == 0 && S_ISREG(st.st_mode), "the events file is not a file");
	char *events = kt_read_file(fifo, NULL);
	cr_expect(kt_contains(events, "\"COMPLETED\""), "%s", events ? events : "(none)");
	free(events);
	free(art);
	free(unowned);
	free(doc);
	free(fifo);
	kx_free(&x);
}

/* Immutable (so even root cannot change them): the work dir, where
 * .keruta cannot be made; .keruta/tasks, where the task's area cannot be
 * made; a file at .keruta/unowned, so a directory at .keruta/doc cannot
 * be moved aside; .keruta itself, so .keruta/doc cannot be pointed at the
 * task's own doc/ (whether nothing, a link elsewhere or a directory stands
 * there).  Each fails the stage with the system's reason before the
 * task's command runs.  setup is a shell command run in the work dir. */
static void blocked(const char *setup, const char *immutable, const char *needle)
{
	kx x;
	kx_setup(&x);
	if (setup) {
		const char *sh[] = {"/bin/sh", "-c", setup, NULL};
		kt_result r;
		cr_assert_eq(kt_run(&r, sh, NULL, x.work, NULL, 30), 0);
		cr_assert_eq(r.status, 0, "%s: %s", setup, r.err);
		kt_result_free(&r);
	}
	char *stuck = kt_path(x.work, immutable);
	if (kt_immutable(stuck, 1) != 0) {
		free(stuck);
		kx_free(&x);
		cr_skip_test("cannot make a file immutable here (not root, or the file system lacks "
		             "the attribute)");
	}
	area_pipeline(&x, "touch ran");
	kx_agent(&x, "run", NULL, NULL);
	kt_immutable(stuck, 0);
	cr_expect_eq(x.r.status, 1, "%s: %s", setup ? setup : "", x.log);
	cr_expect(kt_contains(x.log, needle), "%s: '%s' not in: %s", setup ? setup : "", needle,
	          x.log);
	cr_expect(!kx_exists(x.work, "ran"), "the command ran");
	free(stuck);
	kx_free(&x);
}

Test(area, a_work_dir_where_the_area_cannot_be_made_fails_saying_so)
{
	blocked(NULL, ".", "/.keruta: Operation not permitted; check that the work dir "
	                   "exists and is writable");
	blocked("mkdir -p .keruta/tasks", ".keruta/tasks",
	        "/.keruta/tasks/t-1/: Operation not permitted");
}

Test(area, a_doc_directory_that_cannot_be_moved_aside_fails_saying_so)
{
	static const char mine[] = "/.keruta/doc at the task's own directory: Operation not "
	                           "permitted";
	blocked("mkdir -p .keruta/doc && echo x > .keruta/unowned", ".keruta/unowned", mine);
	/* the task's own directories are there; .keruta cannot change */
	static const char own[] = "mkdir -p .keruta/tasks/t-1/doc .keruta/tasks/t-1/documents";
	char *setup = NULL;
	cr_assert(asprintf(&setup, "%s", own) > 0);
	blocked(setup, ".keruta", mine);
	free(setup);
	cr_assert(asprintf(&setup, "%s && ln -s /tmp .keruta/doc", own) > 0);
	blocked(setup, ".keruta", mine);
	free(setup);
	cr_assert(asprintf(&setup, "%s .keruta/doc .keruta/unowned", own) > 0);
	blocked(setup, ".keruta", mine);
	free(setup);
}

/* A work dir where .keruta cannot be made, with the events file in it by
 * default: the stage fails saying why, the events file's failure is said
 * once, and the summary does not name a file that was never written. */
Test(area, an_events_file_that_cannot_be_opened_is_said_once)
{
	kx x;
	kx_setup(&x);
	if (kt_immutable(x.work, 1) != 0) {
		kx_free(&x);
		cr_skip_test("cannot make a directory immutable here (not root, or the file system "
		             "lacks the attribute)");
	}
	area_pipeline(&x, "touch ran");
	agent_defaults(&x, "run");
	kt_immutable(x.work, 0);
	cr_expect_eq(x.r.status, 1, "%s", x.log);
	static const char warning[] = "/.keruta/events.jsonl: Operation not permitted; this run's "
	                              "events are not recorded";
	const char *at = strstr(x.log, warning);
	cr_expect(at, "%s", x.log);
	cr_expect(!at || !strstr(at + 1, warning), "said more than once: %s", x.log);
	cr_expect(kt_contains(x.r.out, "no events file (cannot open the events file "), "%s", x.log);
	cr_expect(!kt_contains(x.r.out, "events in "), "%s", x.log);
	cr_expect(!kx_exists(x.work, "ran"), "the command ran");
	kx_free(&x);
}

/* The log spool in API mode: a link planted where the task's spool goes
 * is not appended to when keruta-api refuses the log lines. */
Test(area, planted_log_spool_link_is_not_written_through)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	area_pipeline(&x, "echo a-line-for-the-spool");
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\"}]}");
	kx_api_control(&api, "/_control/fault",
	               "{\"match\":{\"path_regex\":\"/logs$\"},\"action\":\"status\",\"code\":503,"
	               "\"times\":-1}");
	char *victim = kt_path(x.dir, "victim");
	kt_write_file(victim, "precious\n");
	kx_write(x.work, ".keruta/tasks/t1/placeholder", "");
	char *l = kt_path(x.work, ".keruta/tasks/t1/log-spool");
	cr_assert_eq(symlink(victim, l), 0);
	const char *args[] = {"--task-id", "t1", "--flush-timeout", "1s", NULL};
	kx_agent_api(&x, &api, "run", args, NULL);
	char *v = kt_read_file(victim, NULL);
	cr_assert_str_eq(v ? v : "", "precious\n", "the spool was written through a link:\n%s",
	                 x.log);
	free(v);
	free(l);
	free(victim);
	kt_api_stop(&api);
	kx_free(&x);
}

/* How many uploads of `name` keruta-api recorded for the task. */
static int uploads_of(kt_api *api, const char *task, const char *name)
{
	char *state = kx_api_state(api);
	char *key = NULL;
	cr_assert(asprintf(&key, "\"%s\": [", task) > 0);
	char *uploads = strstr(state, "\"uploads\"");
	char *p = uploads ? strstr(uploads, key) : NULL;
	int n = 0;
	if (p) {
		char *end = strchr(p, ']');
		char *want = NULL;
		cr_assert(asprintf(&want, "\"name\": \"%s\"", name) > 0);
		for (char *q = strstr(p, want); q && (!end || q < end); q = strstr(q + 1, want))
			n++;
		free(want);
	}
	free(key);
	free(state);
	return n;
}

/* A file in the area the agent cannot open for writing (immutable, so
 * even root cannot) fails its copy with the system's reason; it is never
 * taken for a descriptor that works. */
Test(area, an_artifact_that_cannot_be_written_fails_with_the_reason)
{
	kx x;
	kx_setup(&x);
	area_pipeline(&x, "echo a > .keruta/doc/a.txt");
	char *stuck = kx_mk(x.work, ".keruta/artifacts/a.txt");
	kt_write_file(stuck, "old\n");
	if (kt_immutable(stuck, 1) != 0) {
		free(stuck);
		kx_free(&x);
		cr_skip_test("cannot make a file immutable here (not root, or the file system lacks "
		             "the attribute)");
	}
	agent_defaults(&x, "run");
	kt_immutable(stuck, 0);
	cr_expect_eq(x.r.status, 1, "%s", x.log);
	cr_expect(kt_contains(x.log, "Operation not permitted"), "%s", x.log);
	char *kept = kt_read_file(stuck, NULL);
	cr_expect_str_eq(kept, "old\n");
	free(kept);
	free(stuck);
	kx_free(&x);
}

Test(area, run_then_cleanup_uploads_each_artifact_once)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	area_pipeline(&x, "echo a > .keruta/doc/a.txt; mkdir -p .keruta/doc/sub; "
	                  "echo b > .keruta/doc/sub/b.txt");
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\"}]}");
	const char *args[] = {"--task-id", "t1", NULL};
	kx_agent_api(&x, &api, "run", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	kx_agent_api(&x, &api, "cleanup", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert(kt_contains(x.log, "2 already collected"), "%s", x.log);
	/* and a retried cleanup Job */
	kx_agent_api(&x, &api, "cleanup", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert_eq(uploads_of(&api, "t1", "a.txt"), 1);
	cr_assert_eq(uploads_of(&api, "t1", "sub/b.txt"), 1);
	/* the record names the document keruta-api created */
	char *rec = kx_read(x.work, ".keruta/tasks/t1/uploads", NULL);
	cr_assert(rec && kt_contains(rec, " a.txt\n") && !kt_contains(rec, " - a.txt"), "%s",
	          rec ? rec : "(none)");
	free(rec);
	/* changed content is a new artifact version: sent again, once */
	kx_write(x.work, ".keruta/tasks/t1/doc/a.txt", "changed\n");
	kx_agent_api(&x, &api, "cleanup", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert_eq(uploads_of(&api, "t1", "a.txt"), 2);
	cr_assert_eq(uploads_of(&api, "t1", "sub/b.txt"), 1);
	kt_api_stop(&api);
	kx_free(&x);
}

Test(area, cleanup_retried_after_a_failed_upload_sends_only_what_is_missing)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	area_pipeline(&x, "true");
	kx_api_control(&api, "/_control/seed", "{\"tasks\":[{\"id\":\"t1\"}]}");
	kx_write(x.work, ".keruta/tasks/t1/doc/a.txt", "a");
	kx_write(x.work, ".keruta/tasks/t1/doc/b.txt", "b");
	kx_write(x.work, ".keruta/tasks/t1/doc/c.txt", "c");
	/* a.txt goes through; then the connection drops on every attempt (b.txt, c.txt) */
	kx_api_control(&api, "/_control/fault",
	               "{\"match\":{\"method\":\"POST\",\"path_regex\":\"/documents$\"},"
	               "\"action\":\"drop\",\"times\":6,\"skip\":1}");
	const char *args[] = {"--task-id", "t1", NULL};
	kx_agent_api(&x, &api, "cleanup", args, NULL);
	cr_assert_eq(x.r.status, 1, "%s", x.log);
	cr_assert(kt_contains(x.termtext, "b.txt"), "%s", x.termtext);
	cr_assert_eq(uploads_of(&api, "t1", "b.txt"), 0);
	kx_agent_api(&x, &api, "cleanup", args, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	cr_assert_eq(uploads_of(&api, "t1", "a.txt"), 1);
	cr_assert_eq(uploads_of(&api, "t1", "b.txt"), 1);
	cr_assert_eq(uploads_of(&api, "t1", "c.txt"), 1);
	kt_api_stop(&api);
	kx_free(&x);
}

/* The seeds' child task on its parent's volume: same work dir. */
Test(area, child_task_uploads_and_reads_only_its_own_files)
{
	kx x;
	kt_api api;
	kx_setup(&x);
	kx_api_start(&api);
	area_pipeline(&x, "env > .keruta/doc/env-$KERUTA_TASK_ID.txt; "
	                  "ls .keruta/documents > .keruta/doc/docs-$KERUTA_TASK_ID.txt");
	kx_api_control(&api, "/_control/seed",
	               "{\"tasks\":[{\"id\":\"p1\",\"documentIds\":[\"d1\"]},"
	               "{\"id\":\"c1\",\"parentTaskId\":\"p1\",\"documentIds\":[\"d2\"]}],"
	               "\"documents\":{\"d1\":{\"name\":\"parent.md\",\"content\":\"p\"},"
	               "\"d2\":{\"name\":\"child.md\",\"content\":\"c\"}}}");
	const char *parent[] = {"--task-id", "p1", NULL};
	const char *child[] = {"--task-id", "c1", NULL};
	kx_agent_api(&x, &api, "init", parent, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	kx_agent_api(&x, &api, "run", parent, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	kx_agent_api(&x, &api, "init", child, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	kx_agent_api(&x, &api, "run", child, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	kx_agent_api(&x, &api, "cleanup", child, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);
	/* the parent's cleanup Job, late */
	kx_agent_api(&x, &api, "cleanup", parent, NULL);
	cr_assert_eq(x.r.status, 0, "%s", x.log);

	cr_assert_eq(uploads_of(&api, "c1", "env-c1.txt"), 1);
	cr_assert_eq(uploads_of(&api, "c1", "env-p1.txt"), 0, "the parent's file went as the child's");
	cr_assert_eq(uploads_of(&api, "c1", "docs-p1.txt"), 0);
	cr_assert_eq(uploads_of(&api, "p1", "env-p1.txt"), 1);
	cr_assert_eq(uploads_of(&api, "p1", "env-c1.txt"), 0, "the child's file went as the parent's");
	/* each task's scripts saw only its own documents */
	char *docs = kx_read(x.work, ".keruta/tasks/c1/doc/docs-c1.txt", NULL);
	cr_assert_str_eq(docs ? docs : "", "child.md\n");
	free(docs);
	docs = kx_read(x.work, ".keruta/tasks/p1/doc/docs-p1.txt", NULL);
	cr_assert_str_eq(docs ? docs : "", "parent.md\n");
	free(docs);
	/* the parent's artifacts stay readable under its id */
	cr_assert(kx_exists(x.work, ".keruta/tasks/p1/doc/env-p1.txt"));
	kt_api_stop(&api);
	kx_free(&x);
}
