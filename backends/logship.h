/*
 * logship.h - log lines to keruta-api in batches, without ever blocking
 * the code that produces them and without losing a line to an outage.
 *
 * Lines go into a bounded in-memory queue that a shipper thread drains
 * in batches (by count, bytes and age).  When the queue is full or the
 * API does not answer, lines go to an append-only spool file instead,
 * replayed in order once the API answers again and deleted when drained.
 * Every line in memory is older than every line in the spool, so order
 * holds across both.  Undelivered lines are left in the spool at exit
 * and replayed by the next agent that uses the same work dir.
 */
#ifndef KR_LOGSHIP_H
#define KR_LOGSHIP_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "util.h"

typedef struct kr_logship kr_logship;

typedef struct kr_logship_opts {
	/* The shipper's own connection (its abort_flag is the shipper's). */
	kr_http_opts http;
	/* The logs endpoint of a task (malloc'd path, or NULL on error). */
	char *(*path_for)(void *ctx, const char *task_id);
	void *ctx;
	const char *spool_path;
	const char *task_id;   /* lines are shipped to this task; NULL: dropped */
	uint64_t batch_lines, batch_bytes, interval_ms;
	/* Cut as core/logline.h says (marks, head and tail, notice): */
	uint64_t max_line;     /* longer lines are split, marked              */
	uint64_t max_total;    /* beyond this, keep head and tail (0: no cap)  */
} kr_logship_opts;

kr_logship *kr_logship_new(const kr_logship_opts *o, kr_error *err);
/* Queue one line (no newline; embedded newlines start new lines). */
void kr_logship_line(kr_logship *ls, const char *stream, const char *line, size_t len);
/* Deliver everything queued and spooled within timeout_ms.  KR_OK when
 * nothing is left, else KR_FAILED (the rest stays in the spool). */
int kr_logship_flush(kr_logship *ls, uint64_t timeout_ms, kr_error *err);
/* Stop the thread; whatever is undelivered is written to the spool. */
void kr_logship_free(kr_logship *ls);

#endif
