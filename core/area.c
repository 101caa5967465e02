/*
 * area.c - the agent's own area in the work dir; see area.h for the rules.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "area.h"
#include "log.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* Remove what stands at name in dir: a non-directory, or an empty
 * directory. */
static int remove_in_the_way(int dir, const char *name)
{
	if (unlinkat(dir, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno == EISDIR || errno == EPERM)
		return unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
	return -1;
}

/* Open or make one component. */
static int step(int dir, const char *name, int create)
{
	if (strcmp(name, "..") == 0) {
		errno = EINVAL;
		return -1;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		int fd = openat(dir, name, DIR_FLAGS);
		if (fd >= 0 || !create)
			return fd;
		if (errno == ENOENT) {
			if (mkdirat(dir, name, 0755) != 0 && errno != EEXIST)
				return -1;
			continue;
		}
		if (errno != ELOOP && errno != ENOTDIR)
			return -1;
		struct stat st;
		if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
			kr_log(KR_LOG_WARN, NULL,
			       "removed '%s' from the agent's area %s: a %s where the agent keeps a "
			       "directory (a repository may not place files in .keruta)",
			       name, KR_AREA_DIR, S_ISLNK(st.st_mode) ? "symlink" : "file");
			if (remove_in_the_way(dir, name) != 0)
				return -1;
		}
	}
	errno = ELOOP;
	return -1;
}

int kr_area_openat(int base, const char *rel, int create)
{
	int fd = fcntl(base, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || !rel)
		return fd;
	const char *p = rel;
	while (*p && fd >= 0) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (!n)
			break;
		char name[256];
		if (n >= sizeof(name)) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		if (strcmp(name, ".") == 0)
			continue;
		int next = step(fd, name, create);
		int e = errno;
		close(fd);
		fd = next;
		errno = e;
	}
	return fd;
}

int kr_area_open(const char *work, const char *rel, int create)
{
	int wfd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (wfd < 0)
		return -1;
	int area = openat(wfd, KR_AREA_DIR, DIR_FLAGS);
	if (area < 0 && errno == ENOENT && create) {
		if (mkdirat(wfd, KR_AREA_DIR, 0755) == 0 || errno == EEXIST)
			area = openat(wfd, KR_AREA_DIR, DIR_FLAGS);
	}
	int e = errno;
	close(wfd);
	if (area < 0) {
		errno = e == ELOOP ? ENOTDIR : e;
		return -1;
	}
	int fd = kr_area_openat(area, rel, create);
	e = errno;
	close(area);
	errno = e;
	return fd;
}

int kr_area_mkdirs(const char *path)
{
	const char *mark = strstr(path, "/" KR_AREA_DIR "/");
	size_t ml = strlen("/" KR_AREA_DIR);
	if (!mark && strlen(path) >= ml && strcmp(path + strlen(path) - ml, "/" KR_AREA_DIR) == 0)
		mark = path + strlen(path) - ml;
	if (!mark)
		return kr_mkdirs(path, 0755);
	char *work = kr_strndup(path, (size_t)(mark - path));
	int rc = *work ? kr_mkdirs(work, 0755) : 0;
	int fd = rc == 0 ? kr_area_open(*work ? work : "/", mark + ml, 1) : -1;
	int e = errno;
	free(work);
	if (fd < 0) {
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

int kr_area_id_ok(const char *id)
{
	return kr_id_check("id", id, NULL) == 0;
}

/* Point area/name at tasks/<id>/name. */
static int show(int area, const char *id, const char *name)
{
	char target[512];
	snprintf(target, sizeof(target), KR_AREA_TASKS "/%s/%s", id, name);
	for (int attempt = 0; attempt < 3; attempt++) {
		char cur[512];
		ssize_t n = readlinkat(area, name, cur, sizeof(cur) - 1);
		if (n >= 0) {
			cur[n] = '\0';
			if (strcmp(cur, target) == 0)
				return 0;
			if (unlinkat(area, name, 0) != 0 && errno != ENOENT)
				return -1;
		} else if (errno == EINVAL) {
			/* A real directory or file: not ours to upload or show.  It
			 * is moved aside, never deleted (it may be someone's work). */
			char aside[300];
			snprintf(aside, sizeof(aside), "unowned/%s.%ld.%ld", name, (long)time(NULL),
			         (long)getpid());
			int u = kr_area_openat(area, "unowned", 1);
			if (u < 0)
				return -1;
			close(u);
			if (renameat(area, name, area, aside) != 0 && errno != ENOENT)
				return -1;
			kr_log(KR_LOG_WARN, NULL,
			       "moved %s/%s aside to %s/%s: .keruta/%s shows the running task's own "
			       "files (.keruta/" KR_AREA_TASKS "/<task id>/%s)",
			       KR_AREA_DIR, name, KR_AREA_DIR, aside, name, name);
		} else if (errno != ENOENT) {
			return -1;
		}
		if (symlinkat(target, area, name) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

int kr_area_task_open(const char *work, const char *task_id, const char *rel, unsigned flags,
                      kr_error *err)
{
	int create = (flags & (KR_AREA_F_CREATE | KR_AREA_F_SHOW)) != 0;
	if (!work || !*work) {
		kr_error_set(err, KR_EXIT_USAGE, "the task has no work dir; set --work-dir");
		errno = EINVAL;
		return -1;
	}
	/* The seeds' init container knows no task id: its area is adopted by
	 * the first process of the pod that does (the main container). */
	if (!task_id || !*task_id)
		task_id = KR_AREA_NO_ID;
	if (!kr_area_id_ok(task_id)) {
		kr_error_set(err, KR_EXIT_TASK_FAILED,
		             "task id '%.*s' cannot name a directory in %s/%s/%s (empty, '.', '..', a "
		             "'/', a control character or over %d bytes); give the task a plain id",
		             KR_ID_MAX + 8, task_id, work, KR_AREA_DIR, KR_AREA_TASKS, KR_ID_MAX);
		errno = EINVAL;
		return -1;
	}
	int area = kr_area_open(work, NULL, create);
	if (area < 0) {
		int e = errno;
		if (e == ENOTDIR)
			kr_error_set(err, KR_EXIT_TASK_FAILED,
			             "%s/%s is not a directory (a symlink or file in the repository?); "
			             "remove it so the agent can use it",
			             work, KR_AREA_DIR);
		else if (e != ENOENT || create)
			kr_error_set(err, KR_EXIT_TASK_FAILED,
			             "cannot %s %s/%s: %s; check that the work dir exists and is writable",
			             create ? "create" : "open", work, KR_AREA_DIR, strerror(e));
		errno = e;
		return -1;
	}
	if (strcmp(task_id, KR_AREA_NO_ID) != 0) {
		int tasks = kr_area_openat(area, KR_AREA_TASKS, 0);
		struct stat st;
		if (tasks >= 0 && fstatat(tasks, task_id, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
		    errno == ENOENT && renameat(tasks, KR_AREA_NO_ID, tasks, task_id) == 0)
			kr_log(KR_LOG_INFO, NULL,
			       "%s/%s/%s/%s: the area an init container prepared without a task id is "
			       "now task %s's",
			       work, KR_AREA_DIR, KR_AREA_TASKS, task_id, task_id);
		if (tasks >= 0)
			close(tasks);
	}
	char *sub = kr_asprintf(KR_AREA_TASKS "/%s/%s", task_id, rel ? rel : "");
	int fd = kr_area_openat(area, sub, create);
	int e = errno;
	if (fd >= 0 && (flags & KR_AREA_F_SHOW)) {
		static const char *const shown[] = {"doc", "documents"};
		for (size_t i = 0; i < 2; i++) {
			char *own = kr_asprintf(KR_AREA_TASKS "/%s/%s", task_id, shown[i]);
			int d = kr_area_openat(area, own, 1);
			free(own);
			if (d < 0 || show(area, task_id, shown[i]) != 0) {
				e = errno;
				kr_error_set(err, KR_EXIT_TASK_FAILED,
				             "cannot point %s/%s/%s at the task's own directory: %s",
				             work, KR_AREA_DIR, shown[i], strerror(e));
				if (d >= 0)
					close(d);
				close(fd);
				fd = -1;
				break;
			}
			close(d);
		}
	} else if (fd < 0 && (e != ENOENT || create)) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot %s %s/%s/%s: %s",
		             create ? "create" : "open", work, KR_AREA_DIR, sub, strerror(e));
	}
	free(sub);
	close(area);
	errno = e;
	return fd;
}

int kr_area_create_file(int dir, const char *name, int extra, mode_t mode)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		/* Look before opening: opening a device or FIFO can act. */
		struct stat st;
		if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
			if (S_ISDIR(st.st_mode)) {
				errno = EISDIR;
				return -1;
			}
			kr_log(KR_LOG_WARN, NULL,
			       "removed '%s' from the agent's area: a %s where the agent writes a file",
			       name, S_ISLNK(st.st_mode) ? "symlink" : "special file");
			if (unlinkat(dir, name, 0) != 0 && errno != ENOENT)
				return -1;
		}
		int fd = openat(dir, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | extra,
		                mode);
		if (fd < 0) {
			if (errno == ELOOP || errno == ENXIO)
				continue; /* replaced meanwhile: look again */
			return -1;
		}
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			return fd;
		}
		close(fd);
	}
	errno = ELOOP;
	return -1;
}
