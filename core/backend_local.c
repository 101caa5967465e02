/*
 * backend_local.c - the embedded backend: no server.
 *
 * The task comes from a YAML or JSON task file; documents and scripts
 * from paths (relative to the task file) or inline text in it; artifacts
 * are copied to a directory; status changes and log lines are appended to
 * a JSON-lines events file, and a summary is printed on stdout at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "area.h"
#include "backend.h"
#include "log.h"
#include "settings.h"
#include "task.h"

typedef struct local {
	kr_node *task;       /* owned: the task file's tree   */
	char *task_file;     /* owned                         */
	char *base_dir;      /* owned: task file's directory  */
	char *artifacts_dir; /* owned                         */
	char *events_path;   /* owned                         */
	char *work;          /* owned: the work dir                */
	int area_events, area_artifacts; /* the defaults, in the work dir's
	                        .keruta, reached through core/area.c only */
	FILE *events;        /* owned                         */
	pthread_mutex_t lock;
	uint64_t n_lines, n_artifacts;
	uint64_t started_ms;
	int run_marked;      /* the run-start record is written (lock) */
	char *events_why;    /* owned: why the events file cannot be opened (lock) */
	kr_task *last_task;  /* not owned: the agent's, for the summary */
	kr_buf statuses;     /* "IN_PROGRESS -> COMPLETED"    */
	kr_buf line;         /* the event being written (lock) */
} local;

/* ISO 8601 UTC with milliseconds.  The seconds part is formatted once per
 * second per thread: events are written for every log line. */
static void timestamp(char *out, size_t n)
{
	static __thread time_t cached_sec = -1;
	static __thread char cached[64];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != cached_sec) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		cached_sec = tv.tv_sec;
	}
	size_t len = strlen(cached);
	int ms = (int)(tv.tv_usec / 1000);
	if (len + 6 > n)
		len = n - 6;
	memcpy(out, cached, len);
	out[len] = '.';
	out[len + 1] = (char)('0' + ms / 100);
	out[len + 2] = (char)('0' + ms / 10 % 10);
	out[len + 3] = (char)('0' + ms % 10);
	out[len + 4] = 'Z';
	out[len + 5] = '\0';
}

static int open_events(local *l, kr_error *err)
{
	if (l->events)
		return 0;
	if (l->area_events) {
		/* .keruta/events.jsonl: a link or file a repository put there is
		 * never written through. */
		char *area = kr_asprintf("%s/" KR_AREA_DIR, l->work);
		int dir = kr_area_mkdirs(area) == 0 ? kr_area_open(l->work, NULL, 1) : -1;
		free(area);
		int fd = dir >= 0 ? kr_area_create_file(dir, "events.jsonl", O_CREAT | O_APPEND, 0644)
		                  : -1;
		int e = errno;
		if (dir >= 0)
			close(dir);
		l->events = fd >= 0 ? fdopen(fd, "a") : NULL;
		if (!l->events && fd >= 0)
			close(fd);
		errno = e;
	} else {
		char *dir = kr_strdup(l->events_path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			kr_mkdirs(dir, 0755);
		}
		free(dir);
		l->events = fopen(l->events_path, "a");
	}
	if (!l->events) {
		kr_error_set(err, KR_EXIT_USAGE, "cannot open the events file %s: %s", l->events_path,
		             strerror(errno));
		return -1;
	}
	return 0;
}

static void add_field(kr_buf *b, const char *key, const char *value, size_t len)
{
	kr_buf_adds(b, ",\"");
	kr_buf_adds(b, key);
	kr_buf_adds(b, "\":\"");
	kr_buf_add_json_str(b, value, len);
	kr_buf_addc(b, '"');
}

static void event(local *l, const char *type, const char *k1, const char *v1, const char *k2,
                  const char *v2, size_t v2len)
{
	char ts[64];
	timestamp(ts, sizeof(ts));
	pthread_mutex_lock(&l->lock);
	kr_buf *b = &l->line; /* reused: there is one event per log line */
	kr_buf_reset(b);
	kr_buf_adds(b, "{\"time\":\"");
	kr_buf_adds(b, ts);
	kr_buf_adds(b, "\",\"type\":\"");
	kr_buf_adds(b, type);
	kr_buf_addc(b, '"');
	if (k1 && v1)
		add_field(b, k1, v1, strlen(v1));
	if (k2 && v2)
		add_field(b, k2, v2, v2len);
	kr_buf_adds(b, "}\n");
	kr_error err = {0};
	int first_failure = 0;
	if (open_events(l, &err) == 0) {
		if (!l->run_marked) {
			/* the file appends across runs: say where this one begins */
			fprintf(l->events, "{\"time\":\"%s\",\"type\":\"run-start\",\"pid\":%ld}\n", ts,
			        (long)getpid());
			l->run_marked = 1;
		}
		fwrite(b->data, 1, b->len, l->events);
	} else if (!l->events_why) {
		l->events_why = kr_strdup(err.msg);
		first_failure = 1;
	}
	if (b->cap > 1u << 20) /* do not keep a huge line's buffer */
		kr_buf_free(b);
	pthread_mutex_unlock(&l->lock);
	/* once, and unlocked: the warning is itself an event */
	if (first_failure)
		kr_log(KR_LOG_WARN, NULL, "%s; this run's events are not recorded", err.msg);
}

static int local_fetch_task(kr_backend *b, kr_task *t, kr_error *err)
{
	local *l = b->impl;
	if (!l->task_file) {
		if (!kr_task_get(t, KR_TASK_ID))
			kr_task_set(t, KR_TASK_ID, "local");
		return KR_OK;
	}
	if (kr_taskfile_load(l->task_file, &l->task, err))
		return KR_FAILED;
	if (kr_task_fill_from_node(t, l->task, l->task_file, err)) {
		err->code = KR_EXIT_USAGE; /* the user's own file, not the API's data */
		return KR_FAILED;
	}
	return KR_OK;
}

static int local_fetch_repository(kr_backend *b, kr_task *t, kr_error *err)
{
	(void)b;
	(void)err;
	return kr_task_get(t, KR_TASK_REPOSITORY_URL) ? KR_OK : KR_NOT_FOUND;
}

/* Resolve a path from the task file relative to the task file's folder. */
static char *resolve(local *l, const char *path)
{
	if (path[0] == '/' || !l->base_dir)
		return kr_strdup(path);
	return kr_asprintf("%s/%s", l->base_dir, path);
}

/* Copy from into out (taken over; `to` names it in messages). */
static int copy_to_fd(const char *from, int out, const char *to, uint64_t max, kr_error *err)
{
	int in = kr_open_regular(from, max, KR_EXIT_TASK_FAILED, "cannot read", err);
	if (in < 0) {
		close(out);
		return KR_FAILED;
	}
	char buf[65536];
	uint64_t total = 0;
	ssize_t n;
	int rc = KR_OK;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		total += (uint64_t)n;
		if (max && total > max) {
			kr_error_set(err, KR_EXIT_TASK_FAILED, "%s is larger than the limit of %llu bytes",
			             from, (unsigned long long)max);
			rc = KR_FAILED;
			break;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0) {
				kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", to,
				             strerror(errno));
				rc = KR_FAILED;
				break;
			}
			off += w;
		}
		if (rc)
			break;
	}
	if (n < 0 && rc == KR_OK) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot read %s: %s", from, strerror(errno));
		rc = KR_FAILED;
	}
	close(in);
	if (close(out) != 0 && rc == KR_OK) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", to, strerror(errno));
		rc = KR_FAILED;
	}
	return rc;
}

static int copy_file(const char *from, const char *to, uint64_t max, kr_error *err)
{
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", to, strerror(errno));
		return KR_FAILED;
	}
	int rc = copy_to_fd(from, out, to, max, err);
	if (rc)
		unlink(to);
	return rc;
}

/* Copy into .keruta/artifacts/name, every directory reached by openat. */
static int copy_into_area(local *l, const char *from, const char *name, const char *to,
                          kr_error *err)
{
	const char *slash = strrchr(name, '/');
	char *sub = kr_asprintf("artifacts/%.*s", slash ? (int)(slash - name) : 0, name);
	const char *leaf = slash ? slash + 1 : name;
	int dir = kr_area_open(l->work, sub, 1);
	int out = dir >= 0 ? kr_area_create_file(dir, leaf, O_CREAT | O_TRUNC, 0644) : -1;
	free(sub);
	if (out < 0) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", to, strerror(errno));
		if (dir >= 0)
			close(dir);
		return KR_FAILED;
	}
	int rc = copy_to_fd(from, out, to, 0, err);
	if (rc)
		unlinkat(dir, leaf, 0);
	close(dir);
	return rc;
}

static int write_text(const char *to, const char *text, size_t len, uint64_t max, kr_error *err)
{
	if (max && len > max) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "inline content of %zu bytes is over the limit of %llu",
		             len, (unsigned long long)max);
		return KR_FAILED;
	}
	FILE *f = fopen(to, "wb");
	if (!f || fwrite(text, 1, len, f) != len) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", to, strerror(errno));
		if (f)
			fclose(f);
		return KR_FAILED;
	}
	if (fclose(f) != 0) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", to, strerror(errno));
		return KR_FAILED;
	}
	return KR_OK;
}

/* A content source: inline text, or {path: FILE}, or {content: TEXT}. */
static int materialise(local *l, const kr_node *src, const char *what, const char *dest,
                       uint64_t max, kr_error *err)
{
	if (src->type == KR_NODE_SCALAR)
		return write_text(dest, src->value, src->value_len, max, err);
	if (src->type == KR_NODE_MAP) {
		const kr_node *path = kr_node_get(src, "path");
		const kr_node *content = kr_node_get(src, "content");
		if (path && path->type == KR_NODE_SCALAR) {
			char *full = resolve(l, path->value);
			int rc = copy_file(full, dest, max, err);
			free(full);
			return rc;
		}
		if (content && content->type == KR_NODE_SCALAR)
			return write_text(dest, content->value, content->value_len, max, err);
	}
	kr_error_set(err, KR_EXIT_TASK_FAILED,
	             "%s: %s must be text, {path: FILE} or {content: TEXT} (line %d)", l->task_file,
	             what, src->line);
	return KR_FAILED;
}

static int local_fetch_script(kr_backend *b, kr_task *t, const char *which, const char *dest,
                              kr_error *err)
{
	local *l = b->impl;
	(void)t;
	if (!l->task)
		return KR_NOT_FOUND;
	char field[64];
	snprintf(field, sizeof(field), "%sScript", which);
	const kr_node *src = kr_node_get(l->task, field);
	if (!src && strcmp(which, "execute") == 0)
		src = kr_node_get(l->task, "script");
	if (!src || kr_node_is_null(src))
		return KR_NOT_FOUND;
	return materialise(l, src, field, dest, 0, err);
}

static int local_fetch_document(kr_backend *b, kr_task *t, const char *id, const char *dest,
                                uint64_t max, char **name_out, kr_error *err)
{
	local *l = b->impl;
	(void)t;
	const kr_node *docs = l->task ? kr_node_get(l->task, "documents") : NULL;
	for (size_t i = 0; docs && docs->type == KR_NODE_SEQ && i < docs->n; i++) {
		const kr_node *d = docs->items[i];
		const kr_node *did = kr_node_get(d, "id");
		if (!did || did->type != KR_NODE_SCALAR || strcmp(did->value, id) != 0)
			continue;
		const kr_node *name = kr_node_get(d, "name");
		if (name_out && name && name->type == KR_NODE_SCALAR)
			*name_out = kr_strdup(name->value);
		return materialise(l, d, "a document", dest, max, err);
	}
	kr_error_set(err, KR_EXIT_TASK_FAILED, "document '%s' is not in the task file's 'documents'",
	             id);
	return KR_NOT_FOUND;
}

static int safe_relative(const char *name)
{
	if (!*name || name[0] == '/')
		return 0;
	for (const char *p = name; *p;) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p)
			p++;
	}
	return 1;
}

static int local_upload_artifact(kr_backend *b, kr_task *t, const char *path, const char *name,
                                 kr_error *err)
{
	local *l = b->impl;
	(void)t;
	if (!safe_relative(name)) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "artifact name '%s' is not a relative path", name);
		return KR_FAILED;
	}
	char *dest = kr_asprintf("%s/%s", l->artifacts_dir, name);
	char *dir = kr_strdup(dest);
	*strrchr(dir, '/') = '\0';
	int rc = KR_FAILED;
	if (l->area_artifacts)
		rc = copy_into_area(l, path, name, dest, err);
	else if (kr_mkdirs(dir, 0755) != 0)
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot create %s: %s", dir, strerror(errno));
	else
		rc = copy_file(path, dest, 0, err);
	if (rc == KR_OK) {
		event(l, "artifact", "name", name, "path", dest, strlen(dest));
		l->n_artifacts++;
	}
	free(dir);
	free(dest);
	return rc;
}

static int local_report_status(kr_backend *b, kr_task *t, const char *status, const char *msg,
                               kr_error *err)
{
	local *l = b->impl;
	(void)t;
	(void)err;
	event(l, "status", "status", status, "message", msg, msg ? strlen(msg) : 0);
	pthread_mutex_lock(&l->lock);
	kr_buf_addf(&l->statuses, "%s%s", l->statuses.len ? " -> " : "", status);
	l->last_task = t;
	pthread_mutex_unlock(&l->lock);
	return KR_OK;
}

static void local_ship_log(kr_backend *b, const char *stream, const char *line, size_t len)
{
	local *l = b->impl;
	event(l, "log", "stream", stream, "line", line, len);
	__atomic_add_fetch(&l->n_lines, 1, __ATOMIC_RELAXED);
}

static int local_flush(kr_backend *b, uint64_t timeout_ms, kr_error *err)
{
	local *l = b->impl;
	(void)timeout_ms;
	pthread_mutex_lock(&l->lock);
	int rc = l->events && fflush(l->events) != 0 ? -1 : 0;
	pthread_mutex_unlock(&l->lock);
	if (rc)
		kr_error_set(err, KR_EXIT_INTERNAL, "cannot write %s: %s", l->events_path, strerror(errno));
	return rc ? KR_FAILED : KR_OK;
}

/* The last status of "IN_PROGRESS -> COMPLETED". */
static const char *strrstr_arrow(const char *chain)
{
	const char *last = chain ? chain : "(none)";
	for (const char *p = last; (p = strstr(p, " -> ")); p += 4)
		last = p + 4;
	return last;
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* The closing summary, only for a task whose stages ran (not for a task
 * file that could not be read), naming only files that were written.
 * Text on stdout; one JSON log line in JSON mode, where stdout is not
 * ours to format. */
static void summary(local *l)
{
	const char *times = l->last_task ? kr_task_get(l->last_task, KR_TASK_STAGE_TIMES) : NULL;
	if (!times)
		return;
	char total[32];
	kr_format_ms(kr_now_ms() - l->started_ms, total, sizeof(total));
	kr_buf b = {0};
	const char *arrow = strrstr_arrow(l->statuses.data);
	kr_buf_addf(&b, "local run: %s in %s (%s); %llu log %s; ", arrow, total, times,
	            (unsigned long long)l->n_lines, plural(l->n_lines, "line", "lines"));
	if (l->n_artifacts)
		kr_buf_addf(&b, "%llu %s copied to %s; ", (unsigned long long)l->n_artifacts,
		            plural(l->n_artifacts, "artifact", "artifacts"), l->artifacts_dir);
	else
		kr_buf_adds(&b, "no artifacts; ");
	if (l->events_why)
		kr_buf_addf(&b, "no events file (%s)", l->events_why);
	else
		kr_buf_addf(&b, "events in %s", l->events_path);
	if (kr_log_is_json()) {
		kr_log(KR_LOG_INFO, NULL, "%s", b.data);
	} else {
		printf("%s\n", b.data);
		fflush(stdout);
	}
	kr_buf_free(&b);
}

static void local_destroy(kr_backend *b)
{
	local *l = b->impl;
	if (l->events)
		fclose(l->events);
	summary(l);
	kr_node_free(l->task);
	free(l->task_file);
	free(l->base_dir);
	free(l->artifacts_dir);
	free(l->events_path);
	free(l->events_why);
	free(l->work);
	kr_buf_free(&l->statuses);
	kr_buf_free(&l->line);
	pthread_mutex_destroy(&l->lock);
	free(l);
	free(b);
}

static const kr_backend_ops local_ops = {
        .name = "local",
        .fetch_task = local_fetch_task,
        .fetch_repository = local_fetch_repository,
        .fetch_script = local_fetch_script,
        .fetch_document = local_fetch_document,
        .upload_artifact = local_upload_artifact,
        .report_status = local_report_status,
        .ship_log = local_ship_log,
        .flush = local_flush,
        .destroy = local_destroy,
};

kr_backend *kr_backend_local_create(const kr_settings *s, kr_error *err)
{
	local *l = kr_calloc(1, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	l->started_ms = kr_now_ms();
	const char *work = kr_settings_get(s, KR_S_WORK_DIR);
	const char *tf = kr_settings_get(s, KR_S_TASK_FILE);
	if (tf) {
		l->task_file = kr_strdup(tf);
		const char *slash = strrchr(tf, '/');
		l->base_dir = slash ? kr_strndup(tf, (size_t)(slash - tf)) : kr_strdup(".");
	}
	const char *ad = kr_settings_get(s, KR_S_ARTIFACTS_DIR);
	const char *ev = kr_settings_get(s, KR_S_EVENTS_FILE);
	l->artifacts_dir = ad ? kr_strdup(ad) : kr_asprintf("%s/.keruta/artifacts", work);
	l->events_path = ev ? kr_strdup(ev) : kr_asprintf("%s/.keruta/events.jsonl", work);
	/* Explicit paths are the operator's, used as given. */
	l->work = work ? kr_strdup(work) : NULL;
	l->area_artifacts = !ad && work;
	l->area_events = !ev && work;
	(void)err;
	kr_backend *b = kr_calloc(1, sizeof(*b));
	b->ops = &local_ops;
	b->impl = l;
	return b;
}
