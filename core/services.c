/*
 * services.c - the kr_services table: how plugins reach the core.  Each
 * service finds the agent through the task it is given.  Also owns the
 * stage's failure reason (kr_reason): set under its lock, whichever thread
 * fails, its text made by kr_secret_vformat.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "area.h"
#include "options.h"
#include "log.h"
#include "proc.h"
#include "secret.h"
#include "supervise.h"
#include "upload.h"

static void svc_log(kr_task *t, kr_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kr_logv(level, t ? kr_task_stage(t) : NULL, fmt, ap);
	va_end(ap);
}

/* Reason given by an init callback, which has no task to attach it to;
 * read by the runner right after that init returns. */
static kr_reason init_reason = KR_REASON_INIT;

static int svc_fail(kr_task *t, const char *fmt, ...)
{
	kr_agent *a = t ? kr_task_agent(t) : NULL;
	va_list ap;
	va_start(ap, fmt);
	kr_reason_vset(a ? &a->reason : &init_reason, fmt, ap);
	va_end(ap);
	return KR_FAILED;
}

int kr_services_take_init_reason(char *out, size_t n)
{
	return kr_reason_take(&init_reason, out, n);
}

static uint64_t svc_time_left(const kr_task *t)
{
	uint64_t d = t ? kr_task_deadline(t) : 0;
	if (!d)
		return UINT64_MAX;
	uint64_t now = kr_now_ms();
	return now >= d ? 0 : d - now;
}

static int svc_cancelled(const kr_task *t)
{
	(void)t;
	return kr_supervise_cancelled() != KR_CANCEL_NONE;
}

static int svc_add_secret(kr_task *t, const char *value)
{
	(void)t;
	kr_secret_add(value);
	return KR_OK;
}

static size_t min_size(uint32_t theirs, size_t ours)
{
	return theirs < ours ? theirs : ours;
}

/* The plugin's structs may be older (smaller) or newer (larger) than the
 * agent's: read and write only min(theirs, ours) bytes of them, members
 * the plugin does not have being zero. */
static int svc_run_process(kr_task *t, const kr_process *p, kr_process_result *r)
{
	kr_agent *a = t ? kr_task_agent(t) : NULL;
	if (!a || !p || !r)
		return svc_fail(t, "run_process: no task, no process or no result given; pass the "
		                   "task run() was given and both structs");
	if (p->size < offsetof(kr_process, argv) + sizeof(p->argv) ||
	    r->size < offsetof(kr_process_result, exit_code) + sizeof(r->exit_code))
		return svc_fail(t, "run_process: the plugin's kr_process (%u bytes) or "
		                   "kr_process_result (%u bytes) is too small; set their size members "
		                   "to sizeof",
		                (unsigned)p->size, (unsigned)r->size);
	kr_process proc = {0};
	memcpy(&proc, p, min_size(p->size, sizeof(proc)));
	if (!proc.argv || !proc.argv[0])
		return svc_fail(t, "run_process: no command given");
	kr_process_result res = {0};
	int rc = kr_proc_run(a, t, &proc, &res);
	uint32_t theirs = r->size;
	res.size = theirs;
	memcpy(r, &res, min_size(theirs, sizeof(res)));
	return rc;
}

/* Turn a backend error into the stage's failure reason. */
static int backend_result(kr_task *t, int rc, kr_error *err)
{
	if (rc < 0)
		svc_fail(t, "%s", err->msg[0] ? err->msg : "the backend failed");
	return rc;
}

static kr_backend *backend_of(kr_task *t)
{
	kr_agent *a = t ? kr_task_agent(t) : NULL;
	return a ? a->backend : NULL;
}

/* A NULL task or argument is the plugin's slip: refused, not followed. */
#define NEED_BACKEND(t, service, args_given)                                               \
	if (!(t) || !(args_given))                                                             \
		return svc_fail(t, service ": no task or a NULL argument given; pass the task "    \
		                           "run() was given and every value");                     \
	kr_backend *b = backend_of(t);                                                         \
	if (!b)                                                                                \
		return svc_fail(t, "no backend: this command talks to neither keruta-api "        \
		                   "nor a task file");                                             \
	kr_error err = {0}

static int svc_fetch_repository(kr_task *t)
{
	NEED_BACKEND(t, "fetch_repository", 1);
	return backend_result(t, b->ops->fetch_repository(b, t, &err), &err);
}

static int svc_fetch_script(kr_task *t, const char *which, const char *dest)
{
	NEED_BACKEND(t, "fetch_script", which && dest);
	return backend_result(t, b->ops->fetch_script(b, t, which, dest, &err), &err);
}

static int svc_fetch_document(kr_task *t, const char *id, const char *dest, uint64_t max,
                              char **name_out)
{
	if (name_out)
		*name_out = NULL;
	NEED_BACKEND(t, "fetch_document", id && dest);
	if (max == 0)
		max = kr_settings_u64(kr_task_agent(t)->settings, KR_S_MAX_DOWNLOAD);
	return backend_result(t, b->ops->fetch_document(b, t, id, dest, max, name_out, &err),
	                      &err);
}

static int svc_upload_artifact(kr_task *t, const char *path, const char *name)
{
	NEED_BACKEND(t, "upload_artifact", path && name);
	int rc = kr_upload_once(b, t, path, name, &err);
	/* a stage uploads many files and sums the failures up in its own
	 * reason, so each one's cause is told here or never */
	if (rc < 0)
		kr_log(KR_LOG_ERROR, kr_task_stage(t), "%s", err.msg[0] ? err.msg : "the upload failed");
	return backend_result(t, rc, &err);
}

static int svc_report_status(kr_task *t, const char *status, const char *message)
{
	NEED_BACKEND(t, "report_status", status);
	return backend_result(t, b->ops->report_status(b, t, status, message, &err), &err);
}

static void svc_ship_log(kr_task *t, const char *stream, const char *line, size_t len)
{
	kr_backend *b = backend_of(t);
	if (!b || !line)
		return;
	kr_buf masked = {0};
	kr_secret_mask(line, len, &masked);
	b->ops->ship_log(b, stream ? stream : "agent", masked.data ? masked.data : "", masked.len);
	kr_buf_free(&masked);
}

static void svc_free(void *p)
{
	free(p);
}

_Static_assert(KR_AREA_CREATE == KR_AREA_F_CREATE && KR_AREA_SHOW == KR_AREA_F_SHOW,
               "area flags");

static int svc_area_open(kr_task *t, const char *rel, uint32_t flags)
{
	const char *work = kr_task_get(t, KR_TASK_WORK_DIR);
	if (flags & KR_AREA_WORK_DIR) {
		if (!work || !*work) {
			errno = ENOENT;
			return -1;
		}
		int wfd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (wfd < 0)
			return -1;
		int fd = kr_area_openat(wfd, rel, 0);
		int e = errno;
		close(wfd);
		errno = e;
		return fd;
	}
	kr_error err = {0};
	int fd = kr_area_task_open(work, kr_task_get(t, KR_TASK_ID), rel, flags, &err);
	if (fd < 0 && err.msg[0] && (flags & (KR_AREA_CREATE | KR_AREA_SHOW))) {
		int e = errno;
		svc_fail(t, "%s", err.msg);
		errno = e;
	}
	return fd;
}

static char *svc_area_path(kr_task *t, const char *rel, uint32_t flags)
{
	int fd = svc_area_open(t, rel, flags);
	if (fd < 0)
		return NULL;
	close(fd);
	const char *work = kr_task_get(t, KR_TASK_WORK_DIR);
	if (flags & KR_AREA_WORK_DIR)
		return kr_asprintf("%s/%s", work, rel ? rel : "");
	const char *id = kr_task_get(t, KR_TASK_ID);
	return kr_asprintf("%s/" KR_AREA_DIR "/" KR_AREA_TASKS "/%s%s%s", work,
	                   id && *id ? id : KR_AREA_NO_ID, rel && *rel ? "/" : "", rel ? rel : "");
}

static char *svc_read_file(kr_task *t, const char *path, uint64_t max, size_t *len, char *why,
                           size_t why_size)
{
	kr_agent *a = t ? kr_task_agent(t) : NULL;
	if (max == 0)
		max = a ? kr_settings_u64(a->settings, KR_S_MAX_DOWNLOAD) : 64u << 20;
	if (!path) {
		if (why && why_size)
			snprintf(why, why_size, "no file name given");
		errno = EINVAL;
		return NULL;
	}
	kr_error err = {0};
	char *data = kr_read_file(path, max, len, KR_EXIT_TASK_FAILED, NULL, &err);
	if (!data) {
		int e = errno;
		if (why && why_size)
			snprintf(why, why_size, "%s", err.msg);
		errno = e;
	}
	return data;
}

static int svc_opt_bind(const kr_config *cfg, void *state, size_t size)
{
	kr_error err = {0};
	if (kr_loader_bind(cfg, state, size, &err))
		return svc_fail(NULL, "%s", err.msg);
	return KR_OK;
}

const kr_services kr_services_table = {
        .size = sizeof(kr_services),
        .abi_major = KR_ABI_MAJOR,
        .abi_minor = KR_ABI_MINOR,
        .log = svc_log,
        .fail = svc_fail,
        .opt_string = kr_config_string,
        .opt_int = kr_config_int,
        .opt_bool = kr_config_bool,
        .opt_duration_ms = kr_config_duration_ms,
        .opt_size = kr_config_size,
        .opt_list_count = kr_config_list_count,
        .opt_list_item = kr_config_list_item,
        .opt_map_count = kr_config_map_count,
        .opt_map_key = kr_config_map_key,
        .opt_map_value = kr_config_map_value,
        .task_get = kr_task_get,
        .task_set = kr_task_set,
        .task_list_count = kr_task_list_count,
        .task_list_item = kr_task_list_item,
        .task_list_add = kr_task_list_add,
        .time_left_ms = svc_time_left,
        .cancelled = svc_cancelled,
        .add_secret = svc_add_secret,
        .run_process = svc_run_process,
        .fetch_repository = svc_fetch_repository,
        .fetch_script = svc_fetch_script,
        .fetch_document = svc_fetch_document,
        .upload_artifact = svc_upload_artifact,
        .report_status = svc_report_status,
        .ship_log = svc_ship_log,
        .free = svc_free,
        .area_open = svc_area_open,
        .area_path = svc_area_path,
        .read_file = svc_read_file,
        .opt_bind = svc_opt_bind,
};
