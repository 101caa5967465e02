/*
 * logline.h - how the shipped log is cut (logline.c): the one owner of the
 * log_max_line and log_max_total policies.  The process runner
 * (proc_output.c) and the log shipper (backends/logship.c) both apply
 * them through these functions, so a line is cut, marked and budgeted the
 * same way whichever path it takes.
 */
#ifndef KR_LOGLINE_H
#define KR_LOGLINE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The marks on the parts of a line longer than log_max_line: each part but
 * the last ends with MORE, each but the first starts with CONT.  Parts are
 * at most log_max_line bytes, marks included. */
#define KR_LOGLINE_MORE " [line continues]"
#define KR_LOGLINE_CONT "[continued] "
/* The smallest log_max_line honoured: room for both marks and some text. */
#define KR_LOGLINE_MIN 64

/* What one shipped line costs against log_max_total beyond its text: the
 * JSON record around it in events.jsonl, the spool and the /logs body
 * (time, type, stream, task, quotes).  So a flood of empty lines is
 * bounded like a flood of long ones. */
#define KR_LOGLINE_COST 80

/* Cutting one line into parts.  Zeroed to start; kr_logline_cutter_free
 * releases it. */
typedef struct kr_logline_cutter {
	size_t max;  /* log_max_line; below KR_LOGLINE_MIN counts as that */
	int split;   /* parts of the current line were emitted already */
	kr_buf part; /* a marked part being built */
} kr_logline_cutter;

typedef void kr_logline_emit(void *ctx, const char *part, size_t len);

/*
 * Emit data[0..len), the next bytes of the current line (no newline), as
 * parts.  When `ends` (the line ends here) all of it goes out and the
 * cutter is ready for the next line; else only the parts that cannot be
 * the line's last, and the rest is left for the caller to pass again with
 * more.  Returns how many bytes went out.  A cut never lands inside a
 * UTF-8 sequence when the sequence's start is near.  A line that needs no
 * cutting is emitted as it is, without a copy.
 */
size_t kr_logline_cut(kr_logline_cutter *c, const char *data, size_t len, int ends,
                      kr_logline_emit *emit, void *ctx);
/* Forget the current line's parts (the rest of it was dropped). */
void kr_logline_forget(kr_logline_cutter *c);
void kr_logline_cutter_free(kr_logline_cutter *c);

/* What a line of len bytes costs against log_max_total. */
static inline uint64_t kr_logline_cost(size_t len)
{
	return (uint64_t)len + KR_LOGLINE_COST;
}

/*
 * log_max_total split into the head shipped as it comes and the tail kept
 * to the end (where the error usually is): a quarter for the tail, at most
 * 8 MiB, and at least room for the longest line (max_line).
 */
void kr_logline_budget(uint64_t max_total, uint64_t max_line, uint64_t *head, uint64_t *tail);

/* The line that stands where output was cut between head and tail, into
 * buf (NUL-terminated, cut to n); returns its length. */
size_t kr_logline_notice(char *buf, size_t n, uint64_t lines, uint64_t bytes, uint64_t head,
                         uint64_t tail);

#endif
