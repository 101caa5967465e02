/*
 * launcher.h - what render and dispatch share: the module's entry point,
 * and the keruta-api calls the launcher makes (a task, the PENDING list,
 * a status), over the HTTP layer of the api backend (backends/http.c,
 * compiled into this module too).
 */
#ifndef KR_LAUNCHER_H
#define KR_LAUNCHER_H

#include "http.h"
#include "module.h"
#include "render.h"
#include "settings.h"

/* The module's descriptor, kr_launcher_module (core/module.h), is what
 * the executable looks up. */

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
/* Every PENDING task, as records; *n set.  -1 with err. */
int kr_launcher_pending(const kr_settings *s, kr_http *api, kr_node **list, kr_error *err);
/* The task's status as keruta-api has it (caller frees), or NULL. */
char *kr_launcher_status(const kr_settings *s, kr_http *api, const char *id, kr_error *err);
/* PUT the status. */
int kr_launcher_report(const kr_settings *s, kr_http *api, const char *id, const char *status,
                       const char *message, kr_error *err);
/* The API's name for in_progress, completed, failed. */
const char *kr_launcher_status_name(const kr_settings *s, const char *which);

int kr_dispatch(kr_settings *s, kr_error *err);

#endif
