/*
 * git_cache.c - the clone stage's repository cache (git_cache: DIR) end to
 * end: real agents in local mode against nginx + git http-backend on
 * loopback, the remote changed with the git CLI between tasks.  What a
 * task relies on: its clone is the one a clone from the remote gives
 * (force-push and deleted branches included), whatever the cache went
 * through (concurrent tasks, a task killed mid-update, a broken mirror),
 * and the cache holds no credentials.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "git_helpers.h"

static char *base, *cache;
static gt_server srv;
/* the pipeline and task files of each agent started, removed at the end */
#define MAX_RUNS 64
static char *runs[MAX_RUNS];
static int nfiles;

static void setup(void)
{
	base = kt_tmpdir();
	cache = kt_path(base, "cache");
	memset(&srv, 0, sizeof srv);
	nfiles = 0;
}

static void teardown(void)
{
	gt_free_all();
	gt_server_stop(&srv);
	for (int i = 0; i < nfiles; i++) {
		kt_rmrf(runs[i]);
		free(runs[i]);
	}
	kt_rmrf(base);
	free(base);
	free(cache);
}

TestSuite(git_cache, .init = setup, .fini = teardown, .timeout = 180);

static void start_server(const char *kind, const char *const *more)
{
	char *root = kt_path(base, "srv");
	const char *args[8] = {"--root", root};
	int n = 2;
	for (int i = 0; more && more[i] && n < 7; i++)
		args[n++] = more[i];
	args[n] = NULL;
	gt_server_start(&srv, kind, args);
	free(root);
}

static char *url_of(const char *path)
{
	char *u = NULL;
	cr_assert(asprintf(&u, "http://127.0.0.1:%d/%s", srv.port, path) > 0);
	return u;
}

/* Start `keruta-agent execute` with the clone stage on work dir wd.
 * settings: a `settings:` block's body (NULL: none), with: more clone
 * options as ", key: value" text. */
static pid_t spawn_clone(const char *wd, const char *url, const char *ref, const char *settings,
                         const char *with, const char *const *env, int *out, int *err)
{
	char *stages = NULL, *task = NULL;
	cr_assert(asprintf(&stages,
	                   "  clone: { plugin: clone, with: { retry_delay: 100ms %s } }\n%s%s",
	                   with ? with : "", settings ? "settings:\n" : "",
	                   settings ? settings : "") > 0);
	cr_assert(asprintf(&task, "id: t1\nrepository: { url: \"%s\"%s%s%s }\n", url,
	                   ref ? ", ref: \"" : "", ref ? ref : "", ref ? "\"" : "") > 0);
	const char *envs[32] = {"KERUTA_GIT_CACHE"};
	int e = 1;
	for (int i = 0; env && env[i] && e < 31; i++)
		envs[e++] = env[i];
	envs[e] = NULL;
	cr_assert_lt(nfiles, MAX_RUNS);
	pid_t pid = gt_agent_spawn("execute", wd, task, "[clone]", stages, envs, out, err,
	                           &runs[nfiles++]);
	free(stages), free(task);
	return pid;
}

/* Run a clone to its end with the cache given as the git_cache setting. */
static void run_cached(kt_result *r, const char *wd, const char *url, const char *ref)
{
	char *settings = NULL;
	cr_assert(asprintf(&settings, "  git_cache: \"%s\"\n", cache) > 0);
	int out, err;
	pid_t pid = spawn_clone(wd, url, ref, settings, NULL, NULL, &out, &err);
	cr_assert_eq(kt_wait(r, pid, out, err, 120), 0);
	free(settings);
}

static void expect_ok(kt_result *r)
{
	char *all = gt_output(r);
	cr_assert_eq(r->status, 0, "agent failed (%d):\n%s", r->status, all);
	free(all);
}

/* The cache's one mirror (a path under cache ending in .git). */
static char *the_mirror(void)
{
	return gt_sh(cache, "ls -d *.git | { read m && test -z \"$(cat)\" && echo \"$PWD/$m\"; }");
}

/* What a task relies on in its clone, as text: HEAD, its branch, the
 * remote-tracking branches and tags with their commits, the remote URL. */
static char *clone_state(const char *wd)
{
	return gt_sh(wd, "git rev-parse HEAD; git symbolic-ref -q --short HEAD || echo detached\n"
	                 "git for-each-ref --format='%%(refname) %%(objectname)' refs/remotes "
	                 "refs/tags\ngit remote get-url origin\n"
	                 "git status --porcelain --untracked-files=no\n"
	                 "git fsck --no-dangling --no-progress 2>&1");
}

/* The same task without a cache: the reference a cached clone must equal. */
static char *plain_clone_state(const char *url, const char *ref)
{
	char *wd = kt_path(base, "plain");
	kt_rmrf(wd);
	int out, err;
	kt_result r;
	pid_t pid = spawn_clone(wd, url, ref, NULL, NULL, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	cr_assert_not(kt_contains(r.err, "git cache"), "%s", r.err);
	kt_result_free(&r);
	char *s = clone_state(wd);
	kt_rmrf(wd);
	free(wd);
	return s;
}

Test(git_cache, cold_then_warm_clone_equals_a_clone_from_the_remote)
{
	gt_make_repo(base, 1);
	start_server("http", NULL);
	char *url = url_of("anon/repo.git");
	char *wd1 = kt_path(base, "w1"), *wd2 = kt_path(base, "w2");
	kt_result r;
	run_cached(&r, wd1, url, NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "git cache:"), "%s", r.err);
	char *mirror = the_mirror();
	cr_assert(kt_contains(mirror, "/repo-"), "the mirror's name says nothing: %s", mirror);
	char *want = plain_clone_state(url, NULL);
	char *got = clone_state(wd1);
	cr_assert_str_eq(got, want);
	kt_result_free(&r);
	free(got), free(want);

	/* One new commit upstream: the next task takes the mirror's objects
	 * and fetches what is new. */
	free(gt_sh(base, "cd src && echo three >> README && git commit -qam third && "
	                 "git push -q ../srv/repo.git main"));
	run_cached(&r, wd2, url, NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "object files"), "nothing taken from the cache: %s", r.err);
	want = plain_clone_state(url, NULL);
	got = clone_state(wd2);
	cr_assert_str_eq(got, want);
	cr_assert_str_eq(gt_q(wd2, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse main"));
	cr_assert_str_eq(gt_q(wd2, "cat README"), "one\ntwo\nthree");
	kt_result_free(&r);

	/* A tag and a branch given as the ref resolve as without a cache. */
	kt_rmrf(wd2);
	run_cached(&r, wd2, url, "v1");
	expect_ok(&r);
	cr_assert_str_eq(gt_q(wd2, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse v1^{commit}"));
	kt_result_free(&r);

	/* No alternates: the clone borrows no path that another container
	 * (which mounts the work volume, not the cache) could not see, and
	 * stands alone once the cache is gone. */
	cr_assert_neq(access(gt_path(wd2, ".git/objects/info/alternates"), F_OK), 0);
	/* and no hard link: a task's code writing its own object files must
	 * not change the mirror's (cache and work dir share a file system
	 * here, where a link would have been possible) */
	cr_assert_str_eq(gt_q(wd2, "find .git/objects -type f -links +1 | head -n 3"), "",
	                 "object files shared with the mirror");
	kt_rmrf(cache);
	cr_assert_str_eq(gt_q(wd2, "git fsck --full --no-dangling --no-progress 2>&1"), "");
	cr_assert_str_eq(gt_q(wd2, "git log --format=%s origin/main | tr '\\n' ' '"), "third second first ");
	free(url), free(wd1), free(wd2), free(mirror), free(got), free(want);
}

Test(git_cache, force_push_and_deleted_branch_are_seen)
{
	gt_make_repo(base, 0);
	start_server("http", NULL);
	char *url = url_of("anon/repo.git");
	char *wd1 = kt_path(base, "w1"), *wd2 = kt_path(base, "w2"), *wd3 = kt_path(base, "w3");
	kt_result r;
	run_cached(&r, wd1, url, "feature");
	expect_ok(&r);
	kt_result_free(&r);
	char *old_main = gt_sh(base, "git -C src rev-parse main");

	/* History rewritten on main, feature deleted, tag v1 moved. */
	free(gt_sh(base, "cd src && git reset -q --hard main~1 && echo other > README && "
	                 "git commit -qam rewritten && git tag -f -a v1 -m moved >/dev/null && "
	                 "git push -q -f ../srv/repo.git main && "
	                 "git push -q -f ../srv/repo.git v1 && "
	                 "git push -q ../srv/repo.git :feature"));
	run_cached(&r, wd2, url, NULL);
	expect_ok(&r);
	char *want = plain_clone_state(url, NULL);
	char *got = clone_state(wd2);
	cr_assert_str_eq(got, want);
	cr_assert_not(kt_contains(got, "origin/feature"), "a deleted branch survived:\n%s", got);
	cr_assert_not(kt_contains(got, old_main), "the old main survived:\n%s", got);
	cr_assert_str_eq(gt_q(wd2, "cat README"), "other");
	kt_result_free(&r);

	/* The deleted branch is an error, as without a cache. */
	run_cached(&r, wd3, url, "feature");
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "'feature' is not a branch, tag or commit"), "%s", all);
	kt_result_free(&r);
	free(url), free(wd1), free(wd2), free(wd3), free(old_main), free(want), free(got), free(all);
}

/* Writes a pack-objects hook for the server's git: the pack is sent slowly
 * (the first 200 KB, then a pause of `pause` seconds, then the rest), so
 * transfers overlap and a task can be killed with half a pack written. */
static void slow_server(const char *pause)
{
	char *hook = kt_path(base, "slow-pack-objects");
	char *text = NULL;
	cr_assert(asprintf(&text,
	                   "#!/bin/sh\n\"$@\" > \"$0.$$\"\nhead -c 200000 \"$0.$$\"\nsleep %s\n"
	                   "tail -c +200001 \"$0.$$\"\nrm -f \"$0.$$\"\n",
	                   pause) > 0);
	kt_write_file(hook, text);
	chmod(hook, 0755);
	free(text);
	char *gitconfig = kt_path(base, "server-gitconfig");
	cr_assert(asprintf(&text, "[uploadpack]\n\tpackObjectsHook = %s\n", hook) > 0);
	kt_write_file(gitconfig, text);
	/* only the server's git reads it (the hook is honoured from global
	 * config only); the agent uses libgit2 */
	setenv("GIT_CONFIG_GLOBAL", gitconfig, 1);
	start_server("http", NULL);
	unsetenv("GIT_CONFIG_GLOBAL");
	free(text), free(hook), free(gitconfig);
}

Test(git_cache, concurrent_tasks_on_a_cold_cache)
{
	gt_make_repo(base, 1);
	slow_server("1");
	char *url = url_of("anon/repo.git");
	char *settings = NULL;
	cr_assert(asprintf(&settings, "  git_cache: \"%s\"\n", cache) > 0);
	enum { N = 3 };
	pid_t pid[N];
	int out[N], err[N];
	char *wd[N];
	for (int i = 0; i < N; i++) {
		char name[16];
		snprintf(name, sizeof name, "w%d", i);
		wd[i] = kt_path(base, name);
		pid[i] = spawn_clone(wd[i], url, i == 1 ? "feature" : NULL, settings, NULL, NULL,
		                     &out[i], &err[i]);
	}
	char *main_sha = gt_sh(base, "git -C src rev-parse main");
	char *feature_sha = gt_sh(base, "git -C src rev-parse feature");
	int waited = 0;
	for (int i = 0; i < N; i++) {
		kt_result r;
		cr_assert_eq(kt_wait(&r, pid[i], out[i], err[i], 150), 0);
		expect_ok(&r);
		waited += kt_contains(r.err, "waiting for another task") ? 1 : 0;
		cr_assert_str_eq(gt_q(wd[i], "git rev-parse HEAD"), i == 1 ? feature_sha : main_sha);
		cr_assert_str_eq(gt_q(wd[i], "git fsck --no-dangling --no-progress 2>&1"), "");
		kt_result_free(&r);
		free(wd[i]);
	}
	cr_assert_gt(waited, 0, "the tasks did not take turns on the mirror");
	char *mirror = the_mirror();
	cr_assert_str_eq(gt_q(mirror, "git fsck --no-dangling --no-progress 2>&1"), "");
	cr_assert_str_eq(gt_q(mirror, "git for-each-ref --format='%(refname)' refs/heads"),
	                 "refs/heads/feature\nrefs/heads/main");
	free(url), free(settings), free(main_sha), free(feature_sha), free(mirror);
}

/* Until the mirror's update has half its pack (slow_server's pause). */
static void wait_partial_pack(void)
{
	int seen = 0;
	for (int i = 0; i < 400 && !seen; i++) {
		usleep(50000);
		char *cmd = NULL;
		cr_assert(asprintf(&cmd, "find '%s' -path '*/objects/pack/*' -type f -size +100k "
		                         "| grep -c . || true", cache) > 0);
		char *n = gt_sh(base, "%s", cmd);
		seen = atoi(n) > 0;
		free(n), free(cmd);
	}
	cr_assert(seen, "the update never wrote a partial pack");
}

/* The remote changes while the mirror is being updated (after it listed
 * the refs): the task's own fetch from the remote sees the change, and the
 * clone is what the remote holds then, not what the mirror got. */
Test(git_cache, remote_changed_during_the_mirror_update)
{
	gt_make_repo(base, 1);
	slow_server("3");
	char *url = url_of("anon/repo.git");
	char *wd1 = kt_path(base, "w1");
	char *settings = NULL;
	cr_assert(asprintf(&settings, "  git_cache: \"%s\"\n", cache) > 0);
	int out, err;
	pid_t pid = spawn_clone(wd1, url, NULL, settings, NULL, NULL, &out, &err);
	wait_partial_pack();
	free(gt_sh(base, "git -C srv/repo.git branch -D feature >/dev/null && "
	                 "cd src && echo late >> README && git commit -qam late && "
	                 "git push -q ../srv/repo.git main"));
	kt_result r;
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	cr_assert_str_eq(gt_q(wd1, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse main"));
	char *remotes = gt_sh(wd1, "git for-each-ref --format='%%(refname)' refs/remotes");
	cr_assert_not(kt_contains(remotes, "feature"), "a branch deleted upstream: %s", remotes);
	kt_result_free(&r);
	free(url), free(wd1), free(settings), free(remotes);
}

Test(git_cache, task_killed_mid_update_leaves_a_usable_mirror)
{
	gt_make_repo(base, 1);
	kt_result r;
	char *wd1 = kt_path(base, "w1"), *wd2 = kt_path(base, "w2");
	slow_server("60");
	char *url = url_of("anon/repo.git");
	char *settings = NULL;
	cr_assert(asprintf(&settings, "  git_cache: \"%s\"\n", cache) > 0);
	int out, err;
	pid_t pid = spawn_clone(wd1, url, NULL, settings, NULL, NULL, &out, &err);
	/* Killed once half the pack is in the mirror's objects/pack. */
	wait_partial_pack();
	kill(pid, SIGKILL);
	cr_assert_eq(kt_wait(&r, pid, out, err, 30), 0);
	cr_assert_eq(r.status, 128 + SIGKILL, "%d", r.status);
	kt_result_free(&r);
	/* What else a killed ref update leaves: a ref's lock file. */
	char *mirror = the_mirror();
	free(gt_sh(mirror, "mkdir -p refs/heads && echo junk > refs/heads/main.lock"));

	/* The server is fast again: the next task's update goes through. */
	free(gt_sh(base, "printf '#!/bin/sh\\nexec \"$@\"\\n' > slow-pack-objects"));
	run_cached(&r, wd2, url, NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "an interrupted update left"), "%s", r.err);
	cr_assert_str_eq(gt_q(wd2, "git rev-parse HEAD"), gt_q(base, "git -C src rev-parse main"));
	cr_assert_str_eq(gt_q(mirror, "git fsck --no-dangling --no-progress 2>&1"), "");
	cr_assert_str_eq(gt_q(mirror, "find . -name '*.lock' -o -path '*/pack/*' ! -name 'pack-*'"),
	                 "");
	kt_result_free(&r);
	free(url), free(settings), free(wd1), free(wd2), free(mirror);
}

Test(git_cache, no_credentials_under_the_cache)
{
	gt_make_repo(base, 0);
	start_server("http", NULL);
	/* In the URL (basic auth's default alice:wonderland) ... */
	char *url = NULL;
	cr_assert(asprintf(&url, "http://alice:wonderland@127.0.0.1:%d/basic/repo.git", srv.port) >
	          0);
	char *wd1 = kt_path(base, "w1"), *wd2 = kt_path(base, "w2");
	kt_result r;
	run_cached(&r, wd1, url, NULL);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "git cache:"), "%s", r.err);
	kt_result_free(&r);
	/* ... and from a password file, the same repository without them. */
	char *pw = kt_path(base, "pw");
	kt_write_file(pw, "wonderland\n");
	char *plain = url_of("basic/repo.git");
	char *with = NULL, *settings = NULL;
	cr_assert(asprintf(&with, ", username: alice, password_file: \"%s\"", pw) > 0);
	cr_assert(asprintf(&settings, "  git_cache: \"%s\"\n", cache) > 0);
	int out, err;
	pid_t pid = spawn_clone(wd2, plain, NULL, settings, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "object files"), "one mirror for both URLs: %s", r.err);
	kt_result_free(&r);
	char *hits = gt_sh(base, "grep -rla -e wonderland -e alice cache || true; "
	                         "find cache | grep -e wonderland -e alice || true");
	cr_assert_str_eq(hits, "", "credentials stored in the cache: %s", hits);
	free(url), free(wd1), free(wd2), free(pw), free(plain), free(with), free(settings),
	        free(hits);
}

Test(git_cache, unusable_cache_warns_and_clones_from_the_remote)
{
	gt_make_repo(base, 0);
	start_server("http", NULL);
	char *url = url_of("anon/repo.git");
	char *want = gt_sh(base, "git -C src rev-parse main");
	char *wd1 = kt_path(base, "w1"), *wd2 = kt_path(base, "w2"), *wd3 = kt_path(base, "w3");
	/* The cache is a file, not a directory; given by the environment. */
	kt_write_file(cache, "not a directory\n");
	char *env_cache = NULL;
	cr_assert(asprintf(&env_cache, "KERUTA_GIT_CACHE=%s", cache) > 0);
	const char *env[] = {env_cache, NULL};
	int out, err;
	kt_result r;
	pid_t pid = spawn_clone(wd1, url, NULL, NULL, NULL, env, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "cloning without the cache"), "%s", r.err);
	cr_assert_str_eq(gt_q(wd1, "git rev-parse HEAD"), want);
	kt_result_free(&r);

	/* A mirror broken beyond opening is made anew (with: git_cache). */
	unlink(cache);
	char *with = NULL;
	cr_assert(asprintf(&with, ", git_cache: \"%s\"", cache) > 0);
	pid = spawn_clone(wd2, url, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	kt_result_free(&r);
	char *mirror = the_mirror();
	free(gt_sh(mirror, "rm -rf objects refs && echo garbage > HEAD"));
	pid = spawn_clone(wd3, url, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	cr_assert(kt_contains(r.err, "making it anew"), "%s", r.err);
	cr_assert_str_eq(gt_q(wd3, "git rev-parse HEAD"), want);
	cr_assert_str_eq(gt_q(mirror, "git rev-parse main"), want);
	kt_result_free(&r);
	free(url), free(want), free(wd1), free(wd2), free(wd3), free(env_cache), free(with),
	        free(mirror);
}

/* Where the cache cannot be used the task still clones from the remote,
 * saying why: a cache path under a file, a lock that is not a file.  A
 * URL with a trailing slash is the same repository: one mirror.  A task
 * waiting for another's lock on the mirror stops at SIGTERM. */
Test(git_cache, a_cache_that_cannot_be_made_or_locked_warns_and_clones)
{
	gt_make_repo(base, 0);
	start_server("http", NULL);
	char *url = url_of("anon/repo.git"), *slashed = url_of("anon/repo.git//");
	char *want = gt_sh(base, "git -C src rev-parse main");
	char *wd1 = kt_path(base, "w1"), *wd2 = kt_path(base, "w2"), *wd3 = kt_path(base, "w3"),
	     *wd4 = kt_path(base, "w4"), *wd5 = kt_path(base, "w5");
	int out, err;
	kt_result r;

	/* under a file: the cache directory cannot be made */
	char *file = kt_path(base, "a-file"), *under = kt_path(file, "cache"), *with = NULL;
	kt_write_file(file, "x\n");
	cr_assert(asprintf(&with, ", git_cache: \"%s\"", under) > 0);
	pid_t pid = spawn_clone(wd1, url, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	cr_expect(kt_contains(r.err, "git cache: cannot make") &&
	                  kt_contains(r.err, "cloning without the cache"),
	          "%s", r.err);
	cr_expect_str_eq(gt_q(wd1, "git rev-parse HEAD"), want);
	kt_result_free(&r);
	free(with);

	/* the same repository with and without a trailing slash: one mirror */
	cr_assert(asprintf(&with, ", git_cache: \"%s\"", cache) > 0);
	pid = spawn_clone(wd2, slashed, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	kt_result_free(&r);
	pid = spawn_clone(wd3, url, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	kt_result_free(&r);
	char *mirror = the_mirror();
	cr_assert(mirror && *mirror, "not exactly one mirror for the two spellings");
	char *lock = NULL;
	cr_assert(asprintf(&lock, "%.*s.lock", (int)strlen(mirror) - 4, mirror) > 0);
	/* a mirror's name starts with its repository's, for whoever lists the
	 * cache (letters, digits, '-', '_' and '.' kept, anything else '_') */
	free(gt_sh(base, "cp -r srv/repo.git 'srv/Wid+get-2_x.y.git'"));
	char *widget = url_of("anon/Wid+get-2_x.y.git"), *wd6 = kt_path(base, "w6");
	pid = spawn_clone(wd6, widget, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	kt_result_free(&r);
	char *named = gt_sh(cache, "ls -d Wid_get-2_x.y-????????????????.git");
	cr_expect(named && *named, "no mirror named after Wid+get-2_x.y.git");
	free(named), free(widget), free(wd6);

	/* another task holds the mirror's lock: this one waits, and stops at SIGTERM */
	int lfd = open(lock, O_RDWR);
	cr_assert(lfd >= 0 && flock(lfd, LOCK_EX) == 0, "%s", lock);
	pid = spawn_clone(wd4, url, NULL, NULL, with, NULL, &out, &err);
	/* SIGTERM once the agent says it waits (read from its stderr here,
	 * so what kt_wait collects later starts after that line) */
	static char said[1 << 16];
	size_t got = 0;
	said[0] = '\0';
	for (int i = 0; i < 600 && !strstr(said, "waiting for another task's use"); i++) {
		struct pollfd pf = {err, POLLIN, 0};
		ssize_t n;
		if (poll(&pf, 1, 50) > 0 && got < sizeof(said) - 1 &&
		    (n = read(err, said + got, sizeof(said) - 1 - got)) > 0) {
			got += (size_t)n;
			said[got] = '\0';
		}
	}
	cr_expect(strstr(said, "waiting for another task's use"), "%s", said);
	kill(pid, SIGTERM);
	cr_assert_eq(kt_wait(&r, pid, out, err, 20), 0);
	cr_expect(!r.timed_out, "the agent did not stop while waiting for the lock");
	cr_expect_neq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	close(lfd);

	/* the lock is a directory: no cache, still a clone */
	cr_assert(unlink(lock) == 0 && mkdir(lock, 0755) == 0);
	pid = spawn_clone(wd5, url, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	expect_ok(&r);
	cr_expect(kt_contains(r.err, "git cache: cannot open the lock"), "%s", r.err);
	cr_expect_str_eq(gt_q(wd5, "git rev-parse HEAD"), want);
	kt_result_free(&r);
	/* a repository the server does not have: the mirror cannot be
	 * updated, said, and the clone from the remote fails on its own */
	char *missing = url_of("anon/missing.git"), *wd7 = kt_path(base, "w7");
	pid = spawn_clone(wd7, missing, NULL, NULL, with, NULL, &out, &err);
	cr_assert_eq(kt_wait(&r, pid, out, err, 120), 0);
	cr_expect_eq(r.status, 1, "%s", r.err);
	cr_expect(kt_contains(r.err, "git cache: cannot update") &&
	                  kt_contains(r.err, "cloning without the cache"),
	          "%s", r.err);
	kt_result_free(&r);
	free(missing), free(wd7);
	free(url), free(slashed), free(want), free(wd1), free(wd2), free(wd3), free(wd4), free(wd5),
	        free(file), free(under), free(with), free(mirror), free(lock);
}
