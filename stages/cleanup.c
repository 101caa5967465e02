/*
 * cleanup.c - the `cleanup` stage: remove the temporary files the agent
 * made in the task's area (<work_dir>/.keruta/tasks/<task id>), and leave
 * the rest of the work dir as the seeds expect: the repository and the
 * task's doc/ and documents/ stay, because the work volume (a PVC) is
 * inherited by child tasks, which read them under the parent's id.
 *
 * With `remove_work_dir: true` the whole content of the work dir goes
 * instead (never the work dir itself: it is usually a mount point, and
 * never when the work dir is /).
 *
 * Everything here goes through directory descriptors and unlinkat: a
 * symlink is removed as a link, never followed, so a link planted in the
 * work dir cannot make the stage delete anything outside it.  The final
 * status is not this stage's business: the agent reports it after the
 * last stage, also when an earlier stage failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keruta/plugin.h"

#include "stage_util.h"

/* Temporary files of the built-in stages, relative to the task's area
 * (.keruta/tasks/<task id>/).  The
 * document stage's partial downloads are hidden ".fetch-*.tmp" files: a
 * document's own name never starts with a dot, so this cannot match one. */
static const char *const builtin_temp[] = {"install.sh", "execute.sh", "documents/.*.tmp", "env/*", NULL};

typedef struct cleanup_state {
	const char *const *remove; /* with: remove (NULL-ended), or NULL */
	int remove_work_dir;
} cleanup_state;

static const kr_option cleanup_options[] = {
        {.name = "remove", .type = KR_OPT_LIST,
         .help = "more files to remove, relative to the task's area .keruta/tasks/<task id>/ "
                 "(the last part may be a glob)",
         KR_OPT_FIELD(cleanup_state, remove)},
        {.name = "remove_work_dir", .type = KR_OPT_BOOL, .default_value = "false",
         .help = "remove the whole content of the work dir (never when it is /)",
         KR_OPT_FIELD(cleanup_state, remove_work_dir)},
        {0}};

/* A pattern must stay inside .keruta: relative, no "..". */
static int pattern_ok(const char *p)
{
	if (!*p || p[0] == '/')
		return 0;
	for (const char *c = p; *c;) {
		size_t n = strcspn(c, "/");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return 0;
		c += n;
		if (*c)
			c++;
	}
	return 1;
}

static int cleanup_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	cleanup_state *s = kr_stage_new_state(svc, cfg, sizeof(*s), "cleanup");
	if (!s)
		return KR_FAILED;
	for (const char *const *p = s->remove; p && *p; p++)
		if (!pattern_ok(*p)) {
			svc->fail(NULL, "cleanup: `remove:` entry '%s' must be a path relative to "
			                "the task's area, without '..'",
			          *p);
			free(s);
			return KR_FAILED;
		}
	*state = s;
	return KR_OK;
}

static void cleanup_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
}

/* Remove files (and symlinks) matching pattern below the task's area. */
static size_t remove_pattern(const kr_services *svc, kr_task *t, const char *pattern)
{
	const char *slash = strrchr(pattern, '/');
	const char *leaf = slash ? slash + 1 : pattern;
	char *sub = slash ? strndup(pattern, (size_t)(slash - pattern)) : NULL;
	if (slash && !sub)
		return 0;
	int dfd = svc->area_open(t, sub ? sub : "", 0);
	free(sub);
	if (dfd < 0)
		return 0;
	size_t removed = 0;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    fnmatch(leaf, e->d_name, 0) != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
			removed++;
			svc->log(t, KR_LOG_DEBUG, "removed %.*s%s%s from the task's area",
			         slash ? (int)(slash - pattern) : 0, pattern, slash ? "/" : "",
			         e->d_name);
		} else {
			svc->log(t, KR_LOG_WARN, "cannot remove %.*s%s%s from the task's area: %s",
			         slash ? (int)(slash - pattern) : 0, pattern, slash ? "/" : "",
			         e->d_name, strerror(errno));
		}
	}
	closedir(d);
	return removed;
}

typedef struct rm_count {
	size_t removed, failed, mounts;
} rm_count;

/* Remove everything inside the directory at dfd (taken over).  Other
 * file systems mounted below are left alone (a mounted Secret, say). */
static void remove_tree(int dfd, dev_t dev, rm_count *c)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		c->failed++;
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		struct stat st;
		int fd = dirfd(d);
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			c->failed++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (st.st_dev != dev) {
				c->mounts++;
				continue;
			}
			int cfd = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0) {
				c->failed++;
				continue;
			}
			remove_tree(cfd, dev, c);
			if (unlinkat(fd, e->d_name, AT_REMOVEDIR) == 0)
				c->removed++;
			else if (errno != ENOTEMPTY && errno != EEXIST)
				c->failed++;
		} else if (unlinkat(fd, e->d_name, 0) == 0) {
			c->removed++;
		} else {
			c->failed++;
		}
	}
	closedir(d);
}

static int wipe_work_dir(const kr_services *svc, kr_task *t, const char *work, int wfd)
{
	struct stat w, root;
	if (fstat(wfd, &w) != 0 || stat("/", &root) != 0)
		return svc->fail(t, "cannot stat the work dir %s: %s", work, strerror(errno));
	if (w.st_dev == root.st_dev && w.st_ino == root.st_ino)
		return svc->fail(t, "refusing to remove the content of %s: it is the root directory; "
		                    "set --work-dir to the task's own directory",
		                 work);
	rm_count c = {0};
	int dup_fd = dup(wfd);
	if (dup_fd < 0)
		return svc->fail(t, "cannot read the work dir %s: %s", work, strerror(errno));
	remove_tree(dup_fd, w.st_dev, &c);
	svc->log(t, KR_LOG_INFO, "removed the content of the work dir %s (%zu entries)%s", work,
	         c.removed, c.mounts ? "; mounts inside it were left alone" : "");
	if (c.failed)
		return svc->fail(t, "could not remove %zu entries in the work dir %s; check their "
		                    "permissions",
		                 c.failed, work);
	return KR_OK;
}

static int cleanup_run(const kr_services *svc, void *state, kr_task *t)
{
	cleanup_state *s = state;
	const char *work = kr_stage_work_dir(svc, t, "cleanup");
	if (!work)
		return KR_FAILED;
	int wfd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (wfd < 0) {
		if (errno == ENOENT) {
			svc->log(t, KR_LOG_INFO, "the work dir %s does not exist; nothing to clean", work);
			return KR_SKIPPED;
		}
		return svc->fail(t, "cannot open the work dir %s: %s", work, strerror(errno));
	}
	int rc = KR_OK;
	if (s->remove_work_dir) {
		rc = wipe_work_dir(svc, t, work, wfd);
		close(wfd);
		return rc;
	}
	close(wfd);
	int area = svc->area_open(t, "", 0);
	if (area < 0) {
		svc->log(t, KR_LOG_INFO,
		         "no area of this task in %s/.keruta/tasks (or not a directory); nothing to "
		         "clean",
		         work);
		return KR_SKIPPED;
	}
	close(area);
	size_t removed = 0;
	for (const char *const *p = builtin_temp; *p; p++)
		removed += remove_pattern(svc, t, *p);
	for (const char *const *p = s->remove; p && *p; p++)
		removed += remove_pattern(svc, t, *p);
	svc->log(t, KR_LOG_INFO,
	         "removed %zu temporary file%s from %s/.keruta/tasks/%s; the repository, the "
	         "task's doc/ and documents/ and its upload record are kept for child tasks",
	         removed, removed == 1 ? "" : "s", work, svc->task_get(t, KR_TASK_ID));
	return rc;
}

KR_PLUGIN_DEFINE(.name = "cleanup", .version = "1.0",
                 .description = "remove the agent's temporary files from the work dir",
                 .options = cleanup_options, .init = cleanup_init, .run = cleanup_run,
                 .fini = cleanup_fini);
