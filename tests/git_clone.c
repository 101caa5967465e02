/*
 * git_clone.c - the clone stage end to end: the real agent in local mode
 * against git daemon and nginx + git http-backend on loopback, with
 * repositories made by the git CLI.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "git_helpers.h"

static char *base, *wd;
static gt_server srv;

static void setup(void)
{
	base = kt_tmpdir();
	wd = kt_path(base, "work");
	memset(&srv, 0, sizeof srv);
}

static void teardown(void)
{
	gt_free_all();
	gt_server_stop(&srv);
	kt_rmrf(base);
	free(base);
	free(wd);
}

TestSuite(git_clone, .init = setup, .fini = teardown, .timeout = 120);

#define STAGES_CLONE "  clone: { plugin: clone, with: { retry_delay: 100ms %s } }"
#define STAGES_CLONE_PLAIN "  clone: { plugin: clone, with: { retry_delay: 100ms } }"

/* Run the clone stage (with: extra given as ", key: value" text). */
static int run_clone(kt_result *r, const char *url, const char *ref, const char *with_extra,
                     const char *const *env)
{
	char *task = NULL, *stages = NULL;
	if (url)
		cr_assert(asprintf(&task, "id: t1\nrepository: { url: \"%s\"%s%s%s }\n", url,
		                   ref ? ", ref: \"" : "", ref ? ref : "", ref ? "\"" : "") > 0);
	cr_assert(asprintf(&stages, STAGES_CLONE, with_extra ? with_extra : "") > 0);
	int rc = gt_agent(r, "execute", wd, task, "[clone]", stages, env);
	free(task);
	free(stages);
	return rc;
}

static char *url_of(const char *kind, const char *repo)
{
	char *u = NULL;
	if (strcmp(kind, "daemon") == 0)
		cr_assert(asprintf(&u, "git://127.0.0.1:%d/%s", srv.port, repo) > 0);
	else
		cr_assert(asprintf(&u, "http://127.0.0.1:%d/%s/%s", srv.port, kind, repo) > 0);
	return u;
}

static void start_server(const char *kind)
{
	char *root = kt_path(base, "srv");
	const char *args[] = {"--root", root, NULL};
	gt_server_start(&srv, kind, args);
	free(root);
}

static void expect_ok(kt_result *r)
{
	char *all = gt_output(r);
	cr_assert_eq(r->status, 0, "agent failed (%d):\n%s", r->status, all);
	free(all);
}

Test(git_clone, branch_over_http)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("anon", "repo.git");
	char *want = gt_sh(base, "git -C src rev-parse feature");
	kt_result r;
	run_clone(&r, url, "feature", NULL, NULL);
	expect_ok(&r);
	char *head = gt_sh(wd, "git rev-parse HEAD");
	char *branch = gt_sh(wd, "git symbolic-ref --short HEAD");
	cr_assert_str_eq(head, want);
	cr_assert_str_eq(branch, "feature");
	cr_assert_str_eq(gt_q(wd, "git status --porcelain --untracked-files=no"), "");
	cr_assert(kt_contains(r.err, want), "the commit is not logged: %s", r.err);
	cr_assert(kt_contains(r.err, "cloning"));
	/* the branch tracks the remote's, so `git pull` in a later stage works */
	cr_assert_str_eq(gt_q(wd, "git rev-parse --abbrev-ref 'feature@{upstream}' 2>&1 || true"),
	                 "origin/feature");
	kt_result_free(&r);
	free(url), free(want), free(head), free(branch);
}

Test(git_clone, tag_over_git_daemon)
{
	gt_make_repo(base, 0);
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	char *want = gt_sh(base, "git -C src rev-parse v1^{commit}");
	kt_result r;
	run_clone(&r, url, "v1", NULL, NULL);
	expect_ok(&r);
	char *head = gt_sh(wd, "git rev-parse HEAD");
	cr_assert_str_eq(head, want);
	/* A tag is checked out detached. */
	char *sym = gt_sh(wd, "git symbolic-ref -q HEAD || echo detached");
	cr_assert_str_eq(sym, "detached");
	kt_result_free(&r);
	free(url), free(want), free(head), free(sym);
}

Test(git_clone, commit_sha_and_default_branch_from_env)
{
	gt_make_repo(base, 0);
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	char *first = gt_sh(base, "git -C src rev-parse main~1");
	char *short_sha = strndup(first, 10);
	kt_result r;
	run_clone(&r, url, short_sha, NULL, NULL);
	expect_ok(&r);
	char *head = gt_sh(wd, "git rev-parse HEAD");
	cr_assert_str_eq(head, first);
	kt_result_free(&r);
	free(head);

	/* No repository in the task: KERUTA_REPOSITORY_URL, remote HEAD = main. */
	kt_rmrf(wd);
	char *env_url = NULL;
	cr_assert(asprintf(&env_url, "KERUTA_REPOSITORY_URL=%s", url) > 0);
	const char *env[] = {env_url, NULL};
	kt_result r2;
	cr_assert_eq(gt_agent(&r2, "init", wd, NULL, "[clone]", "  clone: { plugin: clone }", env),
	             0);
	expect_ok(&r2);
	char *main_sha = gt_sh(base, "git -C src rev-parse main");
	head = gt_sh(wd, "git rev-parse HEAD");
	cr_assert_str_eq(head, main_sha);
	cr_assert_str_eq(gt_q(wd, "git symbolic-ref --short HEAD"), "main");
	kt_result_free(&r2);
	free(url), free(first), free(short_sha), free(head), free(env_url), free(main_sha);
}

Test(git_clone, with_url_overrides_task)
{
	gt_make_repo(base, 0);
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	char *bad = url_of("daemon", "nothing-here.git");
	char *extra = NULL;
	cr_assert(asprintf(&extra, ", url: \"%s\", ref: feature", url) > 0);
	kt_result r;
	run_clone(&r, bad, "main", extra, NULL);
	expect_ok(&r);
	cr_assert_str_eq(gt_q(wd, "git symbolic-ref --short HEAD"), "feature");
	kt_result_free(&r);
	free(url), free(bad), free(extra);
}

Test(git_clone, rerun_fetches_after_remote_moved)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("anon", "repo.git");
	kt_result r;
	run_clone(&r, url, "main", NULL, NULL);
	expect_ok(&r);
	kt_result_free(&r);
	char *marker = kt_path(wd, "untracked-marker");
	kt_write_file(marker, "keep me\n");
	struct stat before, after;
	char *dotgit = kt_path(wd, ".git");
	cr_assert_eq(stat(dotgit, &before), 0);

	free(gt_sh(base, "cd src && echo three >> README && git commit -qam third && "
	                 "git push -q ../srv/repo.git main"));
	char *want = gt_sh(base, "git -C src rev-parse main");
	run_clone(&r, url, "main", NULL, NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "fetching"), "not a fetch: %s", r.err);
	cr_assert_not(kt_contains(r.err, "cloning"));
	char *head = gt_sh(wd, "git rev-parse HEAD");
	cr_assert_str_eq(head, want);
	cr_assert_eq(stat(dotgit, &after), 0);
	cr_assert_eq(before.st_ino, after.st_ino, ".git was made anew");
	cr_assert_eq(access(marker, F_OK), 0, "the untracked file is gone");
	cr_assert_str_eq(gt_q(wd, "cat README"), "one\ntwo\nthree");
	kt_result_free(&r);
	free(url), free(marker), free(dotgit), free(want), free(head);
}

/* A re-run over a local change that the remote's new commit would
 * overwrite: refused, naming the file, and nothing moves (neither the
 * change nor HEAD). */
Test(git_clone, rerun_over_conflicting_local_change_keeps_it)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("anon", "repo.git");
	kt_result r;
	run_clone(&r, url, "main", NULL, NULL);
	expect_ok(&r);
	kt_result_free(&r);
	char *old_head = gt_sh(wd, "git rev-parse HEAD");
	free(gt_sh(wd, "echo local edit > README"));
	free(gt_sh(base, "cd src && echo three >> README && git commit -qam third && "
	                 "git push -q ../srv/repo.git main"));
	run_clone(&r, url, "main", NULL, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "nothing was overwritten"), "%s", all);
	cr_assert(kt_contains(all, "README"), "%s", all);
	cr_assert_str_eq(gt_q(wd, "cat README"), "local edit");
	cr_assert_str_eq(gt_q(wd, "git rev-parse HEAD"), old_head);
	kt_result_free(&r);
	free(all), free(url), free(old_head);
}

/* A local path: the source's objects are taken as they are (no pack is
 * built), and the result is the clone a fetch would make: default branch,
 * branches, tags and commits resolve; git sees a sound repository; a
 * re-run fetches what moved. */
Test(git_clone, local_path_clone_is_complete_and_reruns_fetch)
{
	gt_make_repo(base, 0);
	char *url = kt_path(base, "srv/repo.git");
	kt_result r;
	run_clone(&r, url, NULL, NULL, NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "object files"), "%s", r.err);
	cr_assert_str_eq(gt_q(wd, "git symbolic-ref --short HEAD"), "main");
	cr_assert_str_eq(gt_q(wd, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse main"));
	cr_assert_str_eq(gt_q(wd, "git rev-parse origin/feature"),
	                 gt_q(base, "git -C src rev-parse feature"));
	cr_assert_str_eq(gt_q(wd, "git rev-parse 'v1^{commit}'"),
	                 gt_q(base, "git -C src rev-parse 'v1^{commit}'"));
	cr_assert_str_eq(gt_q(wd, "git fsck --no-progress --connectivity-only 2>&1 && echo sound"),
	                 "sound");
	cr_assert_str_eq(gt_q(wd, "git status --porcelain | grep -v '^?? .keruta' | wc -l"), "0");
	kt_result_free(&r);

	/* the source moves on: the re-run fetches it */
	free(gt_sh(base, "cd src && echo three >> README && git commit -qam third && "
	                 "git push -q ../srv/repo.git main"));
	run_clone(&r, url, "main", NULL, NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "fetching"), "not a fetch: %s", r.err);
	cr_assert_str_eq(gt_q(wd, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse main"));
	kt_result_free(&r);

	/* a tag and a branch of a non-bare source */
	const char *refs[][2] = {{"v1", "v1^{commit}"}, {"feature", "feature"}};
	char *src = kt_path(base, "src");
	for (size_t i = 0; i < 2; i++) {
		kt_rmrf(wd);
		run_clone(&r, src, refs[i][0], NULL, NULL);
		expect_ok(&r);
		char *q = NULL;
		cr_assert(asprintf(&q, "git -C src rev-parse '%s'", refs[i][1]) > 0);
		cr_assert_str_eq(gt_q(wd, "git rev-parse HEAD"), gt_q(base, q));
		free(q);
		kt_result_free(&r);
	}
	free(src);
	free(url);
}

/* A local source on another file system: its object files cannot be
 * hard linked, so each is copied, and the clone is as complete and shares
 * no inode with the source.  The other file system is a tmpfs mounted in
 * a mount namespace of this test's own process (the agent inherits it). */
/* Mount a tmpfs (mount options opts) on the directory dir, made here, in a
 * mount namespace of this test's process, or skip the test. */
static void tmpfs_or_skip(const char *dir, const char *opts)
{
	cr_assert_eq(mkdir(dir, 0755), 0);
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("keruta-test", dir, "tmpfs", 0, opts) != 0)
		cr_skip_test("cannot mount a tmpfs in a mount namespace here (%s): needs root or "
		             "CAP_SYS_ADMIN",
		             strerror(errno));
}

Test(git_clone, local_path_on_another_file_system_is_copied)
{
	gt_make_repo(base, 0);
	char *fs2 = gt_path(base, "fs2");
	tmpfs_or_skip(fs2, "size=64m");
	free(gt_sh(base, "cp -a srv/repo.git fs2/repo.git"));
	char *url = kt_path(fs2, "repo.git");
	kt_result r;
	run_clone(&r, url, NULL, NULL, NULL);
	char *shared = gt_sh(base, "find work/.git/objects fs2/repo.git/objects -type f -links +1 "
	                           "| wc -l");
	umount2(fs2, MNT_DETACH);
	expect_ok(&r);
	cr_expect(kt_contains(r.err, "MiB, copied) from "), "%s", r.err);
	cr_expect_str_eq(shared, "0", "no object file is shared");
	cr_expect_str_eq(gt_q(wd, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse main"));
	cr_expect_str_eq(gt_q(wd, "git rev-parse 'v1^{commit}'"),
	                 gt_q(base, "git -C src rev-parse 'v1^{commit}'"));
	cr_expect_str_eq(gt_q(wd, "git fsck --no-progress 2>&1 && echo sound"), "sound");
	kt_result_free(&r);
	free(shared);
	free(url);
}

/* The copy fills the work dir's file system: the clone fails naming the
 * file and the cause, and the partial clone is removed (space freed for
 * whatever the task does next). */
Test(git_clone, local_path_copy_into_a_full_file_system_fails_and_cleans_up)
{
	gt_make_repo(base, 1);
	free(gt_sh(base, "mkdir fs2 && cp -a srv/repo.git fs2/repo.git"));
	tmpfs_or_skip(wd, "size=256k");
	char *url = kt_path(base, "fs2/repo.git");
	kt_result r;
	run_clone(&r, url, NULL, NULL, NULL);
	char *left = gt_sh(base, "ls -A work | grep -vx .keruta | wc -l");
	umount2(wd, MNT_DETACH);
	char *all = gt_output(&r);
	cr_expect_eq(r.status, 1, "%s", all);
	cr_expect(kt_contains(all, "clone: cannot take the objects of "), "%s", all);
	cr_expect(kt_contains(all, "No space left on device"), "%s", all);
	cr_expect_str_eq(left, "0", "the partial clone is removed");
	free(all);
	free(left);
	kt_result_free(&r);
	free(url);
}

/* A local source is someone else's directory: what its objects dir holds
 * besides files and directories is refused by name (a FIFO once blocked
 * the clone forever, a symlink was skipped in silence), the partial clone
 * is removed, and a source that borrows objects through a relative
 * objects/info/alternates is fetched rather than copied with a path that
 * means nothing in the clone. */
Test(git_clone, hostile_local_sources)
{
	gt_make_repo(base, 0);
	static const struct {
		const char *plant, *said;
	} cases[] = {{"mkfifo srv/repo.git/objects/info/alternates",
	              "objects/info/alternates is a FIFO"},
	             {"ln -s /etc/passwd srv/repo.git/objects/info/extra", "objects/info/extra is a symlink"},
	             {"mkdir -p srv/repo.git/objects/zz && ln -s /etc srv/repo.git/objects/zz/x",
	              "objects/zz/x is a symlink"}};
	char *url = kt_path(base, "srv/repo.git");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		free(gt_sh(base, "rm -rf work srv/repo.git/objects/zz srv/repo.git/objects/info/extra "
		                 "srv/repo.git/objects/info/alternates && %s",
		           cases[i].plant));
		kt_result r;
		run_clone(&r, url, NULL, NULL, NULL);
		char *all = gt_output(&r);
		cr_expect_eq(r.status, 1, "case %zu: %s", i, all);
		cr_expect(kt_contains(all, cases[i].said), "case %zu: %s", i, all);
		cr_expect_str_eq(gt_q(base, "ls -A work 2>/dev/null | grep -v '^.keruta$' | wc -l"), "0",
		                 "case %zu: the partial clone is removed", i);
		free(all);
		kt_result_free(&r);
	}
	free(gt_sh(base, "rm -rf work srv/repo.git/objects/zz srv/repo.git/objects/info/extra "
	                 "srv/repo.git/objects/info/alternates && "
	                 "git clone -q --bare --shared srv/repo.git borrow.git && "
	                 "echo ../../srv/repo.git/objects > borrow.git/objects/info/alternates && "
	                 "git -C borrow.git rev-parse main >/dev/null"));
	char *borrow = kt_path(base, "borrow.git");
	kt_result r;
	run_clone(&r, borrow, NULL, NULL, NULL);
	expect_ok(&r);
	cr_assert_str_eq(gt_q(wd, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse main"));
	cr_assert_str_eq(gt_q(wd, "git fsck --no-progress --connectivity-only 2>&1 && echo sound"),
	                 "sound");
	kt_result_free(&r);
	free(borrow);
	free(url);
}

Test(git_clone, basic_auth_good_and_wrong_credentials)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("basic", "repo.git");
	char *pw = kt_path(base, "pw");
	kt_write_file(pw, "wrong-Secret-7781\n");
	char *extra = NULL;
	cr_assert(asprintf(&extra, ", username: alice, password_file: \"%s\"", pw) > 0);
	kt_result r;
	run_clone(&r, url, NULL, extra, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "authentication"), "%s", all);
	cr_assert_not(kt_contains(all, "wrong-Secret-7781"), "the secret leaked: %s", all);
	cr_assert_not(kt_contains(all, "retrying"), "auth failures are not retried: %s", all);
	cr_assert_neq(access(wd, F_OK) == 0 && access(gt_path(wd, ".git"), F_OK) == 0, 1,
	              "a failed clone left .git behind");
	kt_result_free(&r);
	free(all);

	/* No credentials at all: says so. */
	run_clone(&r, url, NULL, NULL, NULL);
	all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "credentials"), "%s", all);
	kt_result_free(&r);
	free(all);

	/* The right password, from the environment. */
	const char *env[] = {"KERUTA_GIT_USERNAME=alice", "KERUTA_GIT_PASSWORD=wonderland", NULL};
	run_clone(&r, url, NULL, NULL, env);
	expect_ok(&r);
	cr_assert_not(kt_contains(r.err, "wonderland"));
	kt_result_free(&r);
	free(url), free(pw), free(extra);
}

/* A FIFO where a credentials file or the CA file is expected (a Secret
 * mounted wrong) is refused, naming it, without the stage waiting forever
 * for a writer. */
Test(git_clone, fifo_credential_files_are_refused_not_waited_on)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("basic", "repo.git");
	char *fifo = kt_path(base, "fifo");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	char *fifo_env = NULL;
	cr_assert(asprintf(&fifo_env, "KERUTA_GIT_TOKEN_FILE=%s", fifo) > 0);
	const char *env[] = {fifo_env, NULL};
	static const char *const opts[] = {"password_file", "ssh_key_file", "ca_file", NULL};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		char *extra = NULL;
		if (opts[i])
			cr_assert(asprintf(&extra, ", username: alice, %s: \"%s\"", opts[i], fifo) > 0);
		kt_result r;
		run_clone(&r, url, NULL, extra, opts[i] ? NULL : env);
		char *all = gt_output(&r);
		const char *what = opts[i] ? opts[i] : "KERUTA_GIT_TOKEN_FILE";
		cr_assert_eq(r.status, 1, "%s: %s", what, all);
		cr_assert(kt_contains(all, fifo), "%s: %s", what, all);
		cr_assert(kt_contains(all, "not a regular file"), "%s: %s", what, all);
		kt_result_free(&r);
		free(all), free(extra);
	}
	free(url), free(fifo), free(fifo_env);
}

Test(git_clone, bearer_token_file)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("bearer", "repo.git");
	char *tok = kt_path(base, "token");
	kt_write_file(tok, "s3cr3t-token\n");
	char *tok_env = NULL;
	cr_assert(asprintf(&tok_env, "KERUTA_GIT_TOKEN_FILE=%s", tok) > 0);
	const char *env[] = {tok_env, NULL};
	kt_result r;
	run_clone(&r, url, "main", ", token_type: bearer", env);
	expect_ok(&r);
	cr_assert_not(kt_contains(r.err, "s3cr3t-token"));
	kt_result_free(&r);
	free(url), free(tok), free(tok_env);
}

Test(git_clone, missing_repository)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("anon", "no-such-repo.git");
	kt_result r;
	run_clone(&r, url, NULL, NULL, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "no-such-repo.git"), "%s", all);
	cr_assert(kt_contains(all, "exists"), "%s", all);
	cr_assert_not(kt_contains(all, "retrying"), "%s", all);
	char *dotgit = kt_path(wd, ".git");
	cr_assert_neq(access(dotgit, F_OK), 0);
	kt_result_free(&r);
	free(all), free(url), free(dotgit);

	/* The same over git://: the daemon's "no such repository" is final. */
	gt_server_stop(&srv);
	start_server("daemon");
	url = url_of("daemon", "no-such-repo.git");
	run_clone(&r, url, NULL, NULL, NULL);
	all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "no such repository"), "%s", all);
	cr_assert_not(kt_contains(all, "retrying"), "%s", all);
	kt_result_free(&r);
	free(all), free(url);
}

/* A path that is not there is the task's mistake: said at once, naming
 * the path and what to check, never retried. */
Test(git_clone, missing_local_path_is_final_and_named)
{
	char *url = kt_path(base, "x/nope.git");
	kt_result r;
	run_clone(&r, url, NULL, ", retries: 3", NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, url), "%s", all);
	cr_assert(kt_contains(all, "does not exist"), "%s", all);
	cr_assert(kt_contains(all, "check the task's repository URL or path"), "%s", all);
	cr_assert_not(kt_contains(all, "retrying"), "%s", all);
	cr_assert_not(kt_contains(all, "unsupported URL protocol"), "%s", all);
	kt_result_free(&r);
	free(all);

	/* a directory that is not a repository */
	free(gt_sh(base, "mkdir -p plain && echo x > plain/file"));
	free(url);
	url = kt_path(base, "plain");
	run_clone(&r, url, NULL, ", retries: 3", NULL);
	all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "is not a git repository"), "%s", all);
	cr_assert_not(kt_contains(all, "retrying"), "%s", all);
	kt_result_free(&r);
	free(all);
	free(url);
}

/* A 404 over HTTP is final even when retries are allowed. */
Test(git_clone, http_404_is_final_even_with_retries)
{
	gt_make_repo(base, 0);
	start_server("http");
	char *url = url_of("anon", "gone.git");
	kt_result r;
	run_clone(&r, url, NULL, ", retries: 3", NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "gone.git"), "%s", all);
	cr_assert(kt_contains(all, "check the URL and that the repository exists"), "%s", all);
	cr_assert_not(kt_contains(all, "retrying"), "%s", all);
	kt_result_free(&r);
	free(all), free(url);
}

/* A server that thinks for a long time before it sends the first object
 * (its pack-objects slowed by a hook, as on a big repository): its own
 * progress text is relayed, so the clone is not silent meanwhile. */
Test(git_clone, slow_remote_shows_progress_before_any_object)
{
	gt_make_repo(base, 1);
	char *hook = kt_path(base, "slow-pack-objects");
	kt_write_file(hook, "#!/bin/sh\necho 'preparing the pack, slowly' >&2\nsleep 3\nexec \"$@\"\n");
	chmod(hook, 0755);
	char *gitconfig = kt_path(base, "server-gitconfig");
	char *cfg = NULL;
	cr_assert(asprintf(&cfg, "[uploadpack]\n\tpackObjectsHook = %s\n", hook) > 0);
	kt_write_file(gitconfig, cfg);
	/* only the server's git reads it (the hook is honoured from global
	 * config only); the agent uses libgit2 */
	setenv("GIT_CONFIG_GLOBAL", gitconfig, 1);
	start_server("daemon");
	unsetenv("GIT_CONFIG_GLOBAL");
	char *url = url_of("daemon", "repo.git");
	kt_result r;
	run_clone(&r, url, "main", NULL, NULL);
	expect_ok(&r);
	const char *side = strstr(r.err, "remote: preparing the pack, slowly");
	const char *objects = strstr(r.err, "objects");
	cr_assert_not_null(side, "the remote's progress text was not relayed:\n%s", r.err);
	cr_assert_not_null(objects, "%s", r.err);
	cr_assert(side < objects, "progress came only after the objects:\n%s", r.err);
	kt_result_free(&r);
	free(url), free(cfg), free(gitconfig), free(hook);
}

Test(git_clone, server_cut_mid_transfer_is_retried_then_cleaned_up)
{
	gt_make_repo(base, 1);
	start_server("daemon");
	char port[16];
	snprintf(port, sizeof port, "%d", srv.port);
	gt_server cut;
	const char *args[] = {"--to", port, "--after", "100000", NULL};
	gt_server_start(&cut, "cut", args);
	char *url = NULL;
	cr_assert(asprintf(&url, "git://127.0.0.1:%d/repo.git", cut.port) > 0);
	/* Something that was there before must survive the cleanup. */
	free(gt_sh(base, "mkdir -p work/.keruta && echo doc > work/.keruta/keep"));
	kt_result r;
	run_clone(&r, url, "main", ", retries: 2", NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert_eq(kt_count(all, "retrying"), 2, "%s", all);
	char *left = gt_sh(wd, "ls -A | grep -v '^.keruta$' || true");
	cr_assert_str_eq(left, "", "the failed clone left: %s", left);
	cr_assert_str_eq(gt_q(wd, "cat .keruta/keep"), "doc");
	kt_result_free(&r);
	gt_server_stop(&cut);
	free(all), free(url), free(left);
}

Test(git_clone, refuses_other_repository_and_foreign_files)
{
	gt_make_repo(base, 0);
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	free(gt_sh(base, "git init -q -b main work && cd work && "
	                 "git remote add origin https://example.invalid/other.git && "
	                 "echo mine > precious.txt"));
	kt_result r;
	run_clone(&r, url, NULL, NULL, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "other.git"), "%s", all);
	cr_assert(kt_contains(all, "nothing was deleted"), "%s", all);
	cr_assert_str_eq(gt_q(wd, "cat precious.txt"), "mine");
	cr_assert_str_eq(gt_q(wd, "git remote get-url origin"), "https://example.invalid/other.git");
	kt_result_free(&r);
	free(all);

	/* Plain files and no .git: refused too. */
	kt_rmrf(wd);
	free(gt_sh(base, "mkdir -p work/.keruta && echo x > work/notes.txt"));
	run_clone(&r, url, NULL, NULL, NULL);
	all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "notes.txt"), "%s", all);
	cr_assert_str_eq(gt_q(wd, "cat notes.txt"), "x");
	cr_assert_neq(access(gt_path(wd, ".git"), F_OK), 0);
	kt_result_free(&r);
	free(all);

	/* An origin whose name only extends the task's ("repo.git-old"): another
	 * repository, refused, even though stripping ".git" from the one and
	 * four characters from the other would make them equal. */
	kt_rmrf(wd);
	free(gt_sh(base, "git init -q -b main work && cd work && git remote add origin '%s-old' && "
	                 "echo mine > precious.txt", url));
	run_clone(&r, url, NULL, NULL, NULL);
	all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "repo.git-old, not of"), "%s", all);
	cr_assert_str_eq(gt_q(wd, "cat precious.txt"), "mine");
	kt_result_free(&r);
	free(all), free(url);
}

/* A host name that does not resolve: said so, naming the host, and not
 * mistaken for a connection lost while talking to it. */
Test(git_clone, unresolvable_host_is_named)
{
	kt_result r;
	run_clone(&r, "git://no-such-host.invalid:9418/repo.git", "main", ", retries: 0", NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "cannot resolve no-such-host.invalid"), "%s", all);
	cr_assert_not(kt_contains(all, "connection lost"), "%s", all);
	kt_result_free(&r);
	free(all);
}

/* A server that takes the connection and then says nothing: the transfer
 * ends after io_timeout with an error naming the server and the wait, not
 * as if the server had closed the connection. */
/* A TCP socket bound on loopback, not listening (connections to it are
 * refused), and the git:// URL of its port (caller frees). */
static int loopback_socket(char **url)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(ls, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	cr_assert_eq(bind(ls, (struct sockaddr *)&sa, sl), 0);
	cr_assert_eq(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	cr_assert(asprintf(url, "git://127.0.0.1:%d/repo.git", ntohs(sa.sin_port)) > 0);
	return ls;
}

Test(git_clone, silent_server_times_out_naming_it)
{
	char *url = NULL;
	int ls = loopback_socket(&url);
	/* never accepted: the kernel completes the handshake and takes the
	 * request, and no answer ever comes */
	cr_assert_eq(listen(ls, 8), 0);
	kt_result r;
	run_clone(&r, url, "main", ", retries: 0, io_timeout: 1s", NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "no data for too long from 127.0.0.1"), "%s", all);
	cr_assert(kt_contains(all, "timed out"), "%s", all);
	kt_result_free(&r);
	close(ls);
	free(all), free(url);
}

/* Start the clone of url with these options (YAML flow text), wait until
 * its stderr holds `when` and then_ms more, SIGTERM the agent, and collect
 * it (r->err is all of its stderr). */
static void clone_stopped_when(kt_result *r, const char *url, const char *with, const char *when,
                               int then_ms)
{
	char *task = NULL, *stages = NULL, *dir = NULL;
	cr_assert(asprintf(&task, "id: t1\nrepository: { url: \"%s\" }\n", url) > 0);
	cr_assert(asprintf(&stages, "  clone: { plugin: clone, with: { %s } }", with) > 0);
	int out_fd, err_fd;
	pid_t pid = gt_agent_spawn("execute", wd, task, "[clone]", stages, NULL, &out_fd, &err_fd,
	                           &dir);
	cr_assert_gt(pid, 0);
	char seen[65536];
	size_t n = 0;
	seen[0] = '\0';
	for (int i = 0; i < 600 && !strstr(seen, when) && n < sizeof(seen) - 1; i++) {
		struct pollfd p = {err_fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t got = read(err_fd, seen + n, sizeof(seen) - 1 - n);
		if (got <= 0)
			break;
		n += (size_t)got;
		seen[n] = '\0';
	}
	int found = strstr(seen, when) != NULL;
	usleep((useconds_t)then_ms * 1000);
	kill(pid, SIGTERM);
	kt_wait(r, pid, out_fd, err_fd, 60);
	char *all = NULL;
	cr_assert(asprintf(&all, "%s%s", seen, r->err ? r->err : "") >= 0);
	free(r->err);
	r->err = all;
	r->err_len = strlen(all);
	cr_assert(found, "'%s' never logged: %s", when, r->err);
	kt_rmrf(dir);
	free(dir);
	free(stages);
	free(task);
}

/* SIGTERM while the clone waits to retry, or waits for a silent server:
 * the clone stops then (not after the pause or the I/O timeout), the task
 * fails as terminated, and no partial clone is left. */
Test(git_clone, sigterm_stops_a_clone_waiting_to_retry_or_for_the_server)
{
	char *url = NULL;
	int ls = loopback_socket(&url);
	static const struct {
		int listening;
		const char *with, *when;
		int then_ms;
	} cases[] = {
	        /* nothing listens: refused, then a pause of 10 minutes */
	        {0, "retries: 5, retry_delay: 10m", "retrying in", 0},
	        /* accepted by the kernel, never answered: a 10 minute timeout
	         * (the connection is made within the half second) */
	        {1, "retries: 0, io_timeout: 10m", "cloning git://", 500},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].listening)
			cr_assert_eq(listen(ls, 8), 0);
		kt_rmrf(wd);
		cr_assert_eq(mkdir(wd, 0755), 0);
		kt_result r;
		clone_stopped_when(&r, url, cases[i].with, cases[i].when, cases[i].then_ms);
		char *all = gt_output(&r);
		cr_expect(!r.timed_out, "case %zu: still running after 60 s: %s", i, all);
		cr_expect_eq(r.status, 1, "case %zu: %s", i, all);
		cr_expect(kt_contains(all, "terminated by SIGTERM: clone: "), "case %zu: %s", i, all);
		cr_expect(!kt_contains(all, "attempt 2 of"), "case %zu: %s", i, all);
		cr_expect_str_eq(gt_q(base, "ls -A work | grep -vx .keruta | wc -l"), "0",
		                 "case %zu: no partial clone", i);
		free(all);
		kt_result_free(&r);
	}
	close(ls);
	free(url);
}

Test(git_clone, shallow_depth_warns_and_clones_fully)
{
	gt_make_repo(base, 0);
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	kt_result r;
	run_clone(&r, url, "main", ", depth: 1", NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "WARN"), "%s", r.err);
	cr_assert(kt_contains(r.err, "shallow clone (depth 1) is not supported"), "%s", r.err);
	cr_assert_str_eq(gt_q(wd, "git rev-list --count HEAD"), "2");
	kt_result_free(&r);
	free(url);
}

/* The test repositories and srv/sub.git (one file, s.txt), a submodule
 * of src at mods/sub named by `rel_url`, relative to the superproject
 * (so it is fetched from the same server), pushed to srv/repo.git. */
static void make_repo_with_submodule(const char *rel_url)
{
	gt_make_repo(base, 0);
	free(gt_sh(base, "git init -q -b main sub && cd sub && echo s > s.txt && git add s.txt && "
	                 "git commit -qm s && cd .. && git clone -q --bare sub srv/sub.git && "
	                 "cd src && git -c protocol.file.allow=always submodule add -q ../srv/sub.git "
	                 "mods/sub && git config -f .gitmodules submodule.mods/sub.url %s && "
	                 "git commit -qam 'add sub' && git push -q ../srv/repo.git main",
	           rel_url));
}

Test(git_clone, submodules_on_request)
{
	make_repo_with_submodule("../sub.git");
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	kt_result r;
	run_clone(&r, url, "main", ", submodules: true", NULL);
	expect_ok(&r);
	cr_assert_str_eq(gt_q(wd, "cat mods/sub/s.txt"), "s");
	kt_result_free(&r);

	/* Without the option the submodule stays empty. */
	kt_rmrf(wd);
	run_clone(&r, url, "main", NULL, NULL);
	expect_ok(&r);
	cr_assert_neq(access(gt_path(wd, "mods/sub/s.txt"), F_OK), 0);
	kt_result_free(&r);
	free(url);
}

/* A submodule that cannot be fetched fails the clone by its name, after
 * the retries a transfer gets, and leaves no partial clone.  A .gitmodules
 * that cannot be read fails the clone, naming the file, without a retry,
 * and a fresh clone is not told to move local changes it does not have. */
Test(git_clone, submodule_failures_are_named_and_leave_no_partial_clone)
{
	make_repo_with_submodule("../gone.git");
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	kt_result r;
	run_clone(&r, url, "main", ", submodules: true, retries: 1", NULL);
	char *all = gt_output(&r);
	cr_expect_eq(r.status, 1, "%s", all);
	cr_expect(kt_contains(all, "clone: submodule mods/sub: "), "%s", all);
	cr_expect(kt_contains(all, "attempt 1 of 2"), "retried: %s", all);
	cr_expect(!kt_contains(all, "attempt 2 of 2"), "%s", all);
	cr_expect_neq(access(gt_path(wd, ".git"), F_OK), 0, "the partial clone is removed");
	cr_expect_neq(access(gt_path(wd, "README"), F_OK), 0, "the partial clone is removed");
	free(all);
	kt_result_free(&r);

	free(gt_sh(base, "cd src && printf '[submodule \"mods/sub\"\\n\\tpath = mods/sub\\n' > "
	                 ".gitmodules && git commit -qam 'broken .gitmodules' && "
	                 "git push -q ../srv/repo.git main"));
	kt_rmrf(wd);
	run_clone(&r, url, "main", ", submodules: true, retries: 1", NULL);
	all = gt_output(&r);
	cr_expect_eq(r.status, 1, "%s", all);
	cr_expect(kt_contains(all, "clone: submodules: "), "%s", all);
	cr_expect(kt_contains(all, "/.gitmodules:1)"), "%s", all);
	cr_expect(!kt_contains(all, "local changes"), "%s", all);
	cr_expect(!kt_contains(all, "attempt 1 of"), "not retried: %s", all);
	cr_expect_neq(access(gt_path(wd, ".git"), F_OK), 0, "the partial clone is removed");
	free(all);
	kt_result_free(&r);
	free(url);
}

Test(git_clone, no_repository_skips)
{
	kt_result r;
	cr_assert_eq(gt_agent(&r, "execute", wd, "id: t1\n", "[clone]", "  clone: { plugin: clone }",
	                      NULL),
	             0);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "nothing to clone"), "%s", r.err);
	kt_result_free(&r);
}

/* A task naming its repository by id alone, where nothing knows its URL
 * (local mode, no repository record): the clone stage fails saying how
 * to give the URL, rather than running the task without its code. */
Test(git_clone, a_repository_id_without_a_url_fails_the_clone)
{
	kt_result r;
	static const char *const env[] = {"KERUTA_REPOSITORY_URL", NULL};
	cr_assert_eq(gt_agent(&r, "execute", wd, "id: t1\nrepository: { id: repo-7 }\n", "[clone]",
	                      "  clone: { plugin: clone }", env),
	             0);
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(kt_contains(r.err, "clone: the task names repository 'repo-7' but no URL for it"),
	          "%s", r.err);
	kt_result_free(&r);
}

Test(git_clone, https_with_test_ca)
{
	gt_make_repo(base, 0);
	free(gt_sh(base,
	           "mkdir tls && cd tls\n"
	           "E='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	           "openssl req -x509 $E -keyout ca.key -out ca.crt -days 2 -subj /CN=TestCA "
	           "-addext basicConstraints=critical,CA:TRUE "
	           "-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null\n"
	           "openssl req $E -keyout s.key -out s.csr -subj /CN=localhost 2>/dev/null\n"
	           "printf 'subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > s.ext\n"
	           "openssl x509 -req -in s.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	           "-out s.crt -days 2 -extfile s.ext 2>/dev/null\n"));
	char *root = kt_path(base, "srv"), *crt = kt_path(base, "tls/s.crt"),
	     *key = kt_path(base, "tls/s.key"), *ca = kt_path(base, "tls/ca.crt");
	const char *args[] = {"--root", root, "--tls", crt, key, NULL};
	gt_server_start(&srv, "http", args);
	char *url = NULL, *ca_env = NULL;
	/* mbedTLS cannot match IP addresses in certificates: a DNS name. */
	cr_assert(asprintf(&url, "https://localhost:%d/anon/repo.git", srv.port) > 0);
	cr_assert(asprintf(&ca_env, "KERUTA_CA_FILE=%s", ca) > 0);

	kt_result r;
	run_clone(&r, url, "main", NULL, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "not trusted"), "%s", all);
	cr_assert_not(kt_contains(all, "retrying"), "%s", all);
	kt_result_free(&r);
	free(all);

	const char *env[] = {ca_env, NULL};
	run_clone(&r, url, "main", NULL, env);
	expect_ok(&r);
	kt_result_free(&r);

	kt_rmrf(wd);
	run_clone(&r, url, "main", ", insecure: true", NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "not verified"), "%s", r.err);
	kt_result_free(&r);
	free(root), free(crt), free(key), free(ca), free(url), free(ca_env);
}

Test(git_clone, ssh_key_and_known_hosts)
{
	if (geteuid() != 0 || access("/usr/sbin/sshd", X_OK) != 0)
		cr_skip_test("needs root and /usr/sbin/sshd (Debian: openssh-server)");
	gt_make_repo(base, 0);
	free(gt_sh(base, "mkdir ssh && cd ssh && ssh-keygen -q -t ed25519 -N '' -f host && "
	                 "ssh-keygen -q -t ed25519 -N '' -f client && "
	                 "ssh-keygen -q -t ed25519 -N '' -f stranger && cp client.pub auth"));
	char *root = kt_path(base, "srv"), *hostkey = kt_path(base, "ssh/host"),
	     *auth = kt_path(base, "ssh/auth");
	const char *args[] = {"--root", root, "--host-key", hostkey, "--authorized-keys", auth, NULL};
	gt_server_start(&srv, "ssh", args);
	free(gt_sh(base, "cd ssh && echo \"[localhost]:%d $(cut -d' ' -f1,2 host.pub)\" > known && "
	                 "echo 'otherhost $(cut -d\" \" -f1,2 host.pub)' > wrong",
	           srv.port));
	char *user = gt_sh(base, "id -un");
	char *url = NULL, *extra = NULL, *wrong = NULL, *stranger = NULL;
	cr_assert(asprintf(&url, "ssh://%s@localhost:%d%s/repo.git", user, srv.port, root) > 0);
	cr_assert(asprintf(&extra, ", ssh_key_file: \"%s/ssh/client\", known_hosts: \"%s/ssh/known\"",
	                   base, base) > 0);
	cr_assert(asprintf(&wrong, ", ssh_key_file: \"%s/ssh/client\", known_hosts: \"%s/ssh/wrong\"",
	                   base, base) > 0);
	cr_assert(asprintf(&stranger,
	                   ", ssh_key_file: \"%s/ssh/stranger\", known_hosts: \"%s/ssh/known\"",
	                   base, base) > 0);
	kt_result r;
	run_clone(&r, url, "main", extra, NULL);
	expect_ok(&r);
	kt_result_free(&r);

	/* An unknown host key is refused, not retried. */
	kt_rmrf(wd);
	run_clone(&r, url, "main", wrong, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "host key of localhost is not in"), "%s", all);
	cr_assert_not(kt_contains(all, "retrying"), "%s", all);
	kt_result_free(&r);
	free(all);

	/* A key the server does not know. */
	run_clone(&r, url, "main", stranger, NULL);
	all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "authentication"), "%s", all);
	kt_result_free(&r);
	free(all);

	/* A key marked @revoked is refused wherever the mark stands, also
	 * after a line that lists the same key as valid (as OpenSSH does). */
	free(gt_sh(base, "cd ssh && k=\"$(cut -d' ' -f1,2 host.pub)\" && "
	                 "printf '@revoked [localhost]:%d %%s\\n' \"$k\" > revoked-first && "
	                 "cat known revoked-first > revoked-after && cat known >> revoked-first",
	           srv.port));
	static const char *const revoked[] = {"revoked-first", "revoked-after"};
	for (size_t i = 0; i < 2; i++) {
		char *with = NULL;
		cr_assert(asprintf(&with, ", ssh_key_file: \"%s/ssh/client\", known_hosts: \"%s/ssh/%s\"",
		                   base, base, revoked[i]) > 0);
		kt_rmrf(wd);
		run_clone(&r, url, "main", with, NULL);
		all = gt_output(&r);
		cr_expect_eq(r.status, 1, "%s: %s", revoked[i], all);
		cr_expect(kt_contains(all, "the SSH host key of localhost is marked @revoked in "), "%s: %s",
		          revoked[i], all);
		cr_expect_not(kt_contains(all, "retrying"), "%s", all);
		cr_expect_neq(access(gt_path(wd, "README"), F_OK), 0, "%s: nothing checked out",
		              revoked[i]);
		kt_result_free(&r);
		free(all);
		free(with);
	}

	/* A hashed name (ssh-keygen -H) is not read: the key counts as
	 * unknown, and the message says so; ssh_insecure_host: true takes any
	 * key, with a warning. */
	free(gt_sh(base, "cd ssh && cp known hashed && ssh-keygen -q -H -f hashed 2>/dev/null && "
	                 "grep -q '^|1|' hashed"));
	char *hashed = NULL, *insecure = NULL;
	cr_assert(asprintf(&hashed, ", ssh_key_file: \"%s/ssh/client\", known_hosts: \"%s/ssh/hashed\"",
	                   base, base) > 0);
	cr_assert(asprintf(&insecure, "%s, ssh_insecure_host: true", hashed) > 0);
	kt_rmrf(wd);
	run_clone(&r, url, "main", hashed, NULL);
	all = gt_output(&r);
	cr_expect_eq(r.status, 1, "%s", all);
	cr_expect(kt_contains(all, "host key of localhost is not in"), "%s", all);
	cr_expect(kt_contains(all, "without -H"), "%s", all);
	kt_result_free(&r);
	free(all);
	kt_rmrf(wd);
	run_clone(&r, url, "main", insecure, NULL);
	expect_ok(&r);
	cr_expect(kt_contains(r.err, "the SSH host key of localhost is not checked"), "%s", r.err);
	kt_result_free(&r);
	free(hashed), free(insecure);

	/* Host patterns as OpenSSH reads them: '?' and '*' wildcards in any
	 * case, a '!' pattern that matches vetoes the line, and a host on
	 * another port than 22 must be written [host]:port. */
	static const struct {
		const char *hosts;
		int ok;
	} patterns[] = {{"[LOCAL?OST]:%d", 1},
	                {"*.example.org,[local*]:%d", 1},
	                {"![localhost]:%d,*", 0},
	                {"localhost", 0}};
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		char hosts[64], *with = NULL;
		snprintf(hosts, sizeof(hosts), patterns[i].hosts, srv.port);
		free(gt_sh(base, "cd ssh && echo \"%s $(cut -d' ' -f1,2 host.pub)\" > pattern-%zu", hosts,
		           i));
		cr_assert(asprintf(&with,
		                   ", ssh_key_file: \"%s/ssh/client\", known_hosts: \"%s/ssh/pattern-%zu\"",
		                   base, base, i) > 0);
		kt_rmrf(wd);
		run_clone(&r, url, "main", with, NULL);
		all = gt_output(&r);
		if (patterns[i].ok)
			cr_expect_eq(r.status, 0, "'%s' should match: %s", hosts, all);
		else
			cr_expect(r.status == 1 && kt_contains(all, "host key of localhost is not in"),
			          "'%s' should not match: %s", hosts, all);
		kt_result_free(&r);
		free(all);
		free(with);
	}

	/* Neither known_hosts nor KERUTA_GIT_KNOWN_HOSTS: ~/.ssh/known_hosts. */
	char *home = kt_path(base, "home"), *home_env = NULL, *key_only = NULL;
	free(gt_sh(base, "mkdir -p home/.ssh && cp ssh/known home/.ssh/known_hosts"));
	cr_assert(asprintf(&home_env, "HOME=%s", home) > 0);
	cr_assert(asprintf(&key_only, ", ssh_key_file: \"%s/ssh/client\"", base) > 0);
	const char *const home_envs[] = {home_env, "KERUTA_GIT_KNOWN_HOSTS", NULL};
	kt_rmrf(wd);
	run_clone(&r, url, "main", key_only, home_envs);
	expect_ok(&r);
	kt_result_free(&r);
	free(gt_sh(base, "rm home/.ssh/known_hosts"));
	kt_rmrf(wd);
	run_clone(&r, url, "main", key_only, home_envs);
	all = gt_output(&r);
	cr_expect_eq(r.status, 1, "%s", all);
	cr_expect(kt_contains(all, "/home/.ssh/known_hosts"), "the default file is named: %s", all);
	kt_result_free(&r);
	free(all);
	free(home), free(home_env), free(key_only);

	/* A FIFO as known_hosts: refused, naming it, not waited on. */
	char *fifo = kt_path(base, "ssh/known-fifo"), *fifo_known = NULL;
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	cr_assert(asprintf(&fifo_known, ", ssh_key_file: \"%s/ssh/client\", known_hosts: \"%s\"",
	                   base, fifo) > 0);
	run_clone(&r, url, "main", fifo_known, NULL);
	all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "cannot read known_hosts file"), "%s", all);
	cr_assert(kt_contains(all, "not a regular file"), "%s", all);
	kt_result_free(&r);
	free(all);
	free(root), free(hostkey), free(auth), free(user), free(url), free(extra), free(wrong),
	        free(stranger), free(fifo), free(fifo_known);
}

/* A repository that commits .keruta/ with links aimed outside the work
 * dir (env values, the log spool, local artifacts, the doc dir, the
 * events file, the per-task area): the clone is refused before anything
 * is checked out, and no stage after it writes anywhere. */
Test(git_clone, repository_committing_keruta_is_refused)
{
	gt_make_repo(base, 0);
	char *outside = kt_path(base, "outside");
	cr_assert_eq(mkdir(outside, 0755), 0);
	char *victim = kt_path(base, "victim");
	kt_write_file(victim, "precious\n");
	free(gt_sh(base,
	           "cd src && mkdir .keruta && ln -s '%s' .keruta/env && ln -s '%s' "
	           ".keruta/log-spool && ln -s '%s' .keruta/artifacts && ln -s /etc .keruta/doc && "
	           "ln -s '%s' .keruta/tasks && ln -s '%s' .keruta/events.jsonl && "
	           "git add -A && git commit -qm hostile && cd .. && rm -rf srv/repo.git && "
	           "git clone -q --bare src srv/repo.git && touch srv/repo.git/git-daemon-export-ok",
	           outside, victim, outside, outside, victim));
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	char *task = NULL;
	char big[40000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert(asprintf(&task,
	                   "id: t1\nrepository: { url: \"%s\", ref: main }\ndescription: %s\n"
	                   "script: \"echo out > .keruta/doc/out.txt\"\n",
	                   url, big) > 0);
	kt_result r;
	gt_agent(&r, "execute", wd, task, "[clone, execute, collect]",
	         STAGES_CLONE_PLAIN "\n  execute: {plugin: execute}\n  collect: {plugin: collect}",
	         NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "commits a .keruta entry"), "%s", all);
	DIR *d = opendir(outside);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	cr_assert_eq(n, 0, "something was written through a committed link:\n%s", all);
	char *v = kt_read_file(victim, NULL);
	cr_assert_str_eq(v ? v : "", "precious\n");
	struct stat st;
	cr_assert(lstat(kt_path(wd, ".keruta/env"), &st) != 0, "the hostile tree was checked out");
	free(v);
	free(all);
	free(task);
	free(url);
	free(outside);
	free(victim);
	kt_result_free(&r);
}

/* A repository holding .keruta/events.jsonl once replaced the local
 * events file silently: the clone is refused and the events stay the
 * agent's. */
Test(git_clone, repository_with_keruta_never_replaces_the_events)
{
	gt_make_repo(base, 0);
	free(gt_sh(base, "cd src && mkdir .keruta && echo fake > .keruta/events.jsonl && "
	                 "git add -A && git commit -qm events && cd .. && rm -rf srv/repo.git && "
	                 "git clone -q --bare src srv/repo.git && "
	                 "touch srv/repo.git/git-daemon-export-ok"));
	start_server("daemon");
	char *url = url_of("daemon", "repo.git");
	cr_assert_eq(mkdir(wd, 0755), 0);
	kt_result r;
	run_clone(&r, url, "main", NULL, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "commits a .keruta entry"), "%s", all);
	char *ev = kt_read_file(kt_path(wd, ".keruta/events.jsonl"), NULL);
	cr_assert(ev && !kt_contains(ev, "fake") && kt_contains(ev, "\"FAILED\""), "%s",
	          ev ? ev : "(none)");
	free(ev);
	free(all);
	free(url);
	kt_result_free(&r);
}
