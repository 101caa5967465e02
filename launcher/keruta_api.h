/*
 * keruta_api.h - the keruta-api calls the launcher makes (a task, the
 * PENDING list, a status), over the HTTP layer of the api backend
 * (backends/http.c, compiled into this module too).
 */
#ifndef KR_LAUNCHER_KERUTA_API_H
#define KR_LAUNCHER_KERUTA_API_H

#include "http.h"
#include "ltask.h"
#include "node.h"
#include "settings.h"
#include "util.h"

/* A keruta-api client from the settings, or NULL when no URL is set.
 * abort_flag (or NULL): every call ends at once when it becomes
 * non-zero.  single_attempt: no retries inside a call (the caller keeps
 * its own view of keruta-api's health and retries on a backoff). */
kr_http *kr_launcher_api(const kr_settings *s, const volatile int *abort_flag, int single_attempt,
                         kr_error *err);

/* The task from --task-file, or from the API by id (the volume fields it
 * leaves unset from its repository record).  *t is the caller's to free
 * only when 0 is returned. */
int kr_launcher_task(const kr_settings *s, kr_http *api, const char *id, kr_ltask *t,
                     kr_error *err);
/* The volume fields a task left unset, from its repository record. */
int kr_launcher_task_repository(const kr_settings *s, kr_http *api, kr_ltask *t, kr_error *err);
/*
 * The PENDING list as keruta-api answered it, read one record at a time.
 * A JSON array (what keruta-api sends) is only scanned for where its
 * records begin and end; a record is parsed when asked for, so a poll
 * that fills a few free slots parses a few records, not the 1-2 MB of
 * 10,000 PENDING tasks.  Any other answer (a paged object wrapping the
 * list) is parsed whole, as is an array the scan cannot follow, so its
 * error is the parser's.  Owns everything it points to.
 */
typedef struct kr_pending {
	kr_buf body;
	size_t *start, *len;   /* the records' spans in body (scanned array) */
	size_t n;              /* records                                     */
	int is_list;           /* 0: the answer holds no list                 */
	kr_node *whole;        /* the parsed answer (not scanned)             */
	const kr_node *items;  /* its list                                    */
	kr_node *cur;          /* the record last parsed from body            */
} kr_pending;
/* GET the PENDING list.  0, or -1 with err. */
int kr_launcher_pending(const kr_settings *s, kr_http *api, kr_pending *p, kr_error *err);
/* Record i (< p->n), valid until the next call; NULL with err (named
 * `what`) when it cannot be read. */
const kr_node *kr_pending_item(kr_pending *p, size_t i, const char *what, kr_error *err);
void kr_pending_free(kr_pending *p);
/* The task's status as keruta-api has it (caller frees), or NULL. */
char *kr_launcher_status(const kr_settings *s, kr_http *api, const char *id, kr_error *err);
/* PUT the status. */
int kr_launcher_report(const kr_settings *s, kr_http *api, const char *id, const char *status,
                       const char *message, kr_error *err);

#endif
