/*
 * util.h - small helpers shared by the core: allocation that cannot fail
 * silently, a growable string buffer, errors with a code and a message,
 * and the parsers for durations and sizes used by pipeline files and flags.
 */
#ifndef KR_UTIL_H
#define KR_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes of keruta-agent; documented in keruta-agent(1) and README. */
enum kr_exit {
	KR_EXIT_OK = 0,          /* the task (or command) succeeded              */
	KR_EXIT_TASK_FAILED = 1, /* a stage failed; the task is FAILED           */
	KR_EXIT_USAGE = 2,       /* bad command line, pipeline file or plugin    */
	KR_EXIT_API = 3,         /* keruta-api could not be reached or refused us */
	KR_EXIT_INTERNAL = 4     /* a bug or an exhausted resource in the agent   */
};

/*
 * An error: the exit code it maps to and one line that says what failed,
 * on what, and what to do.  Functions that can fail take a kr_error * and
 * fill it; the first error set wins so the root cause is kept.
 */
typedef struct kr_error {
	int code;       /* enum kr_exit; 0 while no error is set */
	char msg[1024];
} kr_error;

void kr_error_set(kr_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void kr_error_vset(kr_error *err, int code, const char *fmt, va_list ap);
void kr_error_clear(kr_error *err);
/* Add what was being done to the error a callee set: "CONTEXT: its
 * message".  A non-zero code replaces the callee's (a parse error of a
 * keruta-api answer is the API's fault, not a usage error).  Returns -1,
 * for `return kr_error_wrap(...)`. */
int kr_error_wrap(kr_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kr_error_vwrap(kr_error *err, int code, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

/* Allocation: abort with a message on exhaustion (nothing sane to do). */
void *kr_malloc(size_t n);
void *kr_calloc(size_t n, size_t size);
void *kr_realloc(void *p, size_t n);
char *kr_strdup(const char *s);
char *kr_strndup(const char *s, size_t n);
char *kr_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kr_vasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* A growable, always NUL-terminated byte buffer. */
typedef struct kr_buf {
	char *data;
	size_t len;
	size_t cap;
} kr_buf;

void kr_buf_add(kr_buf *b, const void *data, size_t len);
void kr_buf_adds(kr_buf *b, const char *s);
void kr_buf_addf(kr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kr_buf_vaddf(kr_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void kr_buf_addc(kr_buf *b, char c);
/* Append s as the inside of a JSON string (no quotes); bytes that are not
 * valid UTF-8 become U+FFFD so the output is always valid JSON. */
void kr_buf_add_json_str(kr_buf *b, const char *s, size_t len);
void kr_buf_reset(kr_buf *b);
void kr_buf_free(kr_buf *b);

/* "30s", "10m", "2h", "1d", "500ms", or bare seconds.  0 on success. */
int kr_parse_duration_ms(const char *s, uint64_t *out);
/* "100MB", "64KiB", "1G", "512", "10k".  Decimal (kB, MB) and binary
 * (KiB, MiB) units; K/M/G alone are binary.  0 on success. */
int kr_parse_size(const char *s, uint64_t *out);
/* Signed decimal integer, whole string.  0 on success. */
int kr_parse_int64(const char *s, int64_t *out);
/* true/false/yes/no/on/off (YAML 1.1 booleans).  0 on success. */
int kr_parse_bool(const char *s, int *out);
/*
 * Every file the agent reads by name goes through these two.  A FIFO, a
 * device or a directory where a file is expected would block a read
 * forever or read nonsense: the file is opened non-blocking, must be a
 * regular file (checked on the open descriptor) and at most max bytes
 * (0: no cap).  On error: -1 / NULL, errno set (EINVAL: not a regular
 * file, EISDIR, EFBIG: over max) and err set with `code` as
 * "WHAT PATH: why", or only "why" when what is NULL.
 *
 * kr_open_regular: a blocking read-only descriptor (the caller's).
 * kr_read_file: the whole file, NUL-terminated (the caller's), its length
 * in *len if len is not NULL.
 */
int kr_open_regular(const char *path, uint64_t max, int code, const char *what, kr_error *err);
char *kr_read_file(const char *path, uint64_t max, size_t *len, int code, const char *what,
                   kr_error *err);
/* A file holding one value (a token, a namespace): read as kr_read_file
 * reads it, trailing white space cut.  The caller's string, or NULL with
 * err set (exit 2) when it cannot be read, is empty or holds a NUL byte
 * (a value cut at the NUL would be used as if whole). */
char *kr_read_value_file(const char *path, uint64_t max, const char *what, kr_error *err);
/*
 * An id (task, repository, document) that becomes one segment of a
 * keruta-api path: not empty, not "." or ".." (curl drops dot segments:
 * "--task-id .." sent the token to /api/v1/tasks/status), no '/', no
 * control character, at most KR_ID_MAX bytes (a task id also names the
 * task's directory on the work volume, area.h).  Returns 0, or -1 with
 * err set (exit 2; err may be NULL) naming what.
 */
#define KR_ID_MAX 200
int kr_id_check(const char *what, const char *id, kr_error *err);
/* A bearer token (what: "the API token") that goes into a header line: no
 * control character, or the header would be cut or a second one smuggled
 * in.  Returns 0 (also for NULL), or -1 with err set (exit 2). */
int kr_token_check(const char *what, const char *token, kr_error *err);

/* Levenshtein distance, bounded (returns max+1 when larger). */
size_t kr_edit_distance(const char *a, const char *b, size_t max);
/* The candidate nearest to word, or NULL if none is close enough. */
const char *kr_nearest(const char *word, const char *const *candidates, size_t n);

/* A stage or plugin name: 1 to 64 of A-Z a-z 0-9 '-' '_' '.'.  Such a
 * name is safe as a file name component and in a log prefix. */
int kr_name_ok(const char *s);

/* Monotonic clock in milliseconds. */
uint64_t kr_now_ms(void);
/* A duration for people: "850ms", "2.35s", "3m07s". */
void kr_format_ms(uint64_t ms, char *out, size_t n);

/* mkdir -p with mode; 0 on success, -1 with errno. */
int kr_mkdirs(const char *path, unsigned mode);

#endif
