/*
 * collect.c - the `collect` stage: upload every regular file under the
 * document output directory as an artifact of the task, named by its path
 * relative to that directory.
 *
 * The directory is written by the task's own program, so everything in it
 * is untrusted.  The walk goes through directory descriptors (openat,
 * fstatat, O_NOFOLLOW) and never follows a symlink: a link to the
 * service-account token or /etc/shadow is skipped, not uploaded.  FIFOs,
 * sockets and devices are skipped without being opened (opening a FIFO
 * for reading would block).  A file is opened with O_NOFOLLOW, checked on
 * its descriptor, and handed to the backend as /proc/self/fd/N, so what
 * is uploaded is the file that was checked even if the tree changes under
 * us.  The backend streams the file: memory does not grow with its size.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keruta/plugin.h"

#include "stage_util.h"

#define MAX_DEPTH 64
#define MAX_SKIP_LINES 100
#define MAX_FAILED_NAMES 10

typedef struct collect_state {
	const char *dir; /* with: dir; NULL or "": the task's doc directory */
	uint64_t max_file, max_total;
} collect_state;

static const kr_option collect_options[] = {
        {.name = "dir", .type = KR_OPT_STRING,
         .help = "directory to collect (relative to the work dir; default the task's own "
                 ".keruta/tasks/<task id>/doc, and /.keruta/doc when it exists)",
         KR_OPT_FIELD(collect_state, dir)},
        {.name = "max_file_size", .type = KR_OPT_SIZE, .default_value = "100MB",
         .help = "larger files are skipped", KR_OPT_FIELD(collect_state, max_file)},
        {.name = "max_total_size", .type = KR_OPT_SIZE, .default_value = "1GB",
         .help = "stop uploading beyond this many bytes", KR_OPT_FIELD(collect_state, max_total)},
        {0}};

enum skip_reason { SK_SYMLINK, SK_SPECIAL, SK_FILE_LIMIT, SK_TOTAL_LIMIT, SK_NAME, SK_DEPTH,
	           SK_UNREADABLE, SK_COUNT };
static const char *const skip_names[SK_COUNT] = {
        "symlink", "special file", "over the per-file limit", "over the total limit",
        "control characters in the name", "nested too deep", "unreadable"};

typedef struct walk {
	const kr_services *svc;
	kr_task *t;
	const collect_state *s;
	const char *root;   /* display path of the directory being walked */
	int use_proc;       /* /proc/self/fd is there                      */
	uint64_t total;
	size_t uploaded, already, skipped, failed;
	size_t by_reason[SK_COUNT];
	char *failed_names; /* first MAX_FAILED_NAMES, ", "-separated      */
	int cancelled;
} walk;

static int collect_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	collect_state *s = kr_stage_new_state(svc, cfg, sizeof(*s), "collect");
	if (!s)
		return KR_FAILED;
	if (s->dir && !*s->dir)
		s->dir = NULL;
	*state = s;
	return KR_OK;
}

static void collect_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
}

static void skip(walk *w, const char *rel, enum skip_reason why, const char *detail)
{
	w->skipped++;
	w->by_reason[why]++;
	if (w->skipped <= MAX_SKIP_LINES)
		w->svc->log(w->t, KR_LOG_WARN, "skipped %s: %s%s%s", rel, skip_names[why],
		            detail ? " " : "", detail ? detail : "");
	else if (w->skipped == MAX_SKIP_LINES + 1)
		w->svc->log(w->t, KR_LOG_WARN, "more files skipped; only counting them from now on");
}

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static void note_failure(walk *w, const char *rel)
{
	w->failed++;
	if (w->failed > MAX_FAILED_NAMES)
		return;
	char *n = NULL;
	if (asprintf(&n, "%s%s%s", w->failed_names ? w->failed_names : "",
	             w->failed_names ? ", " : "", rel) >= 0) {
		free(w->failed_names);
		w->failed_names = n;
	}
}

static void upload_file(walk *w, int dfd, const char *name, const char *rel)
{
	const kr_services *svc = w->svc;
	if (has_control(rel)) {
		skip(w, rel, SK_NAME, NULL);
		return;
	}
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		char why[128];
		snprintf(why, sizeof(why), "(%s)", strerror(errno));
		skip(w, rel, errno == ELOOP ? SK_SYMLINK : SK_UNREADABLE, why);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) { /* replaced since it was listed */
		skip(w, rel, SK_SPECIAL, "(changed while collecting)");
		close(fd);
		return;
	}
	uint64_t size = (uint64_t)st.st_size;
	char detail[96];
	if (w->s->max_file && size > w->s->max_file) {
		snprintf(detail, sizeof(detail), "(%llu bytes > %llu)", (unsigned long long)size,
		         (unsigned long long)w->s->max_file);
		skip(w, rel, SK_FILE_LIMIT, detail);
		close(fd);
		return;
	}
	if (w->s->max_total && w->total + size > w->s->max_total) {
		snprintf(detail, sizeof(detail), "(%llu bytes; %llu of %llu already used)",
		         (unsigned long long)size, (unsigned long long)w->total,
		         (unsigned long long)w->s->max_total);
		skip(w, rel, SK_TOTAL_LIMIT, detail);
		close(fd);
		return;
	}
	char *path = NULL;
	int ok = w->use_proc ? asprintf(&path, "/proc/self/fd/%d", fd)
	                     : asprintf(&path, "%s/%s", w->root, rel);
	if (ok < 0) {
		close(fd);
		note_failure(w, rel);
		return;
	}
	int rc = svc->upload_artifact(w->t, path, rel);
	free(path);
	close(fd);
	if (rc == KR_OK) {
		w->uploaded++;
		w->total += size;
		svc->task_list_add(w->t, KR_TASK_ARTIFACTS, rel);
		svc->log(w->t, KR_LOG_DEBUG, "collected %s (%llu bytes)", rel, (unsigned long long)size);
	} else if (rc == KR_SKIPPED) {
		w->already++; /* the task's upload record has it: sent once already */
	} else if (svc->cancelled(w->t)) {
		w->cancelled = 1;
	} else {
		svc->log(w->t, KR_LOG_ERROR, "could not collect %s", rel);
		note_failure(w, rel);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walk the directory open at dfd (taken over); rel is its path from the
 * root ("" for the root). */
static void walk_dir(walk *w, int dfd, const char *rel, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		skip(w, *rel ? rel : ".", SK_UNREADABLE, NULL);
		return;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (!nn)
				break;
			names = nn;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	/* sorted: the same tree always uploads in the same order */
	if (n) /* names is NULL for an empty directory */
		qsort(names, n, sizeof(*names), by_name);
	int fd = dirfd(d);
	for (size_t i = 0; i < n; i++) {
		if (w->cancelled || (w->cancelled = w->svc->cancelled(w->t)))
			break;
		char *sub = NULL;
		if (asprintf(&sub, "%s%s%s", rel, *rel ? "/" : "", names[i]) < 0)
			continue;
		struct stat st;
		if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
			skip(w, sub, SK_UNREADABLE, NULL);
		} else if (S_ISLNK(st.st_mode)) {
			char target[256], detail[300];
			ssize_t tl = readlinkat(fd, names[i], target, sizeof(target) - 1);
			target[tl > 0 ? tl : 0] = '\0';
			for (char *p = target; *p; p++)
				if ((unsigned char)*p < 0x20)
					*p = '?';
			snprintf(detail, sizeof(detail), "(-> %s, not followed)", target);
			skip(w, sub, SK_SYMLINK, detail);
		} else if (S_ISDIR(st.st_mode)) {
			if (depth >= MAX_DEPTH) {
				skip(w, sub, SK_DEPTH, NULL);
			} else {
				int cfd = openat(fd, names[i],
				                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (cfd < 0)
					skip(w, sub, errno == ELOOP || errno == ENOTDIR ? SK_SYMLINK
					                                                 : SK_UNREADABLE,
					     NULL);
				else
					walk_dir(w, cfd, sub, depth + 1);
			}
		} else if (S_ISREG(st.st_mode)) {
			upload_file(w, fd, names[i], sub);
		} else {
			skip(w, sub, SK_SPECIAL,
			     S_ISFIFO(st.st_mode)   ? "(a FIFO, not read)"
			     : S_ISSOCK(st.st_mode) ? "(a socket)"
			                            : "(a device)");
		}
		free(sub);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
}

/* Walk one root; 0 if it was there, 1 if missing. */
static int collect_root(walk *w, int fd, const char *display)
{
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			w->svc->log(w->t, KR_LOG_WARN,
			            "%s is not a directory (a symlink?); not followed, nothing collected "
			            "from it",
			            display);
		else if (errno != ENOENT)
			w->svc->log(w->t, KR_LOG_WARN, "cannot open %s: %s; nothing collected from it",
			            display, strerror(errno));
		return 1;
	}
	w->root = display;
	w->svc->log(w->t, KR_LOG_INFO, "collecting files under %s", display);
	walk_dir(w, fd, "", 0);
	return 0;
}

/*
 * Which pod's work a volume holds, per task: the main container records
 * its pod (KERUTA_POD_NAME, which `render` sets from the downward API) in
 * the task's own area (<work>/.keruta/tasks/<task>/pod), and the cleanup Job (--source-pod) checks
 * that it mounted that pod's volume before it uploads anything from it.
 * 0 to go on; KR_FAILED (with the reason) on another pod's volume.
 */
static int source_pod_check(const kr_services *svc, kr_task *t, const char *work)
{
	const char *id = svc->task_get(t, KR_TASK_ID);
	const char *pod = svc->task_get(t, "cleanup.source_pod");
	const char *me = getenv("KERUTA_POD_NAME");
	if (!id || !*id || (!(pod && *pod) && !(me && *me)))
		return 0;
	if (!(pod && *pod)) {
		/* the main container: record this pod in the task's own area, in
		 * a new file (a FIFO the task's code left there would block an
		 * open: it is removed, not opened) */
		int afd = svc->area_open(t, "", KR_AREA_CREATE);
		int fd = afd >= 0 ? kr_stage_new_file(afd, "pod", 0644) : -1;
		if (fd < 0 || kr_stage_write_all(fd, me) != 0)
			svc->log(t, KR_LOG_WARN,
			         "cannot record pod %s in the task's area under %s/.keruta: %s; the cleanup "
			         "Job will not be able to check its volume",
			         me, work, strerror(errno));
		if (fd >= 0)
			close(fd);
		if (afd >= 0)
			close(afd);
		return 0;
	}
	/* The task's code could have left a FIFO there (a blocking open
	 * would wait forever) or a link to a file whose first line the
	 * message below would show: only a regular file is read. */
	char seen[256] = "";
	const char *why = "not there";
	int afd = svc->area_open(t, "", 0);
	int fd = afd >= 0 ? openat(afd, "pod", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1;
	struct stat st;
	ssize_t got = -1;
	if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)))
		why = "not a regular file";
	else if (fd >= 0 && (got = read(fd, seen, sizeof(seen) - 1)) < 0)
		why = strerror(errno);
	else if (fd < 0 && errno == ELOOP)
		why = "a symlink, not a regular file";
	else if (fd < 0 && errno != ENOENT)
		why = strerror(errno);
	if (fd >= 0)
		close(fd);
	if (afd >= 0)
		close(afd);
	seen[got > 0 ? got : 0] = '\0';
	seen[strcspn(seen, "\r\n")] = '\0';
	if (!*seen) {
		svc->log(t, KR_LOG_WARN,
		         "the work volume at %s has no record of the pod that ran task %s (%s); "
		         "cannot confirm it is the volume of pod %s",
		         work, id, got >= 0 ? "empty" : why, pod);
		return 0;
	}
	if (strcmp(seen, pod) != 0)
		return svc->fail(t, "the work volume at %s holds task %s's work from pod %s, not from "
		                    "source pod %s: the cleanup Job mounted another volume than the "
		                    "task's pod; nothing collected",
		                 work, id, seen, pod);
	svc->log(t, KR_LOG_INFO, "the work volume at %s is the one source pod %s used", work, pod);
	return 0;
}

static int collect_run(const kr_services *svc, void *state, kr_task *t)
{
	collect_state *s = state;
	const char *work = kr_stage_work_dir(svc, t, "collect");
	if (!work)
		return KR_FAILED;
	const char *pod = svc->task_get(t, "cleanup.source_pod");
	if (pod && *pod)
		svc->log(t, KR_LOG_INFO,
		         "collecting the artifacts of pod %s from the task's work volume at %s", pod,
		         work);

	walk w = {.svc = svc, .t = t, .s = s};
	w.use_proc = access("/proc/self/fd", X_OK) == 0;
	int found = 0;
	if (source_pod_check(svc, t, work) != 0)
		return KR_FAILED;
	char *display = NULL;
	if (s->dir) {
		if (s->dir[0] == '/') {
			display = strdup(s->dir);
			found += !collect_root(&w, open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC),
			                       display);
		} else if (asprintf(&display, "%s/%s", work, s->dir) >= 0) {
			found += !collect_root(&w, svc->area_open(t, s->dir, KR_AREA_WORK_DIR), display);
		}
	} else {
		/* The task's own doc/, never .keruta/doc (a symlink that another
		 * task sharing the volume may have pointed at its own). */
		char *own = svc->area_path(t, "", 0);
		if (own && asprintf(&display, "%s/doc", own) >= 0)
			found += !collect_root(&w, svc->area_open(t, "doc", 0), display);
		else
			display = NULL;
		svc->free(own);
		/* The seeds name the absolute /.keruta/doc, unless that is the
		 * work dir's own area (the work dir is /). */
		struct stat a, b;
		int wk = svc->area_open(t, ".keruta", KR_AREA_WORK_DIR);
		int rk = open("/.keruta", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int same = wk >= 0 && rk >= 0 && fstat(wk, &a) == 0 && fstat(rk, &b) == 0 &&
		           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
		int fd = rk >= 0 && !same
		                 ? openat(rk, "doc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
		                 : -1;
		int e = errno;
		if (wk >= 0)
			close(wk);
		if (rk >= 0)
			close(rk);
		errno = e;
		if (fd >= 0 || (rk >= 0 && !same && errno != ENOENT))
			found += !collect_root(&w, fd, "/.keruta/doc");
	}
	free(display);

	if (w.cancelled) {
		free(w.failed_names);
		return KR_CANCELLED;
	}
	if (!found) {
		svc->log(t, KR_LOG_INFO, "no document output directory; nothing to collect");
		return KR_SKIPPED;
	}
	char reasons[512] = "";
	size_t off = 0;
	for (int i = 0; i < SK_COUNT && off < sizeof(reasons); i++)
		if (w.by_reason[i])
			off += (size_t)snprintf(reasons + off, sizeof(reasons) - off, "%s%zu %s",
			                        off ? ", " : " (", w.by_reason[i], skip_names[i]);
	if (off && off < sizeof(reasons) - 1)
		strcat(reasons, ")");
	svc->log(t, KR_LOG_INFO,
	         "collected %zu file%s (%llu bytes), %zu already collected, skipped %zu%s, failed %zu",
	         w.uploaded, w.uploaded == 1 ? "" : "s", (unsigned long long)w.total, w.already,
	         w.skipped, reasons, w.failed);
	int rc = KR_OK;
	if (w.failed)
		rc = svc->fail(t, "could not collect %zu file%s: %s%s; the files are still in the work "
		                  "volume, retry with `keruta-agent cleanup`",
		               w.failed, w.failed == 1 ? "" : "s",
		               w.failed_names ? w.failed_names : "?",
		               w.failed > MAX_FAILED_NAMES ? " and more" : "");
	free(w.failed_names);
	return rc;
}

KR_PLUGIN_DEFINE(.name = "collect", .version = "1.0",
                 .description = "upload the files under .keruta/doc as the task's artifacts",
                 .options = collect_options, .init = collect_init, .run = collect_run,
                 .fini = collect_fini);
