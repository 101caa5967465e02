/*
 * clone_cache.c - the repository cache (`git_cache: DIR`): one bare mirror
 * per repository URL, shared by every task of a machine, so a new task
 * takes the history it already has from there and fetches only what is
 * new from the remote.
 *
 * Layout: DIR/NAME.git (the mirror) and DIR/NAME.lock (its lock), NAME
 * the URL's last path component and a hash of the URL without
 * credentials, trailing slashes and ".git".  The mirror holds the remote's
 * branches and tags as they are (pruned on each update); the URL and
 * credentials are never written there: the update fetches through an
 * in-memory remote, without FETCH_HEAD or reflogs.
 *
 * Every change of a mirror, and every read of its refs by a clone, happens
 * under flock(2) on its lock file: the kernel releases it when the holder
 * dies, however it dies.  A killed update leaves at worst a temporary pack
 * file and ref lock files (libgit2 writes the pack, renames it into place,
 * then moves each ref through NAME.lock): the next holder removes those
 * before it fetches, so a mirror stays usable.  A mirror that cannot be
 * opened is made anew.  A clone copies the object files under the lock:
 * nothing it uses can go away meanwhile, and no hard link lets a task's
 * own code change a file the mirror shares with every other task.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clone.h"

/* Longest wait for another task's update before cloning without the cache:
 * a holder is bounded by io_timeout per stall, so this only guards against
 * a stuck machine. */
#define LOCK_WAIT_MS (10u * 60u * 1000u)

static const char *lg2_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

/* The two forms of a URL live here, with the mirror name built from one
 * of them; clone.c logs the other. */
char *clone_url_public(const char *url)
{
	const char *s = strstr(url, "://");
	char *out = strdup(url);
	if (!out || !s)
		return out;
	s += 3;
	const char *slash = strchr(s, '/');
	const char *at = strchr(s, '@');
	if (at && (!slash || at < slash))
		memmove(out + (s - url), out + (at + 1 - url), strlen(at + 1) + 1);
	return out;
}

char *clone_url_key(const char *url)
{
	char *out = clone_url_public(url);
	if (!out)
		return NULL;
	size_t n = strlen(out);
	while (n && out[n - 1] == '/')
		out[--n] = 0;
	if (n > 4 && strcmp(out + n - 4, ".git") == 0)
		out[n - 4] = 0;
	return out;
}

/* NAME: readable and unique ("repo-0123456789abcdef"). */
static char *mirror_name(const char *url)
{
	char *key = clone_url_key(url);
	if (!key)
		return NULL;
	git_oid oid;
	char hex[GIT_OID_HEXSZ + 1];
	if (git_odb_hash(&oid, key, strlen(key), GIT_OBJECT_BLOB) < 0) {
		free(key);
		return NULL;
	}
	git_oid_tostr(hex, sizeof hex, &oid);
	const char *last = strrchr(key, '/');
	const char *colon = strrchr(key, ':');
	if (!last || (colon && colon > last))
		last = colon;
	last = last ? last + 1 : key;
	char readable[41];
	size_t n = 0;
	for (const char *p = last; *p && n < sizeof readable - 1; p++)
		readable[n++] = (strchr("-_.", *p) || (*p >= '0' && *p <= '9') ||
		                 ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
		                        ? *p
		                        : '_';
	readable[n] = 0;
	char *name = NULL;
	if (asprintf(&name, "%s-%.16s", n && readable[0] != '.' ? readable : "repo", hex) < 0)
		name = NULL;
	free(key);
	return name;
}

void clone_cache_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

int clone_cache_lock(clone_run *r, const char *mirror)
{
	size_t n = strlen(mirror);
	char *path = NULL;
	if (n < 4 || asprintf(&path, "%.*s.lock", (int)(n - 4), mirror) < 0)
		return -1;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (fd < 0) {
		r->svc->log(r->task, KR_LOG_WARN,
		            "git cache: cannot open the lock %s: %s; cloning without the cache", path,
		            strerror(errno));
		free(path);
		return -1;
	}
	uint64_t start = clone_now_ms();
	int said = 0;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			r->svc->log(r->task, KR_LOG_WARN,
			            "git cache: cannot lock %s: %s; cloning without the cache", path,
			            strerror(errno));
			break;
		}
		if (r->svc->cancelled(r->task))
			break;
		if (clone_now_ms() - start > LOCK_WAIT_MS) {
			r->svc->log(r->task, KR_LOG_WARN,
			            "git cache: %s is still locked after %u s; cloning without the cache",
			            path, LOCK_WAIT_MS / 1000);
			break;
		}
		if (!said++)
			r->svc->log(r->task, KR_LOG_INFO,
			            "git cache: waiting for another task's use of %s", mirror);
		usleep(50000);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* ---- what a killed holder leaves ------------------------------------- */

static int stale_count;

static int rm_tree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Lock files of refs and of the repository's own files, and temporary
 * files of the object writer (the indexer's pack and index, loose objects
 * being written): nobody else can be writing them while we hold the lock. */
static int stale_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	if (flag != FTW_F)
		return 0;
	const char *base = path + ftw->base;
	size_t n = strlen(base);
	int in_pack = strstr(path, "/objects/pack/") != NULL;
	int stale = (n > 5 && strcmp(base + n - 5, ".lock") == 0) ||
	            (in_pack && strncmp(base, "pack-", 5) != 0) ||
	            (strstr(path, "/objects/") && strncmp(base, "tmp_", 4) == 0);
	if (stale && unlink(path) == 0)
		stale_count++;
	return 0;
}

/* ---- the update ------------------------------------------------------ */

static int open_mirror(clone_run *r, const char *mirror, git_repository **repo)
{
	struct stat st;
	if (lstat(mirror, &st) == 0) {
		if (S_ISDIR(st.st_mode) &&
		    git_repository_open_ext(repo, mirror, GIT_REPOSITORY_OPEN_NO_SEARCH |
		                                                  GIT_REPOSITORY_OPEN_BARE,
		                            NULL) == 0)
			return 0;
		r->svc->log(r->task, KR_LOG_WARN,
		            "git cache: %s is not a usable repository (%s); making it anew", mirror,
		            lg2_msg());
		if (nftw(mirror, rm_tree_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
			return -1;
	}
	git_repository_init_options io;
	git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	io.mode = GIT_REPOSITORY_INIT_SHARED_ALL; /* tasks of other users update it too */
	return git_repository_init_ext(repo, mirror, &io);
}

static int fetch_mirror(clone_run *r, git_repository *repo, const char *url, char *why,
                        size_t why_size)
{
	git_remote *remote = NULL;
	/* in memory only: the URL (and any password in it) is not written to
	 * the mirror's config */
	if (git_remote_create_anonymous(&remote, repo, url) < 0) {
		snprintf(why, why_size, "%s", lg2_msg());
		return -1;
	}
	char *specs[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"};
	git_strarray refspecs = {specs, 2};
	git_fetch_options fo;
	char *hdrs[1];
	char *hdr = clone_fetch_options(r, &fo, hdrs);
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* the refspec has them */
	fo.prune = GIT_FETCH_PRUNE;
	int rc = git_remote_fetch(remote, &refspecs, &fo, NULL);
	if (rc < 0) {
		snprintf(why, why_size, "%s", lg2_msg());
	} else {
		clone_progress_done(r, git_remote_stats(remote));
		/* HEAD as the remote's, so the mirror reads as a clone would
		 * (tasks take their default branch from the remote itself) */
		git_buf def = GIT_BUF_INIT;
		if (git_remote_default_branch(&def, remote) == 0)
			git_repository_set_head(repo, def.ptr);
		git_buf_dispose(&def);
	}
	free(hdr);
	git_remote_free(remote);
	return rc < 0 ? -1 : 0;
}

int clone_cache_update(clone_run *r, const char *dir, const char *url, char **mirror)
{
	*mirror = NULL;
	char *name = mirror_name(url);
	char *path = NULL;
	if (!name || asprintf(&path, "%s/%s.git", dir, name) < 0) {
		free(name);
		return -1;
	}
	free(name);
	struct stat st;
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		r->svc->log(r->task, KR_LOG_WARN,
		            "git cache: cannot make %s: %s; cloning without the cache", dir,
		            strerror(errno));
		free(path);
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		r->svc->log(r->task, KR_LOG_WARN,
		            "git cache: %s is not a directory; cloning without the cache", dir);
		free(path);
		return -1;
	}
	int fd = clone_cache_lock(r, path);
	if (fd < 0) {
		free(path);
		return -1;
	}
	uint64_t start = clone_now_ms();
	stale_count = 0;
	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		nftw(path, stale_entry, 16, FTW_PHYS);
	if (stale_count)
		r->svc->log(r->task, KR_LOG_INFO,
		            "git cache: removed %d file(s) an interrupted update left in %s",
		            stale_count, path);
	git_repository *repo = NULL;
	char why[512] = "";
	int rc = -1;
	if (open_mirror(r, path, &repo) < 0)
		snprintf(why, sizeof why, "cannot make the mirror: %s", lg2_msg());
	else
		rc = fetch_mirror(r, repo, url, why, sizeof why);
	git_repository_free(repo);
	clone_cache_unlock(fd);
	if (rc < 0) {
		r->svc->log(r->task, KR_LOG_WARN,
		            "git cache: cannot update %s: %s; cloning without the cache", path, why);
		free(path);
		return -1;
	}
	r->svc->log(r->task, KR_LOG_INFO, "git cache: %s up to date in %.1f s", path,
	            (double)(clone_now_ms() - start) / 1000.0);
	*mirror = path;
	return 0;
}
