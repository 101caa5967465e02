/* agent.c - one run of a task command (execute, init, run, cleanup). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static const char *status_name(const kr_agent *a, const char *which, const char *def)
{
	const char *v = kr_settings_map_get(a->settings, KR_S_STATUS_NAMES, which);
	return v ? v : def;
}

/* Read the API token from the environment or a file, and mask it. */
static int load_token(kr_agent *a, kr_error *err)
{
	const char *file = kr_settings_get(a->settings, KR_S_API_TOKEN_FILE);
	if (file) {
		size_t n = 0;
		char *buf = kr_read_file(file, 65536, &n, KR_EXIT_USAGE, "API token file", err);
		if (!buf)
			return -1;
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
			buf[--n] = '\0';
		if (n == 0 || strlen(buf) != n) {
			kr_error_set(err, KR_EXIT_USAGE, "API token file %s %s; put the token in it", file,
			             n == 0 ? "is empty" : "holds a NUL byte");
			free(buf);
			return -1;
		}
		kr_settings_set(a->settings, KR_S_API_TOKEN, buf);
		memset(buf, 0, n);
		free(buf);
	}
	/* the token goes into a request header: a line break in it would
	 * inject headers (and it is never printed, so say where it came from) */
	const char *tok = kr_settings_get(a->settings, KR_S_API_TOKEN);
	for (const char *p = tok; p && *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "the API token (%s) contains a control character (a line break?) at "
			             "byte %zu; it must be the token alone, on one line",
			             file ? file : "KERUTA_API_TOKEN", (size_t)(p - tok) + 1);
			return -1;
		}
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
	kr_buf_adds(&b, "{\"status\":\"");
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
	write_termination_log(a, status_name(a, "failed", "FAILED"), KR_EXIT_TASK_FAILED);
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
	/* plugins see settings only through their own options and the
	 * environment: export the CA so every TLS client (git too) uses it */
	if (kr_settings_get(a->settings, KR_S_CA_FILE))
		setenv("KERUTA_CA_FILE", kr_settings_get(a->settings, KR_S_CA_FILE), 1);
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
	int reports = id && strcmp(a->command, "cleanup") != 0;
	if (reports) {
		kr_error serr = {0};
		if (a->backend->ops->report_status(a->backend, a->task,
		                                   status_name(a, "in_progress", "IN_PROGRESS"),
		                                   NULL, &serr) < 0)
			kr_log(KR_LOG_WARN, NULL, "could not report IN_PROGRESS: %s", serr.msg);
	}

	code = kr_runner_run(&runner, a);

	/* The end: every log line first, then the final status. */
	const char *final = NULL;
	if (code != KR_EXIT_OK)
		final = status_name(a, "failed", "FAILED");
	else if (strcmp(a->command, "init") != 0)
		/* init is only the start of the task; the cleanup Job reports
		 * again once the artifacts are in (seed 002) */
		final = status_name(a, "completed", "COMPLETED");
	if (code == KR_EXIT_OK)
		kr_log(KR_LOG_INFO, NULL, "%s: done", a->command);
	else
		kr_log(KR_LOG_ERROR, NULL, "%s: task failed in stage %s: %s", a->command,
		       kr_task_get(a->task, KR_TASK_FAILED_STAGE),
		       kr_task_get(a->task, KR_TASK_REASON));
	/* nothing more is shipped: what follows is about delivery itself */
	kr_log_set_sink(NULL, NULL);
	kr_error ferr = {0};
	uint64_t flush_ms = kr_supervise_signal() ? kr_supervise_grace_ms() / 2 + 1 : 30000;
	if (a->backend->ops->flush(a->backend, flush_ms, &ferr) < 0) {
		/* The task's log is part of its record: a run whose lines did not
		 * reach keruta-api does not end as a plain success. */
		kr_log(KR_LOG_ERROR, NULL, "the task's log did not reach keruta-api: %s", ferr.msg);
		if (code == KR_EXIT_OK)
			code = ferr.code ? ferr.code : KR_EXIT_API;
	}
	if (final && id) {
		kr_buf msg = {0};
		const char *stage = kr_task_get(a->task, KR_TASK_FAILED_STAGE);
		const char *reason = kr_task_get(a->task, KR_TASK_REASON);
		if (code != KR_EXIT_OK) {
			kr_buf_addf(&msg, "stage %s failed: %s", stage ? stage : "?",
			            reason ? reason : "no reason given");
			set_error_code(a->task, stage);
		} else {
			kr_task_set(a->task, KR_TASK_STATUS_PROGRESS, "100");
		}
		kr_error serr = {0};
		if (a->backend->ops->report_status(a->backend, a->task, final, msg.data, &serr) < 0) {
			kr_log(KR_LOG_ERROR, NULL, "could not report %s: %s", final, serr.msg);
			if (code == KR_EXIT_OK)
				code = KR_EXIT_API;
		} else {
			a->status_sent = 1;
		}
		kr_buf_free(&msg);
	}
	write_termination_log(a, final ? final : (code == KR_EXIT_OK ? "SUCCEEDED" : "FAILED"),
	                      code);
	reported = 1;

out:
	if (err->code && code == KR_EXIT_INTERNAL)
		code = err->code;
	if (!reported && a->task) {
		/* failed before any stage ran (task, plugin init): still tell
		 * whoever can hear it why, so the task does not hang in PENDING */
		kr_log_set_sink(NULL, NULL);
		kr_task_set(a->task, KR_TASK_FAILED_STAGE, "agent");
		kr_task_set(a->task, KR_TASK_REASON, err->msg[0] ? err->msg : "the agent could not start");
		const char *failed = status_name(a, "failed", "FAILED");
		if (a->backend && kr_task_get(a->task, KR_TASK_ID) && err->code != KR_EXIT_API) {
			kr_error serr = {0};
			char *msg = kr_asprintf("stage agent failed: %s", kr_task_get(a->task, KR_TASK_REASON));
			set_error_code(a->task, "agent");
			if (a->backend->ops->report_status(a->backend, a->task, failed, msg, &serr) < 0)
				kr_log(KR_LOG_WARN, NULL, "could not report %s: %s", failed, serr.msg);
			free(msg);
		}
		write_termination_log(a, failed, code);
	}
	if (inited || runner.runs)
		kr_runner_fini(&runner);
	kr_supervise_set_emergency(NULL, NULL);
	kr_log_set_sink(NULL, NULL);
	if (a->backend) {
		a->backend->ops->destroy(a->backend);
		a->backend = NULL;
	}
	kr_supervise_stop();
	return code;
}
