/*
 * git_checkout.c - the check-out of a fresh clone (stages/clone_checkout.c):
 * the files, modes, links and index are what `git clone` makes of the same
 * repository, attributes and eol settings still apply, and hostile trees
 * write nothing outside the work dir.  Repositories are made with the git
 * CLI (git mktree for trees git itself would not make) and cloned from a
 * local path by the real agent.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "git_helpers.h"

static char *base, *wd;

static void setup(void)
{
	umask(022); /* git clone and the stage then agree on every mode */
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

TestSuite(git_checkout, .init = setup, .fini = teardown, .timeout = 120);

static int clone_path(kt_result *r, const char *src, const char *const *env)
{
	char *task = NULL;
	cr_assert(asprintf(&task, "id: t1\nrepository: { url: \"%s\", ref: main }\n", src) > 0);
	int rc = gt_agent(r, "execute", wd, task, "[clone]", "  clone: { plugin: clone }", env);
	free(task);
	return rc;
}

/* base/srv.git: a bare repository whose main is the commit of tree (a
 * `git mktree` answer) */
static char *bare_with_tree(const char *script)
{
	free(gt_sh(base, "git init -q --bare -b main srv.git && cd srv.git && %s && "
	                 "c=$(git commit-tree -m t \"$t\") && git update-ref refs/heads/main \"$c\"",
	           script));
	return kt_path(base, "srv.git");
}

static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	if (d)
		closedir(d);
	return n;
}

Test(git_checkout, a_fresh_clone_is_what_git_clone_makes)
{
	/* enough files for several writer threads; every kind of entry */
	free(gt_sh(base,
	           "git init -q -b main src && cd src\n"
	           "for d in $(seq 1 24); do mkdir -p d$d/sub; for f in $(seq 1 12); do\n"
	           "  printf 'file %%s/%%s\\n' $d $f > d$d/f$f.txt; done\n"
	           "  head -c 3000 /dev/urandom > d$d/sub/blob.bin; done\n"
	           "printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod +x run.sh\n"
	           ": > empty && printf 'caf\\303\\251\\n' > \"$(printf 'donn\\303\\251es et espaces.txt')\"\n"
	           "ln -s d1/f1.txt link-to-file && ln -s d2 link-to-dir && ln -s nowhere dangling\n"
	           "printf '*.o\\n' > .gitignore && mkdir .github && echo ci > .github/ci.yml\n"
	           "git add -A && git commit -qm one\n"
	           "git update-index --add --cacheinfo 160000,$(git rev-parse HEAD),vendor/sub\n"
	           "git commit -qm submodule\n"
	           "echo changed >> d3/f3.txt && git commit -qam two\n"
	           "cd .. && git clone -q --bare src srv.git && git clone -q srv.git ref\n"));
	char *url = kt_path(base, "srv.git");
	kt_result r;
	clone_path(&r, url, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 0, "%s", all);
	/* the stage's own check-out ran, not libgit2's */
	cr_assert(kt_contains(all, "checked out 320 files"), "%s", all);
	const char *list = "find . -path ./.git -prune -o -path ./.keruta -prune -o "
	                   "-printf '%p %y %m %s %l\\n' | LC_ALL=C sort";
	cr_assert_str_eq(gt_q(wd, list), gt_q(kt_path(base, "ref"), list));
	cr_assert_str_eq(gt_q(base, "diff -r --no-dereference -x .git -x .keruta ref work && "
	                            "echo same"),
	                 "same");
	/* the index is the commit's, and matches the files by their stat data */
	cr_assert_str_eq(gt_q(wd, "git ls-files -s"), gt_q(kt_path(base, "ref"), "git ls-files -s"));
	cr_assert_str_eq(gt_q(wd, "git diff-index --cached --quiet HEAD && git diff-files --quiet "
	                          "&& echo clean"),
	                 "clean");
	cr_assert_str_eq(gt_q(wd, "git status --porcelain | grep -v '^?? .keruta/$' | wc -l"), "0");
	cr_assert_str_eq(gt_q(wd, "git ls-files --debug run.sh | grep -c 'size: 18\\s'"), "1");
	cr_assert_eq(dir_entries(gt_path(wd, "vendor/sub")), 0);
	free(all);
	free(url);
	kt_result_free(&r);
}

/* Attributes choose filters the stage does not run itself: such a tree
 * or such settings are checked out by libgit2, filters applied. */
Test(git_checkout, attributes_and_autocrlf_still_apply)
{
	free(gt_sh(base,
	           "git init -q -b main src && cd src\n"
	           "printf '*.crlf eol=crlf\\nid.txt ident\\n' > .gitattributes\n"
	           "printf 'a\\nb\\n' > x.crlf && printf '$Id$\\n' > id.txt && printf 'a\\nb\\n' > plain\n"
	           "git add -A && git commit -qm one\n"
	           "git init -q -b main ../src2 && cd ../src2 && printf 'a\\nb\\n' > a.txt\n"
	           "git add -A && git commit -qm one\n"
	           "mkdir ../home && printf '[core]\\n\\tautocrlf = true\\n' > ../home/.gitconfig\n"));
	char *src = kt_path(base, "src");
	kt_result r;
	clone_path(&r, src, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 0, "%s", all);
	char *t = kt_read_file(gt_path(wd, "x.crlf"), NULL);
	cr_assert_str_eq(t, "a\r\nb\r\n");
	free(t);
	t = kt_read_file(gt_path(wd, "id.txt"), NULL);
	cr_assert(t && strncmp(t, "$Id: ", 5) == 0 && strlen(t) == 48, "%s", t ? t : "(none)");
	free(t);
	t = kt_read_file(gt_path(wd, "plain"), NULL);
	cr_assert_str_eq(t, "a\nb\n");
	free(t);
	free(all);
	kt_result_free(&r);

	/* core.autocrlf from the user's global configuration */
	kt_rmrf(wd);
	char *home = NULL;
	cr_assert(asprintf(&home, "HOME=%s/home", base) > 0);
	const char *env[] = {home, "XDG_CONFIG_HOME", NULL};
	char *src2 = kt_path(base, "src2");
	clone_path(&r, src2, env);
	all = gt_output(&r);
	cr_assert_eq(r.status, 0, "%s", all);
	t = kt_read_file(gt_path(wd, "a.txt"), NULL);
	cr_assert_str_eq(t, "a\r\nb\r\n", "%s", all);
	free(t);
	free(all);
	kt_result_free(&r);

	/* core.ignorecase: two names differing in case are one file there,
	 * which libgit2's check-out handles */
	kt_rmrf(wd);
	free(gt_sh(base, "printf '[core]\\n\\tignorecase = true\\n' > home/.gitconfig"));
	const char *env2[] = {home, "XDG_CONFIG_HOME", "KERUTA_LOG_LEVEL=debug", NULL};
	clone_path(&r, src2, env2);
	all = gt_output(&r);
	cr_assert_eq(r.status, 0, "%s", all);
	cr_assert(kt_contains(all, "checking out with libgit2: core.ignorecase is set"), "%s", all);
	t = kt_read_file(gt_path(wd, "a.txt"), NULL);
	cr_assert_str_eq(t, "a\nb\n", "%s", all);
	free(t);
	free(all);
	free(home);
	free(src);
	free(src2);
	kt_result_free(&r);
}

/* A tree naming one path twice, a link to a directory outside and a
 * directory: written one after the other, the second would put the
 * directory's files outside.  The clone fails naming the path, nothing
 * lands outside, and the partial clone is removed. */
Test(git_checkout, a_path_named_twice_writes_nothing_outside)
{
	char *outside = kt_path(base, "outside");
	cr_assert_eq(mkdir(outside, 0755), 0);
	char *script = NULL;
	cr_assert(asprintf(&script,
	                   "o=$(printf 'x\\n' | git hash-object -w --stdin) && "
	                   "l=$(printf '%%s' '%s' | git hash-object -w --stdin) && "
	                   "s=$(printf '100644 blob %%s\\tx\\n' $o | git mktree) && "
	                   "t=$(printf '120000 blob %%s\\ta\\n040000 tree %%s\\ta\\n"
	                   "100644 blob %%s\\tb\\n040000 tree %%s\\tb\\n' $l $s $o $s | git mktree)",
	                   outside) > 0);
	char *url = bare_with_tree(script);
	kt_result r;
	clone_path(&r, url, NULL);
	char *all = gt_output(&r);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "names it twice"), "%s", all);
	cr_assert_eq(dir_entries(outside), 0, "written outside the work dir:\n%s", all);
	struct stat st;
	cr_assert(lstat(gt_path(wd, "a"), &st) != 0, "the partial clone is left:\n%s", all);
	cr_assert(lstat(gt_path(wd, ".git"), &st) != 0, "the partial clone is left:\n%s", all);
	free(all);
	free(script);
	free(url);
	free(outside);
	kt_result_free(&r);
}

/* Names some file system reads as .git or as a way out go to libgit2's
 * path rules, which refuse them: nothing is checked out. */
Test(git_checkout, names_libgit2_refuses_are_refused)
{
	const char *trees[] = {
	        "t=$(printf '040000 tree %s\\t.GIT\\n' $s | git mktree)",
	        "t=$(printf '100644 blob %s\\t..\\n' $o | git mktree)",
	        "t=$(printf '040000 tree %s\\tgit~1\\n' $s | git mktree)",
	        "t=$(printf '040000 tree %s\\t.git.\\n' $s | git mktree)",
	};
	for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
		kt_rmrf(wd);
		char *d = kt_path(base, "srv.git");
		kt_rmrf(d);
		free(d);
		char *script = NULL;
		cr_assert(asprintf(&script,
		                   "o=$(printf 'x\\n' | git hash-object -w --stdin) && "
		                   "s=$(printf '100644 blob %%s\\tconfig\\n' $o | git mktree) && %s",
		                   trees[i]) > 0);
		char *url = bare_with_tree(script);
		kt_result r;
		clone_path(&r, url, NULL);
		char *all = gt_output(&r);
		cr_assert_eq(r.status, 1, "tree %zu checked out:\n%s", i, all);
		cr_assert(kt_contains(all, "cannot check out"), "tree %zu:\n%s", i, all);
		cr_assert(!kt_contains(all, "checked out 1 files"), "tree %zu:\n%s", i, all);
		free(all);
		free(script);
		free(url);
		kt_result_free(&r);
	}
}

/* Large blobs are held whole while written: they go one at a time, so a
 * repository of large assets needs one of them in memory, not one per
 * writer thread.  The agent's peak RSS is read from a process of its
 * own (RUSAGE_CHILDREN holds the largest child ever waited for). */
Test(git_checkout, large_files_are_written_whole_one_at_a_time)
{
#ifdef __SANITIZE_ADDRESS__
	cr_skip_test("built with ASan: its quarantine keeps freed blobs resident, so the peak "
	             "RSS says nothing; the plain build checks this");
#endif
	const char *pre = getenv("LD_PRELOAD");
	if (pre && strstr(pre, "vgpreload"))
		cr_skip_test("under valgrind the peak RSS is valgrind's; the plain run checks this");
	/* 4 incompressible 24 MiB files, loose objects (each read whole and
	 * inflated: ~48 MiB while written), each followed by small files, so
	 * that a second writer reaches the next large one while the first
	 * still writes its own */
	free(gt_sh(base, "git init -q -b main src && cd src\n"
	                 "for d in 1 2 3 4; do mkdir d$d && head -c 25165824 /dev/urandom > "
	                 "d$d/big.bin\n  for i in $(seq 1 80); do echo $i > d$d/s$i; done; done\n"
	                 "git add -A && git commit -qm big\n"));
	char *src = kt_path(base, "src");
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		close(fds[0]);
		kt_result r;
		clone_path(&r, src, NULL);
		struct rusage ru;
		getrusage(RUSAGE_CHILDREN, &ru);
		char line[64];
		int n = snprintf(line, sizeof line, "%d %ld\n", r.status, ru.ru_maxrss);
		_exit(write(fds[1], line, (size_t)n) == n ? 0 : 1);
	}
	close(fds[1]);
	char line[64] = "";
	ssize_t got = read(fds[0], line, sizeof line - 1);
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	int status = -1;
	long maxrss_kib = 0;
	cr_assert(got > 0 && sscanf(line, "%d %ld", &status, &maxrss_kib) == 2, "no report");
	cr_assert_eq(status, 0, "the clone failed");
	for (int i = 1; i <= 4; i++) {
		char cmd[64];
		snprintf(cmd, sizeof cmd, "cmp src/d%d/big.bin work/d%d/big.bin && echo same", i, i);
		cr_assert_str_eq(gt_q(base, cmd), "same");
	}
	/* one blob at a time: ~48 MiB over the agent's own; two at once: ~96 */
	cr_assert_lt(maxrss_kib, 80 * 1024, "peak RSS %ld KiB: large blobs were held together",
	             maxrss_kib);
	free(src);
}

/* SIGTERM while the files are written: the check-out stops within a few
 * files (not when the whole tree is out), the task ends terminated, and
 * no partial clone is left. */
Test(git_checkout, sigterm_stops_the_check_out)
{
	const char *pre = getenv("LD_PRELOAD");
	if (pre && strstr(pre, "vgpreload"))
		cr_skip_test("10,000 files under valgrind: minutes; the plain run checks this");
	/* 10,000 loose objects: no background `git gc --auto` may pack
	 * them while the clone takes them */
	free(gt_sh(base, "git init -q -b main src && cd src\n"
	                 "for d in $(seq 1 100); do mkdir d$d; for f in $(seq 1 100); do "
	                 "echo $d.$f > d$d/f$f; done; done\n"
	                 "git add -A && git -c gc.auto=0 commit -qm many\n"));
	char *src = kt_path(base, "src");
	char *task = NULL, *dir = NULL;
	cr_assert(asprintf(&task, "id: t1\nrepository: { url: \"%s\", ref: main }\n", src) > 0);
	int out_fd, err_fd;
	pid_t pid = gt_agent_spawn("execute", wd, task, "[clone]", "  clone: { plugin: clone }",
	                           NULL, &out_fd, &err_fd, &dir);
	cr_assert_gt(pid, 0);
	/* the object files are taken just before the check-out */
	char seen[65536];
	size_t n = 0;
	seen[0] = '\0';
	for (int i = 0; i < 600 && !strstr(seen, "object files") && n < sizeof seen - 1; i++) {
		struct pollfd p = {err_fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t got = read(err_fd, seen + n, sizeof seen - 1 - n);
		if (got <= 0)
			break;
		n += (size_t)got;
		seen[n] = '\0';
	}
	kill(pid, SIGTERM);
	kt_result r;
	kt_wait(&r, pid, out_fd, err_fd, 60);
	char *all = NULL;
	cr_assert(asprintf(&all, "%s%s", seen, r.err ? r.err : "") >= 0);
	cr_assert(strstr(seen, "object files"), "the objects were never taken: %s", all);
	cr_assert_eq(r.status, 1, "%s", all);
	cr_assert(kt_contains(all, "terminated by SIGTERM: clone: stopped during the check-out"),
	          "%s", all);
	cr_assert_str_eq(gt_q(base, "ls -A work | grep -vx .keruta | wc -l"), "0",
	                 "a partial clone is left: %s", all);
	kt_rmrf(dir);
	free(dir);
	free(all);
	free(task);
	free(src);
	kt_result_free(&r);
}
