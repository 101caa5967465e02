/*
 * logship.c - the log shipper: memory queue, spool file, shipper thread.
 *
 * Invariant: every line in the memory queue is older than every line in
 * the spool.  While the spool holds anything, new lines are appended to
 * it (never to memory), and the shipper empties memory before reading the
 * spool; when a memory batch fails and there is no spool yet, the whole
 * memory queue moves to a new spool.  So the lines reach the API in the
 * order they were produced, whichever path they took.
 *
 * Spool records are JSON lines {"task":..,"stream":..,"line":..}, so a
 * spool left by an earlier agent in the same work dir (a parent task's
 * PVC, an init container) is replayed to the task it belongs to.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "area.h"
#include "log.h"
#include "logline.h"
#include "logship.h"

typedef struct item {
	struct item *next;
	size_t task_len, stream_len, len;
	char data[]; /* task \0 stream \0 line \0 */
} item;

static const char *item_task(const item *it)
{
	return it->data;
}
static const char *item_stream(const item *it)
{
	return it->data + it->task_len + 1;
}
static const char *item_line(const item *it)
{
	return it->data + it->task_len + it->stream_len + 2;
}

typedef struct queue {
	item *head, *tail;
	size_t lines, bytes;
} queue;

struct kr_logship {
	kr_http *http;
	char *(*path_for)(void *ctx, const char *task_id);
	void *ctx;
	char *spool_path;
	char *task_id;
	uint64_t batch_lines, batch_bytes, interval_ms, max_line, max_total;
	size_t mem_max_lines, mem_max_bytes;
	uint64_t head_max, tail_max; /* see kr_logship_new */

	pthread_mutex_t lock;
	pthread_cond_t wake; /* to the shipper */
	pthread_cond_t done; /* to flush() */
	pthread_t thread;
	int started, stop, flushing;
	volatile int abort_io;

	queue mem;
	uint64_t oldest_ms;    /* when the head of mem was queued */
	int spooling;          /* the spool holds undelivered lines */
	FILE *spool_w;         /* append handle (buffered) */
	uint64_t write_off;    /* logical end of the spool */
	uint64_t read_off;     /* delivered up to here */
	int spool_failed;      /* warned that the spool is unusable */
	uint64_t lost_lines;   /* could be neither queued nor spooled */
	kr_buf rec;            /* one spool record, reused (lock held) */

	uint64_t total_bytes;  /* head budget used (kr_logline_cost) */
	queue tail;            /* the last lines past max_total */
	uint64_t omitted_lines, omitted_bytes;

	unsigned failures;     /* consecutive failed sends */
	uint64_t retry_at;     /* no send before this (backoff) */
	int64_t retry_after_ms;
	unsigned seed;
	uint64_t sent_lines, sent_batches, dropped_lines;
};

/*
 * Anything the shipper does can log, and the core's log sink feeds the
 * log back into kr_logship_line: from the shipper thread, or from any
 * thread that holds the lock (a spool error while queueing), that would
 * take the lock again and hang the agent for good.  Such lines are not
 * shipped (they still reach stderr); a thread-local mark says so without
 * touching the lock.
 */
static __thread int in_shipper; /* nonzero: this thread holds the lock or is the shipper */

static void ls_lock(kr_logship *ls)
{
	pthread_mutex_lock(&ls->lock);
	in_shipper++;
}

static void ls_unlock(kr_logship *ls)
{
	in_shipper--;
	pthread_mutex_unlock(&ls->lock);
}

/* ---------------------------------------------------------------- queue */

static item *item_new(const char *task, const char *stream, const char *line, size_t len)
{
	size_t tl = strlen(task), sl = strlen(stream);
	item *it = kr_malloc(sizeof(*it) + tl + sl + len + 3);
	it->next = NULL;
	it->task_len = tl;
	it->stream_len = sl;
	it->len = len;
	memcpy(it->data, task, tl + 1);
	memcpy(it->data + tl + 1, stream, sl + 1);
	memcpy(it->data + tl + sl + 2, line, len);
	it->data[tl + sl + 2 + len] = '\0';
	return it;
}

static void q_push(queue *q, item *it)
{
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->lines++;
	q->bytes += it->len;
}

static item *q_pop(queue *q)
{
	item *it = q->head;
	if (!it)
		return NULL;
	q->head = it->next;
	if (!q->head)
		q->tail = NULL;
	q->lines--;
	q->bytes -= it->len;
	it->next = NULL;
	return it;
}

static void q_clear(queue *q)
{
	item *it;
	while ((it = q_pop(q)) != NULL)
		free(it);
}

/* ---------------------------------------------------------------- spool */

static void record(kr_buf *b, const char *task, const char *stream, const char *line, size_t len)
{
	kr_buf_adds(b, "{\"task\":\"");
	kr_buf_add_json_str(b, task, strlen(task));
	kr_buf_adds(b, "\",\"stream\":\"");
	kr_buf_add_json_str(b, stream, strlen(stream));
	kr_buf_adds(b, "\",\"line\":\"");
	kr_buf_add_json_str(b, line, len);
	kr_buf_adds(b, "\"}\n");
}

/* With the lock held. */
static int spool_open(kr_logship *ls)
{
	if (ls->spool_w)
		return 0;
	char *dir = kr_strdup(ls->spool_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		kr_area_mkdirs(dir); /* never through a link in the work dir's .keruta */
	}
	free(dir);
	int fd = open(ls->spool_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	ls->spool_w = fd >= 0 ? fdopen(fd, "a") : NULL;
	if (!ls->spool_w) {
		if (fd >= 0)
			close(fd);
		if (!ls->spool_failed)
			kr_log(KR_LOG_ERROR, NULL,
			       "cannot open the log spool %s: %s; log lines the API cannot take now "
			       "will be lost (make the work dir writable)",
			       ls->spool_path, strerror(errno));
		ls->spool_failed = 1;
		return -1;
	}
	struct stat st;
	if (fstat(fileno(ls->spool_w), &st) == 0)
		ls->write_off = (uint64_t)st.st_size;
	return 0;
}

static int spool_add(kr_logship *ls, const char *task, const char *stream, const char *line,
                     size_t len)
{
	if (spool_open(ls) < 0) {
		ls->lost_lines++;
		return -1;
	}
	kr_buf *b = &ls->rec;
	kr_buf_reset(b);
	record(b, task, stream, line, len);
	size_t n = fwrite(b->data, 1, b->len, ls->spool_w);
	if (n != b->len) {
		if (!ls->spool_failed)
			kr_log(KR_LOG_ERROR, NULL, "cannot write the log spool %s: %s; log lines are lost",
			       ls->spool_path, strerror(errno));
		ls->spool_failed = 1;
		ls->lost_lines++;
	}
	ls->write_off += n;
	ls->spooling = 1;
	return n == b->len ? 0 : -1;
}

/* Move the memory queue to the end of the spool (lock held). */
static void spool_memory(kr_logship *ls)
{
	if (spool_open(ls) < 0)
		return; /* keep them in memory: better late than lost */
	item *it;
	while ((it = q_pop(&ls->mem)) != NULL) {
		spool_add(ls, item_task(it), item_stream(it), item_line(it), it->len);
		free(it);
	}
}

static void spool_remove(kr_logship *ls)
{
	if (ls->spool_w)
		fclose(ls->spool_w);
	ls->spool_w = NULL;
	unlink(ls->spool_path);
	ls->spooling = 0;
	ls->read_off = ls->write_off = 0;
}

/* ---------------------------------------------------------------- batches */

typedef struct batch {
	char *task, *stream;
	kr_buf message;
	size_t lines;
	uint64_t end_off; /* spool batches: where the next one starts */
} batch;

static void batch_free(batch *b)
{
	free(b->task);
	free(b->stream);
	kr_buf_free(&b->message);
	memset(b, 0, sizeof(*b));
}

/* Does one more line of len bytes for (task, stream) fit? */
static int batch_takes(const kr_logship *ls, const batch *b, const char *task,
                       const char *stream, size_t len)
{
	if (b->lines == 0)
		return 1;
	if (strcmp(b->task, task) != 0 || strcmp(b->stream, stream) != 0)
		return 0;
	return b->lines < ls->batch_lines && b->message.len + len + 1 <= ls->batch_bytes;
}

static void batch_add(batch *b, const char *task, const char *stream, const char *line,
                      size_t len)
{
	if (b->lines == 0) {
		b->task = kr_strdup(task);
		b->stream = kr_strdup(stream);
	}
	/* every line ends with "\n": the server drops one trailing newline, so
	 * a batch ending in an empty line keeps it */
	kr_buf_add_json_str(&b->message, line, len);
	kr_buf_adds(&b->message, "\\n");
	b->lines++;
}

/* A line already escaped as a JSON string body (from the spool). */
static void batch_add_escaped(batch *b, const char *task, const char *stream, const char *esc,
                              size_t len)
{
	if (b->lines == 0) {
		b->task = kr_strdup(task);
		b->stream = kr_strdup(stream);
	}
	kr_buf_add(&b->message, esc, len);
	kr_buf_adds(&b->message, "\\n");
	b->lines++;
}

/* The first lines of memory with one task and stream (lock held). */
static void batch_from_memory(kr_logship *ls, batch *b)
{
	for (item *it = ls->mem.head; it; it = it->next) {
		if (!batch_takes(ls, b, item_task(it), item_stream(it), it->len))
			break;
		batch_add(b, item_task(it), item_stream(it), item_line(it), it->len);
	}
}

/* Is p[0..n) a valid JSON string body (escapes included)? */
static int json_body_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == '"')
			return 0;
		if (c != '\\')
			continue;
		if (++i == n)
			return 0;
		if (p[i] == 'u') {
			if (n - i < 5)
				return 0;
			for (int k = 1; k <= 4; k++)
				if (!isxdigit((unsigned char)p[i + k]))
					return 0;
			i += 4;
		} else if (!p[i] || !strchr("\"\\/bfnrt", p[i])) {
			return 0;
		}
	}
	return 1;
}

/* A spool record exactly as record() writes it, read without a JSON
 * parser (this runs for every spooled line): task and stream without
 * escapes, the line kept escaped, since it goes into a JSON string again.
 * 0 for any other shape; json-c then has the last word. */
static int spool_record_fast(char *rec, size_t n, const char **task, const char **stream,
                             const char **line, size_t *len)
{
	static const char k_task[] = "{\"task\":\"", k_stream[] = "\",\"stream\":\"",
	                  k_line[] = "\",\"line\":\"";
	char *end = rec + n;
	if (n < sizeof(k_task) + 2 || memcmp(rec, k_task, sizeof(k_task) - 1) != 0 ||
	    memcmp(end - 2, "\"}", 2) != 0)
		return 0;
	char *t = rec + sizeof(k_task) - 1;
	char *tq = memchr(t, '"', (size_t)(end - t));
	if (!tq || memchr(t, '\\', (size_t)(tq - t)) ||
	    (size_t)(end - tq) < sizeof(k_stream) - 1 || memcmp(tq, k_stream, sizeof(k_stream) - 1))
		return 0;
	char *s = tq + sizeof(k_stream) - 1;
	char *sq = memchr(s, '"', (size_t)(end - s));
	if (!sq || memchr(s, '\\', (size_t)(sq - s)) ||
	    (size_t)(end - sq) < sizeof(k_line) - 1 || memcmp(sq, k_line, sizeof(k_line) - 1))
		return 0;
	char *l = sq + sizeof(k_line) - 1;
	if (l > end - 2 || !json_body_ok(l, (size_t)(end - 2 - l)))
		return 0;
	*tq = *sq = '\0';
	*task = t;
	*stream = s;
	*line = l;
	*len = (size_t)(end - 2 - l);
	return 1;
}

/* Lines of the spool from read_off, before end (no lock: that part of
 * the file no longer changes).  Unreadable records are skipped. */
static int batch_from_spool(kr_logship *ls, batch *b, uint64_t from, uint64_t end)
{
	FILE *f = fopen(ls->spool_path, "re");
	if (!f || fseeko(f, (off_t)from, SEEK_SET) != 0) {
		kr_log(KR_LOG_ERROR, NULL, "cannot read the log spool %s: %s", ls->spool_path,
		       strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	uint64_t off = from;
	json_tokener *tok = json_tokener_new();
	while (off < end) {
		ssize_t n = getline(&line, &cap, f);
		if (n <= 0)
			break;
		if (off + (uint64_t)n > end || line[n - 1] != '\n')
			break; /* not completely written yet */
		const char *ft, *fs, *fl;
		size_t fll;
		if (spool_record_fast(line, (size_t)n - 1, &ft, &fs, &fl, &fll)) {
			if (!batch_takes(ls, b, ft, fs, fll))
				break;
			batch_add_escaped(b, ft, fs, fl, fll);
			off += (uint64_t)n;
			continue;
		}
		json_tokener_reset(tok);
		json_object *o = json_tokener_parse_ex(tok, line, (int)n - 1);
		json_object *jt = NULL, *js = NULL, *jl = NULL;
		if (o && json_object_is_type(o, json_type_object) &&
		    json_object_object_get_ex(o, "task", &jt) &&
		    json_object_object_get_ex(o, "stream", &js) &&
		    json_object_object_get_ex(o, "line", &jl) &&
		    json_object_is_type(jt, json_type_string) &&
		    json_object_is_type(js, json_type_string) &&
		    json_object_is_type(jl, json_type_string)) {
			const char *t = json_object_get_string(jt), *s = json_object_get_string(js);
			const char *l = json_object_get_string(jl);
			size_t ll = (size_t)json_object_get_string_len(jl);
			if (!batch_takes(ls, b, t, s, ll)) {
				json_object_put(o);
				break;
			}
			batch_add(b, t, s, l, ll);
		} else {
			kr_log(KR_LOG_WARN, NULL, "log spool %s: skipping a damaged record at byte %llu",
			       ls->spool_path, (unsigned long long)off);
		}
		if (o)
			json_object_put(o);
		off += (uint64_t)n;
	}
	json_tokener_free(tok);
	free(line);
	fclose(f);
	b->end_off = off;
	return 0;
}

enum sent { SENT_OK, SENT_REFUSED, SENT_FAILED };

static enum sent send_batch(kr_logship *ls, const batch *b)
{
	char *path = ls->path_for(ls->ctx, b->task);
	if (!path)
		return SENT_REFUSED;
	kr_buf body = {0};
	kr_buf_adds(&body, "{\"message\":\"");
	kr_buf_add(&body, b->message.data, b->message.len);
	kr_buf_adds(&body, "\",\"stream\":\"");
	kr_buf_add_json_str(&body, b->stream, strlen(b->stream));
	kr_buf_adds(&body, "\"}");
	kr_http_req rq = {.method = "POST", .path = path, .json = body.data,
	                  .max_bytes = 4u << 20, .what = "log lines"};
	kr_http_resp rs = {0};
	kr_error err = {0};
	int rc = kr_http_request(ls->http, &rq, &rs, &err);
	enum sent out = SENT_OK;
	ls->retry_after_ms = rs.retry_after_ms;
	if (rc != KR_OK) {
		/* An outage is what the HTTP layer retries (no answer, 408, 429,
		 * 5xx), not what exits 3: a refused token exits 3 too, but
		 * sending the same batch again never gets it taken. */
		long st = rs.status;
		if (st == 0 || st == 408 || st == 429 || st >= 500) {
			out = SENT_FAILED;
			if (ls->failures == 0)
				kr_log(KR_LOG_WARN, NULL,
				       "log shipping paused: %s; lines are kept in %s until keruta-api "
				       "answers again",
				       err.msg, ls->spool_path);
		} else {
			out = SENT_REFUSED;
			kr_log(KR_LOG_ERROR, NULL, "keruta-api refused %zu log line%s, dropped: %s",
			       b->lines, b->lines == 1 ? "" : "s", err.msg);
		}
	}
	kr_http_resp_free(&rs);
	kr_buf_free(&body);
	free(path);
	return out;
}

/* ---------------------------------------------------------------- thread */

static void after_send(kr_logship *ls, enum sent s, size_t lines)
{
	if (s == SENT_FAILED) {
		ls->failures++;
		uint64_t base = 500;
		for (unsigned i = 1; i < ls->failures && base < 15000; i++)
			base *= 2;
		if (base > 15000)
			base = 15000;
		uint64_t delay = base / 2 + (uint64_t)rand_r(&ls->seed) % (base / 2 + 1);
		if (ls->retry_after_ms > 0 && (uint64_t)ls->retry_after_ms > delay)
			delay = (uint64_t)ls->retry_after_ms > 300000 ? 300000 : (uint64_t)ls->retry_after_ms;
		ls->retry_at = kr_now_ms() + delay;
		return;
	}
	if (ls->failures)
		kr_log(KR_LOG_INFO, NULL, "log shipping resumed after %u failed attempt%s",
		       ls->failures, ls->failures == 1 ? "" : "s");
	ls->failures = 0;
	ls->retry_at = 0;
	if (s == SENT_OK) {
		ls->sent_lines += lines;
		ls->sent_batches++;
	} else {
		ls->dropped_lines += lines;
	}
}

static int memory_ready(const kr_logship *ls, uint64_t now)
{
	return ls->mem.lines && (ls->flushing || ls->spooling || ls->stop ||
	                         ls->mem.lines >= ls->batch_lines ||
	                         ls->mem.bytes >= ls->batch_bytes ||
	                         now >= ls->oldest_ms + ls->interval_ms);
}

static void timed_wait(kr_logship *ls, uint64_t until_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = kr_now_ms();
	uint64_t d = until_ms > now ? until_ms - now : 0;
	ts.tv_sec += (time_t)(d / 1000);
	ts.tv_nsec += (long)(d % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&ls->wake, &ls->lock, &ts);
}

static void *shipper(void *arg)
{
	kr_logship *ls = arg;
	in_shipper = 1; /* for the thread's whole life: its HTTP errors log too */
	ls_lock(ls);
	while (!ls->stop) {
		uint64_t now = kr_now_ms();
		if (ls->retry_at > now) {
			uint64_t until = ls->retry_at;
			/* the end of the task shortens our own backoff, never
			 * the wait keruta-api asked for with Retry-After */
			if (ls->flushing && until > now + 500 && ls->retry_after_ms <= 0)
				until = now + 500;
			timed_wait(ls, until);
			if (kr_now_ms() >= until)
				ls->retry_at = 0;
			continue;
		}
		if (ls->mem.lines) {
			if (!memory_ready(ls, now)) {
				timed_wait(ls, ls->oldest_ms + ls->interval_ms);
				continue;
			}
			batch b = {0};
			batch_from_memory(ls, &b);
			ls_unlock(ls);
			enum sent s = send_batch(ls, &b);
			ls_lock(ls);
			if (s == SENT_FAILED) {
				if (!ls->spooling)
					spool_memory(ls);
			} else {
				for (size_t i = 0; i < b.lines; i++)
					free(q_pop(&ls->mem));
				ls->oldest_ms = kr_now_ms();
			}
			after_send(ls, s, b.lines);
			batch_free(&b);
			continue;
		}
		if (ls->spooling) {
			if (ls->spool_w)
				fflush(ls->spool_w);
			if (ls->read_off >= ls->write_off) {
				spool_remove(ls);
				pthread_cond_broadcast(&ls->done);
				continue;
			}
			uint64_t from = ls->read_off, end = ls->write_off;
			ls_unlock(ls);
			batch b = {0};
			enum sent s = SENT_FAILED;
			if (batch_from_spool(ls, &b, from, end) == 0)
				s = b.lines ? send_batch(ls, &b) : SENT_OK;
			ls_lock(ls);
			if (s != SENT_FAILED)
				ls->read_off = b.end_off > from ? b.end_off : end;
			after_send(ls, s, b.lines);
			batch_free(&b);
			continue;
		}
		pthread_cond_broadcast(&ls->done);
		pthread_cond_wait(&ls->wake, &ls->lock);
	}
	ls_unlock(ls);
	return NULL;
}

/* Lock held. */
static void start(kr_logship *ls)
{
	if (ls->started)
		return;
	if (pthread_create(&ls->thread, NULL, shipper, ls) != 0) {
		kr_log(KR_LOG_ERROR, NULL, "cannot start the log shipper thread; log lines go to %s",
		       ls->spool_path);
		return;
	}
	ls->started = 1;
}

/* ---------------------------------------------------------------- producer */

/* One line (no newline, at most max_line bytes) into memory or the spool. */
static void enqueue(kr_logship *ls, const char *stream, const char *line, size_t len)
{
	uint64_t cost = kr_logline_cost(len);
	if (ls->max_total && ls->total_bytes + cost > ls->head_max) {
		/* past the budget: keep only a tail, reported at flush */
		q_push(&ls->tail, item_new(ls->task_id, stream, line, len));
		while (ls->tail.bytes + (uint64_t)KR_LOGLINE_COST * ls->tail.lines > ls->tail_max &&
		       ls->tail.lines > 1) {
			item *old = q_pop(&ls->tail);
			ls->omitted_lines++;
			ls->omitted_bytes += old->len;
			free(old);
		}
		return;
	}
	ls->total_bytes += cost;
	if (ls->spooling || ls->mem.lines >= ls->mem_max_lines || ls->mem.bytes >= ls->mem_max_bytes) {
		int was = ls->spooling;
		spool_add(ls, ls->task_id, stream, line, len);
		if (!was && ls->spooling)
			pthread_cond_signal(&ls->wake);
		return;
	}
	if (ls->mem.lines == 0) {
		ls->oldest_ms = kr_now_ms();
		pthread_cond_signal(&ls->wake);
	}
	q_push(&ls->mem, item_new(ls->task_id, stream, line, len));
	if (ls->mem.lines == ls->batch_lines || (ls->mem.bytes >= ls->batch_bytes &&
	                                          ls->mem.bytes - len < ls->batch_bytes))
		pthread_cond_signal(&ls->wake);
}

/* Where the parts of a long line go (lock held). */
typedef struct part_to {
	kr_logship *ls;
	const char *stream;
} part_to;

static void enqueue_part(void *ctx, const char *part, size_t len)
{
	part_to *to = ctx;
	enqueue(to->ls, to->stream, part, len);
}

void kr_logship_line(kr_logship *ls, const char *stream, const char *line, size_t len)
{
	if (!ls->task_id)
		return;
	/* the shipper's own warnings would also feed the queue they are
	 * about, forever when the API refuses */
	if (in_shipper)
		return;
	ls_lock(ls);
	start(ls);
	for (;;) {
		const char *nl = memchr(line, '\n', len);
		size_t n = nl ? (size_t)(nl - line) : len;
		if (ls->max_line && n > ls->max_line) {
			kr_logline_cutter c = {.max = (size_t)ls->max_line};
			part_to to = {ls, stream};
			kr_logline_cut(&c, line, n, 1, enqueue_part, &to);
			kr_logline_cutter_free(&c);
		} else {
			enqueue(ls, stream, line, n);
		}
		if (!nl)
			break;
		line += n + 1;
		len -= n + 1;
	}
	ls_unlock(ls);
}

/* The tail kept past max_total, after a line saying what was left out. */
static void release_tail(kr_logship *ls)
{
	if (!ls->tail.lines)
		return;
	uint64_t saved = ls->max_total;
	ls->max_total = 0;
	if (ls->omitted_lines) {
		char msg[256];
		size_t n = kr_logline_notice(msg, sizeof(msg), ls->omitted_lines, ls->omitted_bytes,
		                             ls->total_bytes, ls->tail.bytes);
		enqueue(ls, "agent", msg, n);
		ls->omitted_lines = ls->omitted_bytes = 0;
	}
	item *it;
	while ((it = q_pop(&ls->tail)) != NULL) {
		enqueue(ls, item_stream(it), item_line(it), it->len);
		free(it);
	}
	ls->max_total = saved;
}

/* ---------------------------------------------------------------- lifecycle */

kr_logship *kr_logship_new(const kr_logship_opts *o, kr_error *err)
{
	kr_logship *ls = kr_calloc(1, sizeof(*ls));
	kr_http_opts ho = o->http;
	ho.abort_flag = &ls->abort_io;
	ho.debug = 0; /* its own debug lines would feed the log it ships */
	ls->http = kr_http_new(&ho, err);
	if (!ls->http) {
		free(ls);
		return NULL;
	}
	ls->path_for = o->path_for;
	ls->ctx = o->ctx;
	ls->spool_path = kr_strdup(o->spool_path);
	ls->task_id = o->task_id ? kr_strdup(o->task_id) : NULL;
	ls->batch_lines = o->batch_lines ? o->batch_lines : 500;
	ls->batch_bytes = o->batch_bytes > 1024 ? o->batch_bytes : 1024;
	ls->interval_ms = o->interval_ms ? o->interval_ms : 1000;
	ls->max_line = o->max_line;
	if (ls->max_line && ls->max_line < KR_LOGLINE_MIN)
		ls->max_line = KR_LOGLINE_MIN;
	if (ls->max_line && ls->max_line > ls->batch_bytes)
		ls->batch_bytes = ls->max_line + 1;
	ls->max_total = o->max_total;
	ls->mem_max_lines = (size_t)ls->batch_lines * 4;
	ls->mem_max_bytes = (size_t)ls->batch_bytes * 4;
	/* The whole task's log, where the runner cut each child's output to
	 * log_max_total already: all of it is head here, so one child's
	 * output plus the agent's own lines is not cut a second time; the
	 * tail (sized as the runner's) is for more than that (several
	 * children, plugins' lines). */
	uint64_t child_head;
	kr_logline_budget(ls->max_total, ls->max_line, &child_head, &ls->tail_max);
	ls->head_max = ls->max_total;
	ls->retry_after_ms = -1;
	ls->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	pthread_mutex_init(&ls->lock, NULL);
	pthread_cond_init(&ls->wake, NULL);
	pthread_cond_init(&ls->done, NULL);

	/* A spool left by an earlier run goes out first. */
	struct stat st;
	if (stat(ls->spool_path, &st) == 0 && st.st_size > 0) {
		ls_lock(ls);
		if (spool_open(ls) == 0) {
			int fd = open(ls->spool_path, O_RDONLY | O_CLOEXEC);
			char last = '\n';
			if (fd >= 0 && pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') {
				fputc('\n', ls->spool_w); /* a record torn by a crash stays apart */
				ls->write_off++;
			}
			if (fd >= 0)
				close(fd);
			ls->spooling = 1;
			kr_log(KR_LOG_INFO, NULL, "replaying %llu bytes of log lines left in %s",
			       (unsigned long long)ls->write_off, ls->spool_path);
			start(ls);
		}
		ls_unlock(ls);
	}
	return ls;
}

static int pending(const kr_logship *ls)
{
	return ls->mem.lines || ls->spooling || ls->tail.lines;
}

int kr_logship_flush(kr_logship *ls, uint64_t timeout_ms, kr_error *err)
{
	uint64_t deadline = kr_now_ms() + timeout_ms;
	ls_lock(ls);
	release_tail(ls);
	if (pending(ls))
		start(ls);
	ls->flushing++;
	pthread_cond_signal(&ls->wake);
	while (pending(ls) && ls->started && kr_now_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t d = deadline - kr_now_ms();
		if (d > 200)
			d = 200;
		ts.tv_nsec += (long)d * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&ls->done, &ls->lock, &ts);
	}
	ls->flushing--;
	int rc = KR_OK;
	if (pending(ls)) {
		if (ls->spool_w)
			fflush(ls->spool_w);
		uint64_t left = ls->spooling ? ls->write_off - ls->read_off : 0;
		kr_error_set(err, KR_EXIT_API,
		             "%zu log line%s in memory and %llu bytes in the spool %s not delivered "
		             "within %llu ms; they stay in %s for the next run",
		             ls->mem.lines, ls->mem.lines == 1 ? "" : "s", (unsigned long long)left,
		             ls->spooling ? "were" : "was", (unsigned long long)timeout_ms,
		             ls->spool_path);
		rc = KR_FAILED;
	} else if (ls->lost_lines) {
		kr_error_set(err, KR_EXIT_INTERNAL,
		             "%llu log lines were lost: the spool %s could not be written",
		             (unsigned long long)ls->lost_lines, ls->spool_path);
		rc = KR_FAILED;
	}
	ls_unlock(ls);
	return rc;
}

/* Rewrite the spool as: memory lines, then the undelivered part of the
 * old spool, so the next run replays exactly what is left, in order. */
static void persist(kr_logship *ls)
{
	release_tail(ls);
	if (ls->spool_w)
		fflush(ls->spool_w);
	if (!ls->mem.lines && ls->read_off == 0)
		return; /* the spool (if any) is already exactly what is left */
	if (!ls->mem.lines && ls->read_off >= ls->write_off) {
		spool_remove(ls);
		return;
	}
	char *tmp = kr_asprintf("%s.tmp", ls->spool_path);
	FILE *out = fopen(tmp, "we");
	if (!out) {
		kr_log(KR_LOG_ERROR, NULL, "cannot write %s: %s; %zu log lines are lost", tmp,
		       strerror(errno), ls->mem.lines);
		free(tmp);
		return;
	}
	kr_buf b = {0};
	for (item *it = ls->mem.head; it; it = it->next) {
		kr_buf_reset(&b);
		record(&b, item_task(it), item_stream(it), item_line(it), it->len);
		fwrite(b.data, 1, b.len, out);
	}
	kr_buf_free(&b);
	if (ls->spooling) {
		FILE *in = fopen(ls->spool_path, "re");
		if (in && fseeko(in, (off_t)ls->read_off, SEEK_SET) == 0) {
			char buf[65536];
			size_t n;
			while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
				fwrite(buf, 1, n, out);
		}
		if (in)
			fclose(in);
	}
	if (fclose(out) != 0 || rename(tmp, ls->spool_path) != 0) {
		kr_log(KR_LOG_ERROR, NULL, "cannot write %s: %s; some log lines are lost", tmp,
		       strerror(errno));
		unlink(tmp);
	}
	free(tmp);
}

void kr_logship_free(kr_logship *ls)
{
	if (!ls)
		return;
	ls_lock(ls);
	int healthy = ls->failures == 0;
	int left = pending(ls);
	ls_unlock(ls);
	if (left && healthy) {
		kr_error e = {0};
		kr_logship_flush(ls, 2000, &e);
	}
	ls_lock(ls);
	ls->stop = 1;
	ls->abort_io = 1;
	pthread_cond_broadcast(&ls->wake);
	int started = ls->started;
	ls_unlock(ls);
	if (started)
		pthread_join(ls->thread, NULL);
	persist(ls);
	if (ls->spool_w)
		fclose(ls->spool_w);
	kr_log(KR_LOG_DEBUG, NULL, "log shipper: %llu lines in %llu requests, %llu refused",
	       (unsigned long long)ls->sent_lines, (unsigned long long)ls->sent_batches,
	       (unsigned long long)ls->dropped_lines);
	q_clear(&ls->mem);
	q_clear(&ls->tail);
	kr_buf_free(&ls->rec);
	kr_http_free(ls->http);
	pthread_cond_destroy(&ls->wake);
	pthread_cond_destroy(&ls->done);
	pthread_mutex_destroy(&ls->lock);
	free(ls->spool_path);
	free(ls->task_id);
	free(ls);
}
