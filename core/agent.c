/* agent.c - one run of a task command (execute, init, run, cleanup). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "area.h"
#include "chan.h"
#include "log.h"
#include "runner.h"
#include "secret.h"
#include "supervise.h"

#ifndef KR_STAGEDIR
#define KR_STAGEDIR "/usr/lib/keruta-agent/stages"
#endif

void kr_agent_plugin_dirs(kr_loader *l, const kr_settings *s, const kr_pipeline *p)
{
	for (size_t i = 0; i < kr_settings_list_count(s, KR_S_PLUGIN_DIR); i++)
		kr_loader_add_dir(l, kr_settings_list_item(s, KR_S_PLUGIN_DIR, i));
	kr_loader_add_path_list(l, getenv("KERUTA_PLUGIN_PATH"));
	for (size_t i = 0; p && i < p->n_plugin_path; i++)
		kr_loader_add_dir(l, p->plugin_path[i]);
	kr_loader_add_dir(l, KR_STAGEDIR);
}

/* Read the API token from the environment or a file, and mask it. */
static int load_token(kr_agent *a, kr_error *err)
{
	char *token = NULL;
	if (kr_settings_api_token(a->settings, &token, err))
		return -1;
	if (token) {
		kr_settings_set(a->settings, KR_S_API_TOKEN, token);
		memset(token, 0, strlen(token));
		free(token);
	}
	kr_secret_add(kr_settings_get(a->settings, KR_S_API_TOKEN));
	kr_secret_add_url_password(kr_settings_get(a->settings, KR_S_API_URL));
	for (size_t i = 0; i < kr_settings_list_count(a->settings, KR_S_SECRETS); i++)
		kr_secret_add(getenv(kr_settings_list_item(a->settings, KR_S_SECRETS, i)));
	return 0;
}

static void fill_task_from_settings(kr_agent *a)
{
	kr_task *t = a->task;
	const kr_settings *s = a->settings;
	if (kr_settings_get(s, KR_S_TASK_ID))
		kr_task_set(t, KR_TASK_ID, kr_settings_get(s, KR_S_TASK_ID));
	if (kr_settings_get(s, KR_S_REPOSITORY_ID))
		kr_task_set(t, KR_TASK_REPOSITORY_ID, kr_settings_get(s, KR_S_REPOSITORY_ID));
	for (size_t i = 0; i < kr_settings_list_count(s, KR_S_DOCUMENT_ID); i++)
		kr_task_list_add(t, KR_TASK_DOCUMENT_IDS, kr_settings_list_item(s, KR_S_DOCUMENT_ID, i));
	/* absolute, so a stage may hand it to a child running elsewhere */
	const char *work = kr_settings_get(s, KR_S_WORK_DIR);
	char cwd[4096];
	if (work[0] != '/' && getcwd(cwd, sizeof(cwd))) {
		char *abs = kr_asprintf("%s/%s", cwd, work);
		kr_task_set(t, KR_TASK_WORK_DIR, abs);
		free(abs);
	} else {
		kr_task_set(t, KR_TASK_WORK_DIR, work);
	}
	if (kr_settings_get(s, KR_S_API_URL))
		kr_task_set(t, KR_TASK_API_URL, kr_settings_get(s, KR_S_API_URL));
	if (kr_settings_get(s, KR_S_SOURCE_POD))
		kr_task_set(t, "cleanup.source_pod", kr_settings_get(s, KR_S_SOURCE_POD));
}

/* The outcome, for `kubectl describe` and the launcher, even when the API
 * was unreachable at the end.  Kubernetes keeps at most 4096 bytes. */
/*
 * The termination message (doc/lifecycle.md): one JSON object
 *   {"taskId": ID|null, "reported": "COMPLETED"|"FAILED"|null,
 *    "status": OUTCOME, "agentExitCode": N, "exitCode": N,
 *    "stage": S, "reason": R, "note": N}
 * "reported" is the terminal status keruta-api holds from the agent for
 * this task (sent by this process or found sent before), null when none
 * was: then the launcher reports what it saw.  "status" is this
 * process's own outcome; "note" a late failure that changed nothing.
 */
static void write_termination_log(kr_agent *a, const char *status, int code)
{
	const char *path = kr_settings_get(a->settings, KR_S_TERMINATION_LOG);
	if (!path || !*path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		kr_log(errno == ENOENT || errno == EACCES ? KR_LOG_DEBUG : KR_LOG_WARN, NULL,
		       "cannot write the termination message to %s: %s", path, strerror(errno));
		return;
	}
	kr_buf b = {0};
	const char *stage = kr_task_get(a->task, KR_TASK_FAILED_STAGE);
	const char *reason = kr_task_get(a->task, KR_TASK_REASON);
	const char *exit_code = kr_task_get(a->task, KR_TASK_EXIT_CODE);
	const char *id = kr_task_get(a->task, KR_TASK_ID);
	kr_buf_adds(&b, "{\"taskId\":");
	if (id) {
		kr_buf_addc(&b, '"');
		kr_buf_add_json_str(&b, id, strlen(id));
		kr_buf_addc(&b, '"');
	} else {
		kr_buf_adds(&b, "null");
	}
	kr_buf_adds(&b, ",\"reported\":");
	if (a->reported[0]) {
		kr_buf_addc(&b, '"');
		kr_buf_add_json_str(&b, a->reported, strlen(a->reported));
		kr_buf_addc(&b, '"');
	} else {
		kr_buf_adds(&b, "null");
	}
	kr_buf_adds(&b, ",\"status\":\"");
	kr_buf_add_json_str(&b, status, strlen(status));
	kr_buf_addf(&b, "\",\"agentExitCode\":%d", code);
	if (exit_code)
		kr_buf_addf(&b, ",\"exitCode\":%d", atoi(exit_code));
	if (stage) {
		kr_buf_adds(&b, ",\"stage\":\"");
		kr_buf_add_json_str(&b, stage, strlen(stage));
		kr_buf_addc(&b, '"');
	}
	if (reason) {
		size_t len = strlen(reason);
		if (len > 3000)
			len = 3000;
		kr_buf_adds(&b, ",\"reason\":\"");
		kr_buf_add_json_str(&b, reason, len);
		kr_buf_addc(&b, '"');
	}
	if (a->late_note[0]) {
		kr_buf_adds(&b, ",\"note\":\"");
		kr_buf_add_json_str(&b, a->late_note, strnlen(a->late_note, 500));
		kr_buf_addc(&b, '"');
	}
	kr_buf_adds(&b, "}\n");
	if (write(fd, b.data, b.len) < 0)
		kr_log(KR_LOG_WARN, NULL, "cannot write the termination message to %s: %s", path,
		       strerror(errno));
	close(fd);
	kr_buf_free(&b);
}

/* keruta-api's errorCode for a failure no stage named: STAGE_ERROR, the
 * way the original agent's codes read (EXECUTION_ERROR, ...). */
static void set_error_code(kr_task *t, const char *stage)
{
	if (kr_task_get(t, KR_TASK_ERROR_CODE))
		return;
	char code[64];
	size_t n = 0;
	for (const char *p = stage && *stage ? stage : "agent"; *p && n < sizeof(code) - 7; p++)
		code[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32)
		            : ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) ? *p
		                                                                       : '_';
	snprintf(code + n, sizeof(code) - n, "_ERROR");
	if (code[0] < 'A' || code[0] > 'Z')
		snprintf(code, sizeof(code), "AGENT_ERROR");
	kr_task_set(t, KR_TASK_ERROR_CODE, code);
}

static void emergency(void *ctx, int why)
{
	kr_agent *a = ctx;
	(void)why;
	if (!kr_task_get(a->task, KR_TASK_REASON))
		kr_task_set(a->task, KR_TASK_REASON, "a stage did not stop within the grace period");
	write_termination_log(a, kr_settings_status_name(a->settings, "failed"), KR_EXIT_TASK_FAILED);
}

/* ---------------------------------------------- the one final status */

/*
 * Whether this process sends COMPLETED/FAILED (doc/lifecycle.md): 1 yes,
 * 0 no, 2 FAILED only.  --final-status auto: execute, run and cleanup
 * yes, init FAILED only; `render` sets --final-status no on the main
 * container when a cleanup Job follows.
 */
static int sends_final(const kr_agent *a)
{
	const char *v = kr_settings_get(a->settings, KR_S_FINAL_STATUS);
	if (v && strcmp(v, "yes") == 0)
		return 1;
	if (v && strcmp(v, "no") == 0)
		return 0;
	/* init: a failed init container ends the pod before the main one
	 * starts, so init reports its own failure, never success */
	return strcmp(a->command, "init") == 0 ? 2 : 1;
}

static int validate_final_status(const kr_agent *a, kr_error *err)
{
	const char *v = kr_settings_get(a->settings, KR_S_FINAL_STATUS);
	if (!v || strcmp(v, "yes") == 0 || strcmp(v, "no") == 0 || strcmp(v, "auto") == 0)
		return 0;
	kr_error_set(err, KR_EXIT_USAGE, "--final-status '%s': give yes, no or auto (%s)", v,
	             kr_settings_source(a->settings, KR_S_FINAL_STATUS));
	return -1;
}

/* The task's record on the work volume: what its processes there did
 * and whether its final status was sent.  It lives in the task's own area
 * (.keruta/tasks/<task id>/, area.h), so tasks sharing a volume never
 * read each other's. */
#define RECORD "outcome.json"

static int is_terminal(const kr_agent *a, const char *status)
{
	return status && (strcmp(status, kr_settings_status_name(a->settings, "completed")) == 0 ||
	                  strcmp(status, kr_settings_status_name(a->settings, "failed")) == 0);
}

/* The task's record, reached without following a link (the work volume
 * is shared with task code), a regular file of at most 64 KiB; NULL when
 * there is none.  The text is the caller's. */
static char *read_record_file(const char *work, const char *id, size_t *len)
{
	int dfd = kr_area_task_open(work, id, NULL, 0, NULL);
	if (dfd < 0)
		return NULL;
	int fd = openat(dfd, RECORD, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 65536) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *text = kr_malloc((size_t)st.st_size + 1);
	ssize_t got = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (got < 0)
		got = 0;
	text[got] = '\0';
	*len = (size_t)got;
	return text;
}

/* What an earlier process of the task left: its outcome (the main
 * container's, for the cleanup Job) and a final status already sent;
 * keruta-api's own record of the task counts too. */
static void read_record(kr_agent *a)
{
	/* execute and init start an attempt; local mode has no one to tell */
	if (!a->backend || strcmp(a->backend->ops->name, "api") != 0)
		return;
	int later = strcmp(a->command, "run") == 0 || strcmp(a->command, "cleanup") == 0;
	const char *id = kr_task_get(a->task, KR_TASK_ID);
	kr_node *n = NULL;
	kr_error err = {0};
	size_t len = 0;
	char *text = later && id ? read_record_file(kr_task_get(a->task, KR_TASK_WORK_DIR), id, &len)
	                         : NULL;
	char *path = text ? kr_asprintf(KR_AREA_DIR "/" KR_AREA_TASKS "/%s/" RECORD, id) : NULL;
	if (text && kr_node_load_string(path, text, len, &n, &err) == 0 && n->type == KR_NODE_MAP) {
		const kr_node *r = kr_node_get(n, "reported");
		if (r && r->type == KR_NODE_SCALAR && !kr_node_is_null(r) && is_terminal(a, r->value))
			snprintf(a->reported, sizeof(a->reported), "%s", r->value);
		const kr_node *st = kr_node_get(n, "status"), *stage = kr_node_get(n, "stage"),
		              *reason = kr_node_get(n, "reason"), *ec = kr_node_get(n, "errorCode");
		const kr_node *cmd = kr_node_get(n, "command");
		/* only the main container's outcome is the task's; init's is not */
		int main_run = cmd && cmd->type == KR_NODE_SCALAR && strcmp(cmd->value, "run") == 0;
		if (main_run && st && st->type == KR_NODE_SCALAR) {
			snprintf(a->prior_status, sizeof(a->prior_status), "%s", st->value);
			a->prior = 1;
		}
		if (stage && stage->type == KR_NODE_SCALAR && !kr_node_is_null(stage))
			snprintf(a->prior_stage, sizeof(a->prior_stage), "%s", stage->value);
		if (reason && reason->type == KR_NODE_SCALAR && !kr_node_is_null(reason))
			snprintf(a->prior_reason, sizeof(a->prior_reason), "%s", reason->value);
		if (ec && ec->type == KR_NODE_SCALAR && !kr_node_is_null(ec))
			snprintf(a->prior_code, sizeof(a->prior_code), "%s", ec->value);
	} else if (text) {
		kr_log(KR_LOG_WARN, NULL, "cannot read the task's record %s: %s; going by keruta-api "
		                          "alone",
		       path, err.msg[0] ? err.msg : "not a JSON object");
	}
	kr_node_free(n);
	free(text);
	free(path);
	const char *st = kr_task_get(a->task, KR_TASK_STATUS);
	if (!a->reported[0] && is_terminal(a, st))
		snprintf(a->reported, sizeof(a->reported), "%s", st);
}

static void add_json_field(kr_buf *b, const char *name, const char *value)
{
	kr_buf_addf(b, ",\"%s\":", name);
	if (!value) {
		kr_buf_adds(b, "null");
		return;
	}
	kr_buf_addc(b, '"');
	kr_buf_add_json_str(b, value, strlen(value));
	kr_buf_addc(b, '"');
}

/* Written whole to a temporary name and renamed: a reader never sees half. */
static void write_record(kr_agent *a, const char *command, const char *status,
                         const char *stage, const char *reason, const char *error_code)
{
	const char *work = kr_task_get(a->task, KR_TASK_WORK_DIR);
	const char *id = kr_task_get(a->task, KR_TASK_ID);
	if (!work || !id)
		return;
	/* only for keruta-api's sake, and never bringing back a work dir a
	 * cleanup stage removed */
	struct stat st;
	char *area = kr_asprintf("%s/" KR_AREA_DIR, work);
	int keep = lstat(area, &st) == 0 && S_ISDIR(st.st_mode) && a->backend &&
	           strcmp(a->backend->ops->name, "api") == 0;
	free(area);
	if (!keep)
		return;
	kr_error aerr = {0};
	int dfd = kr_area_task_open(work, id, NULL, KR_AREA_F_CREATE, &aerr);
	if (dfd < 0) {
		kr_log(KR_LOG_WARN, NULL, "cannot write the task's record: %s", aerr.msg);
		return;
	}
	const char *name = RECORD;
	kr_buf b = {0};
	kr_buf_adds(&b, "{\"taskId\":\"");
	kr_buf_add_json_str(&b, id, strlen(id));
	kr_buf_addc(&b, '"');
	add_json_field(&b, "command", command);
	add_json_field(&b, "status", status);
	add_json_field(&b, "stage", stage);
	add_json_field(&b, "reason", reason);
	add_json_field(&b, "errorCode", error_code);
	add_json_field(&b, "reported", a->reported[0] ? a->reported : NULL);
	kr_buf_adds(&b, "}\n");
	char *tmp = kr_asprintf("%s.tmp.%d", name, (int)getpid());
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	int ok = fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = 0;
	if (!ok || renameat(dfd, tmp, dfd, name) != 0) {
		kr_log(KR_LOG_WARN, NULL,
		       "cannot write the task's record %s/" KR_AREA_DIR "/" KR_AREA_TASKS "/%s/%s: %s",
		       work, id, name, strerror(errno));
		unlinkat(dfd, tmp, 0);
	}
	close(dfd);
	free(tmp);
	kr_buf_free(&b);
}

/*
 * The end of a task command: every log line delivered, then at most one
 * final status, by the process the layout names, never a second one.
 */
static void finish(kr_agent *a, int *code)
{
	const char *id = kr_task_get(a->task, KR_TASK_ID);
	const char *completed = kr_settings_status_name(a->settings, "completed");
	const char *failed = kr_settings_status_name(a->settings, "failed");
	const char *outcome = *code == KR_EXIT_OK ? completed : failed;
	const char *stage = kr_task_get(a->task, KR_TASK_FAILED_STAGE);
	const char *reason = kr_task_get(a->task, KR_TASK_REASON);
	char *stage_c = stage ? kr_strdup(stage) : NULL, *reason_c = reason ? kr_strdup(reason) : NULL;
	if (*code != KR_EXIT_OK)
		set_error_code(a->task, stage_c);
	const char *send = NULL;
	if (!id) {
		/* init with only --repository-id: no task to report on */
	} else if (a->reported[0]) {
		if (*code != KR_EXIT_OK) {
			snprintf(a->late_note, sizeof(a->late_note),
			         "after %s was reported: stage %s failed: %s", a->reported,
			         stage_c ? stage_c : "?", reason_c ? reason_c : "no reason given");
			kr_log(KR_LOG_ERROR, NULL, "the task's final status stays %s; %s", a->reported,
			       a->late_note);
		}
	} else if (sends_final(a) == 0 || (sends_final(a) == 2 && *code == KR_EXIT_OK)) {
		kr_log(KR_LOG_INFO, NULL, "%s sends no final status: a later step of the task does",
		       a->command);
	} else if (strcmp(a->command, "cleanup") == 0 && !a->prior && *code == KR_EXIT_OK &&
	           !kr_settings_get(a->settings, KR_S_TASK_FILE)) {
		kr_log(KR_LOG_WARN, NULL,
		       "the task's main container left no outcome on the work volume (it did not "
		       "finish); no final status sent: the launcher reports how the pod ended");
	} else {
		send = outcome;
		/* the cleanup Job carries the main container's failure */
		if (*code == KR_EXIT_OK && a->prior && strcmp(a->prior_status, failed) == 0) {
			send = failed;
			free(stage_c);
			free(reason_c);
			stage_c = a->prior_stage[0] ? kr_strdup(a->prior_stage) : NULL;
			reason_c = a->prior_reason[0] ? kr_strdup(a->prior_reason) : NULL;
			if (a->prior_code[0])
				kr_task_set(a->task, KR_TASK_ERROR_CODE, a->prior_code);
			else
				set_error_code(a->task, stage_c);
		}
	}
	/* nothing more is shipped: what follows is about delivery itself */
	kr_log_set_sink(NULL, NULL);
	if (a->backend && !a->no_api) {
		kr_error ferr = {0};
		uint64_t flush_ms = kr_supervise_signal() ? kr_supervise_grace_ms() / 2 + 1 : 30000;
		if (a->backend->ops->flush(a->backend, flush_ms, &ferr) < 0) {
			/* The task's log is part of its record: a run whose lines did
			 * not reach keruta-api does not end as a plain success. */
			kr_log(KR_LOG_ERROR, NULL, "the task's log did not reach keruta-api: %s",
			       ferr.msg);
			if (*code == KR_EXIT_OK)
				*code = ferr.code ? ferr.code : KR_EXIT_API;
		}
	}
	if (send && a->backend && !a->no_api) {
		kr_buf msg = {0};
		if (strcmp(send, failed) == 0)
			kr_buf_addf(&msg, "stage %s failed: %s", stage_c ? stage_c : "?",
			            reason_c ? reason_c : "no reason given");
		else
			kr_task_set(a->task, KR_TASK_STATUS_PROGRESS, "100");
		kr_error serr = {0};
		if (a->backend->ops->report_status(a->backend, a->task, send, msg.data, &serr) < 0) {
			kr_log(KR_LOG_ERROR, NULL, "could not report %s: %s", send, serr.msg);
			if (*code == KR_EXIT_OK)
				*code = KR_EXIT_API;
		} else {
			a->status_sent = 1;
			snprintf(a->reported, sizeof(a->reported), "%s", send);
		}
		kr_buf_free(&msg);
	}
	/* a cleanup Job keeps the main container's outcome for its retries */
	if (id && strcmp(a->command, "cleanup") == 0 && a->prior)
		write_record(a, "run", a->prior_status, a->prior_stage[0] ? a->prior_stage : NULL,
		             a->prior_reason[0] ? a->prior_reason : NULL,
		             a->prior_code[0] ? a->prior_code : NULL);
	else if (id)
		write_record(a, a->command, outcome, *code == KR_EXIT_OK ? NULL : stage_c,
		             *code == KR_EXIT_OK ? NULL : reason_c,
		             *code == KR_EXIT_OK ? NULL : kr_task_get(a->task, KR_TASK_ERROR_CODE));
	write_termination_log(a, send ? send : outcome, *code);
	free(stage_c);
	free(reason_c);
}

/* The agent's own log lines (stage started, passed, failed...) go to the
 * backend too, so the task's log in keruta shows what the agent did.  A
 * line the backend logs while shipping is not shipped again. */
static __thread int in_sink;

static void log_to_backend(void *ctx, kr_log_level level, const char *stage, const char *msg)
{
	kr_agent *a = ctx;
	if (in_sink || level < KR_LOG_INFO || !a->backend)
		return;
	in_sink = 1;
	kr_buf line = {0};
	if (stage)
		kr_buf_addf(&line, "[%s] ", stage);
	kr_buf_adds(&line, msg);
	a->backend->ops->ship_log(a->backend, "agent", line.data, line.len);
	kr_buf_free(&line);
	in_sink = 0;
}

/* In API mode only a clone creates the work dir (a Job mounts it; a
 * local run's stages make it as they go): with no repository to clone, a
 * missing work dir failed later in whichever stage first wrote there,
 * with a message about that stage's file. */
static int check_work_dir(kr_agent *a, kr_error *err)
{
	const char *work = kr_task_get(a->task, KR_TASK_WORK_DIR);
	struct stat st;
	if (strcmp(a->backend->ops->name, "api") != 0 || strcmp(a->command, "cleanup") == 0 || !work ||
	    stat(work, &st) == 0 || errno != ENOENT ||
	    kr_task_get(a->task, KR_TASK_REPOSITORY_ID) || kr_task_get(a->task, KR_TASK_REPOSITORY_URL))
		return 0;
	kr_error_set(err, KR_EXIT_USAGE,
	             "the work dir %s does not exist and the task names no repository to clone "
	             "into it; create the work dir, give --work-dir, or give the task a repository "
	             "(--repository-id)",
	             work);
	return -1;
}

static int create_backend(kr_agent *a, kr_error *err)
{
	const char *backend = kr_settings_get(a->settings, KR_S_BACKEND);
	int local = strcmp(backend, "local") == 0 ||
	            (strcmp(backend, "auto") == 0 && kr_settings_get(a->settings, KR_S_TASK_FILE));
	a->backend = local ? kr_backend_local_create(a->settings, err)
	                   : kr_backend_api_create(a->settings, err);
	return a->backend ? 0 : -1;
}

int kr_agent_run(kr_agent *a, kr_error *err)
{
	const kr_phase *phase = kr_pipeline_phase(a->pipeline, a->command);
	kr_runner runner = {0};
	int code = KR_EXIT_INTERNAL, inited = 0, reported = 0;

	if (!phase || phase->n == 0) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: phase '%s' lists no stages; add them under 'phases: %s:'",
		             a->pipeline->path, a->command, a->command);
		return KR_EXIT_USAGE;
	}
	if (kr_runner_load(&runner, a->pipeline, phase, &a->loader, err))
		goto out;
	if (kr_supervise_start(kr_settings_u64(a->settings, KR_S_GRACE_PERIOD))) {
		kr_error_set(err, KR_EXIT_INTERNAL, "cannot start the supervisor threads");
		goto out;
	}
	if (load_token(a, err))
		goto out;
	if (kr_settings_bool(a->settings, KR_S_PASS_API_TOKEN))
		kr_log(KR_LOG_WARN, NULL,
		       "pass_api_token_to_tasks is on: every script of this task gets "
		       "KERUTA_API_TOKEN and can rewrite any task's status; scripts can use "
		       "`keruta-agent log/progress/artifact` instead");
	if (validate_final_status(a, err))
		goto out;
	/* plugins see settings only through their own options and the
	 * environment: export the CA so every TLS client (git too) uses it, and the
	 * repository cache the clone stage reads */
	if (kr_settings_get(a->settings, KR_S_CA_FILE))
		setenv("KERUTA_CA_FILE", kr_settings_get(a->settings, KR_S_CA_FILE), 1);
	if (kr_settings_get(a->settings, KR_S_GIT_CACHE))
		setenv("KERUTA_GIT_CACHE", kr_settings_get(a->settings, KR_S_GIT_CACHE), 1);
	/* ids become path segments of keruta-api calls: those given here are
	 * checked before any request, those of a fetched task by the API
	 * backend when it reads the task */
	static const kr_setting_id given_ids[] = {KR_S_TASK_ID, KR_S_REPOSITORY_ID};
	static const char *const given_what[] = {"task id (--task-id)", "repository id (--repository-id)"};
	for (size_t i = 0; i < 2; i++)
		if (kr_settings_get(a->settings, given_ids[i]) &&
		    kr_id_check(given_what[i], kr_settings_get(a->settings, given_ids[i]), err))
			goto out;
	for (size_t i = 0; i < kr_settings_list_count(a->settings, KR_S_DOCUMENT_ID); i++)
		if (kr_id_check("document id (--document-id)",
		                kr_settings_list_item(a->settings, KR_S_DOCUMENT_ID, i), err))
			goto out;
	a->task = kr_task_new();
	kr_task_set_agent(a->task, a);
	kr_supervise_set_emergency(emergency, a);
	fill_task_from_settings(a);
	if (create_backend(a, err))
		goto out;
	kr_log_set_sink(log_to_backend, a);
	if (a->backend->ops->fetch_task(a->backend, a->task, err) < 0 || check_work_dir(a, err))
		goto out;

	if (kr_runner_init(&runner, a, err))
		goto out;
	inited = 1;

	const char *id = kr_task_get(a->task, KR_TASK_ID);
	kr_log(KR_LOG_INFO, NULL, "%s: task %s, %zu stage%s, backend %s", a->command,
	       id ? id : "(none)", runner.n, runner.n == 1 ? "" : "s", a->backend->ops->name);
	read_record(a);
	if (a->reported[0])
		kr_log(KR_LOG_INFO, NULL, "task %s already has its final status %s; this run sends "
		                          "no status",
		       id, a->reported);
	else if (sends_final(a) == 1)
		kr_log(KR_LOG_INFO, NULL, "this %s sends the task's final status", a->command);
	int reports = id && strcmp(a->command, "cleanup") != 0 && !a->reported[0];
	if (reports) {
		kr_error serr = {0};
		if (a->backend->ops->report_status(a->backend, a->task,
		                                   kr_settings_status_name(a->settings, "in_progress"),
		                                   NULL, &serr) < 0)
			kr_log(KR_LOG_WARN, NULL, "could not report IN_PROGRESS: %s", serr.msg);
	}

	code = kr_runner_run(&runner, a);

	if (code == KR_EXIT_OK)
		kr_log(KR_LOG_INFO, NULL, "%s: done", a->command);
	else
		kr_log(KR_LOG_ERROR, NULL, "%s: task failed in stage %s: %s", a->command,
		       kr_task_get(a->task, KR_TASK_FAILED_STAGE),
		       kr_task_get(a->task, KR_TASK_REASON));
	finish(a, &code);
	reported = 1;

out:
	if (err->code && code == KR_EXIT_INTERNAL)
		code = err->code;
	if (!reported && a->task) {
		/* failed before any stage ran (task, plugin init): still tell
		 * whoever can hear it why, so the task does not hang in PENDING */
		kr_task_set(a->task, KR_TASK_FAILED_STAGE, "agent");
		kr_task_set(a->task, KR_TASK_REASON, err->msg[0] ? err->msg : "the agent could not start");
		if (!a->backend || err->code == KR_EXIT_API)
			a->no_api = 1;
		read_record(a);
		finish(a, &code);
	}
	if (inited || runner.runs)
		kr_runner_fini(&runner);
	kr_supervise_set_emergency(NULL, NULL);
	kr_log_set_sink(NULL, NULL);
	kr_chan_close(a->chan);
	a->chan = NULL;
	if (a->backend) {
		a->backend->ops->destroy(a->backend);
		a->backend = NULL;
	}
	kr_supervise_stop();
	return code;
}
