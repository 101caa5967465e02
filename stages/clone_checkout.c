/*
 * clone_checkout.c - the check-out of a fresh clone: the commit's files
 * written into the empty work dir by several threads, each reading blobs
 * through its own object database handle, then the index written from the
 * tree and the written files' stat data.
 *
 * Why not git_checkout_tree() here: libgit2 1.5 writes on one thread and,
 * for every file, looks up its attributes through realpath() of the whole
 * path (a readlink per component); on a tree of a few thousand files that
 * is most of a clone taken from the git cache.
 *
 * It does only what it can do exactly as git_checkout_tree() with
 * GIT_CHECKOUT_FORCE would, and hands everything else back before it
 * writes a byte (CLONE_CHECKOUT_LIBGIT2, with the reason):
 *   - any source of attributes (a .gitattributes in the tree,
 *     info/attributes, core.attributesFile, the XDG or system attributes
 *     file): attributes choose filters (eol, ident, working-tree-encoding);
 *   - core.autocrlf other than false, core.eol crlf, core.symlinks false,
 *     core.ignorecase true;
 *   - a name some file system treats specially, which libgit2 checks
 *     against its core.protectNTFS/protectHFS rules: .git in any spelling,
 *     a '~', '\\' or ':', a control character, a trailing dot or space, a
 *     link named .git*;
 *   - an entry mode other than file, executable, link, tree or submodule.
 * The caller has checked that the work dir holds nothing but .git and
 * .keruta, and that the tree has no .keruta entry.
 *
 * Writes go through a directory descriptor of the work dir with O_EXCL and
 * O_NOFOLLOW; every directory is made (by this thread, in tree order)
 * before any file or link, and a link never replaces an existing name, so
 * no path can lead through a link: a tree naming one path twice (a
 * directory and a link, say) fails with the name, and nothing is written
 * outside the work dir.
 *
 * Threading: the workers touch only their own odb handle, the entries
 * handed to them (each entry written by exactly one worker) and the job's
 * atomic counters; only the calling thread, which writes too, calls the
 * agent's services (cancelled(), between entries).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clone.h"

#define MAX_WORKERS 8
#define FILES_PER_WORKER 128 /* fewer: not worth a thread */
#define CLAIM 8              /* entries a worker takes at a time */
/* Blobs this large are read one at a time, whatever the number of
 * workers: each is held whole in memory while it is written (as in
 * libgit2's own check-out), and a repository of large assets must not
 * need eight of them at once in a pod's memory limit. */
#define BIG_BLOB ((size_t)16 << 20)

typedef struct co_entry {
	char *path; /* relative to the work dir (owned by the list) */
	git_oid id;
	git_filemode_t mode;
	struct stat st; /* of what was written (files and links) */
} co_entry;

typedef struct co_list {
	co_entry *e;
	size_t n, cap, files;
	const char *why; /* set: hand the check-out back to libgit2 */
	int oom;
} co_list;

typedef struct co_job {
	clone_run *r;        /* for cancelled(), asked by the calling thread only */
	const char *objects; /* the repository's objects dir */
	int wdfd;
	co_entry *e;
	size_t n;
	size_t next;     /* the next unclaimed entry (atomic) */
	int failed;      /* a worker failed: the others stop (atomic) */
	int cancelled;   /* the agent was asked to stop (calling thread only) */
	uint64_t bytes;  /* written (atomic) */
	pthread_mutex_t lock;
	pthread_mutex_t big; /* held while a blob over BIG_BLOB is in memory */
	char why[512];   /* the first failure, under lock */
} co_job;

static int lower_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* NULL if libgit2's path rules could not object to the name, else why. */
static const char *unusual_name(const char *name, git_filemode_t mode)
{
	size_t n = strlen(name);
	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "an empty, '.' or '..' name";
	if (name[n - 1] == '.' || name[n - 1] == ' ')
		return "a name ending in a dot or a space";
	/* HFS+ ignores some Unicode code points in names (".g\u200cit" is
	 * ".git" there): compare the name with its non-ASCII bytes left out */
	char plain[256];
	size_t p = 0;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
		if (*c < 0x20 || *c == 0x7f || *c == '/' || *c == '\\' || *c == ':' || *c == '~')
			return "a name with a control character, '/', '\\\\', ':' or '~'";
		if (*c < 0x80 && p < sizeof plain)
			plain[p++] = (char)*c;
	}
	if (p >= 4 && strncasecmp(plain, ".git", 4) == 0) {
		if (p == 4)
			return "a .git entry";
		if (mode == GIT_FILEMODE_LINK)
			return "a link named .git*";
		if (lower_is(plain, p, ".gitattributes"))
			return "a .gitattributes file";
	}
	return NULL;
}

static int walk_cb(const char *root, const git_tree_entry *te, void *payload)
{
	co_list *l = payload;
	git_filemode_t mode = git_tree_entry_filemode(te);
	const char *name = git_tree_entry_name(te);
	if (mode != GIT_FILEMODE_BLOB && mode != GIT_FILEMODE_BLOB_EXECUTABLE &&
	    mode != GIT_FILEMODE_LINK && mode != GIT_FILEMODE_TREE && mode != GIT_FILEMODE_COMMIT) {
		l->why = "an entry of an unusual mode";
		return -1;
	}
	if ((l->why = unusual_name(name, mode)) != NULL)
		return -1;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		co_entry *e = realloc(l->e, cap * sizeof *e);
		if (!e) {
			l->oom = 1;
			return -1;
		}
		l->e = e;
		l->cap = cap;
	}
	co_entry *e = &l->e[l->n];
	memset(e, 0, sizeof *e);
	if (asprintf(&e->path, "%s%s", root, name) < 0) {
		e->path = NULL;
		l->oom = 1;
		return -1;
	}
	e->id = *git_tree_entry_id(te);
	e->mode = mode;
	l->n++;
	if (mode != GIT_FILEMODE_TREE && mode != GIT_FILEMODE_COMMIT)
		l->files++;
	return 0;
}

static void list_free(co_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].path);
	free(l->e);
}

/* Does any of the dirs in a ':'-separated search path hold file? */
static int search_path_has(int level, const char *file)
{
	git_buf b = {0};
	int found = 0;
	if (git_libgit2_opts(GIT_OPT_GET_SEARCH_PATH, level, &b) == 0 && b.ptr) {
		char *dirs = strdup(b.ptr), *save = NULL;
		for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d && !found;
		     d = strtok_r(NULL, ":", &save)) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", d, file);
			found = access(path, F_OK) == 0;
		}
		free(dirs);
	}
	git_buf_dispose(&b);
	return found;
}

/* NULL if the repository's settings leave files as they are in the tree. */
static const char *unusual_settings(git_repository *repo)
{
	git_config *cfg = NULL;
	const char *why = NULL;
	if (git_repository_config_snapshot(&cfg, repo) < 0)
		return "its configuration cannot be read";
	git_config_entry *ce = NULL;
	int b;
	if (git_config_get_entry(&ce, cfg, "core.autocrlf") == 0 &&
	    (git_config_parse_bool(&b, ce->value) < 0 || b))
		why = "core.autocrlf is set";
	git_config_entry_free(ce);
	ce = NULL;
	if (!why && git_config_get_entry(&ce, cfg, "core.eol") == 0 && ce->value &&
	    strcasecmp(ce->value, "lf") != 0 && strcasecmp(ce->value, "native") != 0)
		why = "core.eol is set";
	git_config_entry_free(ce);
	ce = NULL;
	if (!why && git_config_get_entry(&ce, cfg, "core.symlinks") == 0 &&
	    (git_config_parse_bool(&b, ce->value) < 0 || !b))
		why = "core.symlinks is false";
	git_config_entry_free(ce);
	ce = NULL;
	if (!why && git_config_get_entry(&ce, cfg, "core.attributesfile") == 0)
		why = "core.attributesFile is set";
	git_config_entry_free(ce);
	ce = NULL;
	/* two names differing in case are one file there: libgit2 decides */
	if (!why && git_config_get_entry(&ce, cfg, "core.ignorecase") == 0 &&
	    (git_config_parse_bool(&b, ce->value) < 0 || b))
		why = "core.ignorecase is set";
	git_config_entry_free(ce);
	git_config_free(cfg);
	if (!why) {
		char path[4096];
		snprintf(path, sizeof path, "%sinfo/attributes", git_repository_path(repo));
		if (access(path, F_OK) == 0)
			why = "info/attributes exists";
		else if (search_path_has(GIT_CONFIG_LEVEL_XDG, "attributes"))
			why = "an XDG attributes file exists";
		else if (search_path_has(GIT_CONFIG_LEVEL_SYSTEM, "gitattributes"))
			why = "a system gitattributes file exists";
	}
	return why;
}

static void job_fail(co_job *j, const char *path, const char *what, const char *why)
{
	pthread_mutex_lock(&j->lock);
	if (!j->why[0])
		snprintf(j->why, sizeof j->why, "%s %s: %s", what, path, why);
	pthread_mutex_unlock(&j->lock);
	__atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void write_entry(co_job *j, git_odb *odb, co_entry *e)
{
	git_odb_object *obj = NULL;
	size_t len = 0;
	git_object_t type;
	int big = git_odb_read_header(&len, &type, odb, &e->id) == 0 && len > BIG_BLOB;
	if (big)
		pthread_mutex_lock(&j->big);
	if (git_odb_read(&obj, odb, &e->id) < 0) {
		const git_error *ge = git_error_last();
		job_fail(j, e->path, "cannot read the blob of", ge && ge->message ? ge->message : "?");
		if (big)
			pthread_mutex_unlock(&j->big);
		return;
	}
	const char *data = git_odb_object_data(obj);
	size_t size = git_odb_object_size(obj);
	if (e->mode == GIT_FILEMODE_LINK) {
		char *target = strndup(data, size); /* a NUL in it ends it, as in libgit2 */
		if (!target)
			job_fail(j, e->path, "cannot link", "out of memory");
		else if (symlinkat(target, j->wdfd, e->path) < 0 ||
		         fstatat(j->wdfd, e->path, &e->st, AT_SYMLINK_NOFOLLOW) < 0)
			job_fail(j, e->path, "cannot link", errno == EEXIST
			                                            ? "the tree names it twice"
			                                            : strerror(errno));
		free(target);
	} else {
		int fd = openat(j->wdfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		                e->mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644);
		if (fd < 0) {
			job_fail(j, e->path, "cannot create",
			         errno == EEXIST ? "the tree names it twice" : strerror(errno));
		} else {
			int bad = write_all(fd, data, size) < 0 || fstat(fd, &e->st) < 0;
			int err = errno;
			if (close(fd) < 0 && !bad) {
				bad = 1;
				err = errno;
			}
			if (bad)
				job_fail(j, e->path, "cannot write", strerror(err));
			else
				__atomic_fetch_add(&j->bytes, size, __ATOMIC_RELAXED);
		}
	}
	git_odb_object_free(obj);
	if (big)
		pthread_mutex_unlock(&j->big);
}

/* Take entries until none is left or a worker failed.  The calling
 * thread (caller set) also asks the agent whether to stop: SIGTERM
 * during the check-out of a large tree stops it within a few files. */
static void work(co_job *j, int caller)
{
	git_odb *odb = NULL;
	if (git_odb_open(&odb, j->objects) < 0) {
		const git_error *ge = git_error_last();
		job_fail(j, j->objects, "cannot open", ge && ge->message ? ge->message : "?");
		return;
	}
	for (;;) {
		if (caller && j->r->svc->cancelled(j->r->task)) {
			j->cancelled = 1;
			__atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
			break;
		}
		size_t i = __atomic_fetch_add(&j->next, CLAIM, __ATOMIC_RELAXED);
		if (i >= j->n)
			break;
		size_t end = i + CLAIM < j->n ? i + CLAIM : j->n;
		for (; i < end && !__atomic_load_n(&j->failed, __ATOMIC_RELAXED); i++) {
			co_entry *e = &j->e[i];
			if (e->mode != GIT_FILEMODE_TREE && e->mode != GIT_FILEMODE_COMMIT)
				write_entry(j, odb, e);
		}
		if (__atomic_load_n(&j->failed, __ATOMIC_RELAXED))
			break;
	}
	git_odb_free(odb);
}

static void *worker(void *arg)
{
	work(arg, 0);
	return NULL;
}

/* The index: the tree's entries with the stat data of the written files,
 * so that `git status` finds the work dir clean without reading it. */
static int write_index(clone_run *r, git_repository *repo, git_tree *tree, co_list *l)
{
	git_index *idx = NULL;
	int rc = git_repository_index(&idx, repo);
	if (rc == 0)
		rc = git_index_read_tree(idx, tree);
	/* Each id is the tree's and a worker has just read its object:
	 * libgit2 looking each up again (strict object creation, on by
	 * default) would cost an object database lookup per file.  Only
	 * this thread uses libgit2 here; the default is put back below. */
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
	for (size_t i = 0; rc == 0 && i < l->n; i++) {
		co_entry *e = &l->e[i];
		if (e->mode == GIT_FILEMODE_TREE || e->mode == GIT_FILEMODE_COMMIT)
			continue;
		git_index_entry ie;
		memset(&ie, 0, sizeof ie);
		ie.ctime.seconds = (int32_t)e->st.st_ctim.tv_sec;
		ie.ctime.nanoseconds = (uint32_t)e->st.st_ctim.tv_nsec;
		ie.mtime.seconds = (int32_t)e->st.st_mtim.tv_sec;
		ie.mtime.nanoseconds = (uint32_t)e->st.st_mtim.tv_nsec;
		ie.dev = (uint32_t)e->st.st_dev;
		ie.ino = (uint32_t)e->st.st_ino;
		ie.mode = e->mode;
		ie.uid = e->st.st_uid;
		ie.gid = e->st.st_gid;
		ie.file_size = (uint32_t)e->st.st_size;
		ie.id = e->id;
		ie.path = e->path;
		rc = git_index_add(idx, &ie);
	}
	git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 1);
	if (rc == 0)
		rc = git_index_write(idx);
	if (rc < 0) {
		const git_error *ge = git_error_last();
		r->svc->fail(r->task, "clone: cannot write the index of %s: %s",
		             git_repository_path(repo), ge && ge->message ? ge->message : "?");
	}
	git_index_free(idx);
	return rc < 0 ? -1 : 0;
}

/* The CPUs this process may run on (a container's cpuset), not the
 * machine's. */
static long usable_cpus(void)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
	                                                     : sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n;
}

int clone_checkout_fresh(clone_run *r, git_repository *repo, git_tree *tree, const char *wd)
{
	co_list l;
	memset(&l, 0, sizeof l);
	const char *why = unusual_settings(repo);
	if (!why && git_tree_walk(tree, GIT_TREEWALK_PRE, walk_cb, &l) < 0 && !l.why) {
		list_free(&l);
		if (l.oom)
			return r->svc->fail(r->task, "clone: out of memory listing the tree");
		const git_error *ge = git_error_last();
		return r->svc->fail(r->task, "clone: cannot read the tree: %s",
		                    ge && ge->message ? ge->message : "?");
	}
	if (why || l.why) {
		r->svc->log(r->task, KR_LOG_DEBUG, "checking out with libgit2: %s",
		            why ? why : l.why);
		list_free(&l);
		return CLONE_CHECKOUT_LIBGIT2;
	}
	uint64_t t0 = clone_now_ms();
	co_job j;
	memset(&j, 0, sizeof j);
	char *objects = NULL;
	int rc = -1;
	j.wdfd = open(wd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j.wdfd < 0) {
		r->svc->fail(r->task, "clone: cannot open the work dir %s: %s", wd, strerror(errno));
		goto out;
	}
	if (asprintf(&objects, "%sobjects", git_repository_path(repo)) < 0) {
		objects = NULL;
		r->svc->fail(r->task, "out of memory");
		goto out;
	}
	/* directories first, parents before children (the walk's order) */
	for (size_t i = 0; i < l.n; i++) {
		co_entry *e = &l.e[i];
		if ((e->mode == GIT_FILEMODE_TREE || e->mode == GIT_FILEMODE_COMMIT) &&
		    mkdirat(j.wdfd, e->path, 0755) < 0) {
			r->svc->fail(r->task, "clone: cannot make the directory %s in %s: %s", e->path, wd,
			             errno == EEXIST ? "the tree names it twice" : strerror(errno));
			goto out;
		}
	}
	j.r = r;
	j.objects = objects;
	j.e = l.e;
	j.n = l.n;
	pthread_mutex_init(&j.lock, NULL);
	pthread_mutex_init(&j.big, NULL);
	long want = 1 + (long)(l.files / FILES_PER_WORKER), cpus = usable_cpus();
	if (want > cpus)
		want = cpus;
	if (want > MAX_WORKERS)
		want = MAX_WORKERS;
	pthread_t th[MAX_WORKERS];
	long started = 0;
	for (; started < want - 1; started++)
		if (pthread_create(&th[started], NULL, worker, &j) != 0)
			break; /* fewer threads, same result */
	work(&j, 1);
	for (long i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&j.lock);
	pthread_mutex_destroy(&j.big);
	if (j.cancelled) {
		r->cancelled = 1;
		r->svc->fail(r->task, "clone: stopped during the check-out in %s", wd);
		goto out;
	}
	if (j.failed) {
		r->svc->fail(r->task, "clone: check-out in %s: %s", wd, j.why);
		goto out;
	}
	if (write_index(r, repo, tree, &l) < 0)
		goto out;
	r->svc->log(r->task, KR_LOG_INFO, "checked out %zu files (%.1f MiB) in %.1f s (%ld threads)",
	            l.files, (double)j.bytes / 1048576.0, (double)(clone_now_ms() - t0) / 1000.0,
	            started + 1);
	rc = 0;
out:
	if (j.wdfd >= 0)
		close(j.wdfd);
	free(objects);
	list_free(&l);
	return rc;
}
