/*
 * install.c - the `install` stage: fetch the repository's install script
 * into <work_dir>/.keruta/install.sh and run it from the repository root.
 *
 * No script (the backend has none, or it is empty) is not an error: the
 * stage is skipped with a log line.  A failing script fails the stage with
 * its exit code or signal in the reason, which fails `init`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keruta/plugin.h"

#include "stage_util.h"

typedef struct install_state {
	uint64_t timeout_ms;
	const char *shell;
} install_state;

static const kr_option install_options[] = {
        {.name = "timeout", .type = KR_OPT_DURATION, .default_value = "30m",
         .help = "longest the install script may run", KR_OPT_FIELD(install_state, timeout_ms)},
        {.name = "shell", .type = KR_OPT_STRING, .default_value = "/bin/sh",
         .help = "interpreter the script is run with", KR_OPT_FIELD(install_state, shell)},
        {0}};

static int install_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	install_state *s = kr_stage_new_state(svc, cfg, sizeof(*s), "install");
	if (!s)
		return KR_FAILED;
	if (!s->shell || !*s->shell)
		s->shell = "/bin/sh";
	*state = s;
	return KR_OK;
}

static void install_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
}

/* 1: empty, or only whitespace (nothing to run); 0: a script; -1: not
 * readable (why says why).  The backend wrote the file and may have
 * replaced it: it is read only if it is a regular file.  A script of more
 * than 64 KiB is not empty: no need to read it all. */
static int script_is_empty(const kr_services *svc, kr_task *t, const char *path, char *why,
                           size_t why_size)
{
	size_t n = 0;
	char *text = svc->read_file(t, path, 1u << 16, &n, why, why_size);
	if (!text)
		return errno == EFBIG ? 0 : -1;
	int empty = 1;
	for (size_t i = 0; empty && i < n; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
			empty = 0;
	svc->free(text);
	return empty;
}

static int install_run(const kr_services *svc, void *state, kr_task *t)
{
	install_state *s = state;
	const char *work;
	char *area = kr_stage_task_area(svc, t, "install", &work);
	if (!area)
		return KR_FAILED;
	char *path = NULL;
	if (asprintf(&path, "%s/install.sh", area) < 0) {
		svc->free(area);
		return svc->fail(t, "install: out of memory");
	}
	int fd = kr_stage_new_file(AT_FDCWD, path, 0700);
	if (fd < 0) {
		int e = errno;
		svc->fail(t, "cannot create %s: %s", path, strerror(e));
		free(path);
		svc->free(area);
		return KR_FAILED;
	}
	close(fd);

	int rc = svc->fetch_script(t, "install", path);
	char why[256] = "";
	int empty = rc == KR_OK ? script_is_empty(svc, t, path, why, sizeof(why)) : 0;
	if (empty < 0) {
		svc->fail(t, "install: cannot read the install script %s: %s", path, why);
		unlink(path);
		free(path);
		svc->free(area);
		return KR_FAILED;
	}
	if (rc == KR_NOT_FOUND || empty) {
		svc->log(t, KR_LOG_INFO, "no install script for this repository; nothing to do");
		unlink(path);
		free(path);
		svc->free(area);
		return KR_SKIPPED;
	}
	if (rc != KR_OK) {
		unlink(path);
		free(path);
		svc->free(area);
		return rc == KR_CANCELLED ? KR_CANCELLED : KR_FAILED;
	}
	/* The backend may have replaced the file: the mode is ours to set. */
	if (chmod(path, 0700) != 0) {
		int e = errno;
		svc->fail(t, "cannot make %s executable: %s", path, strerror(e));
		free(path);
		svc->free(area);
		return KR_FAILED;
	}

	char limit[32];
	kr_stage_format_ms(s->timeout_ms, limit, sizeof(limit));
	svc->log(t, KR_LOG_INFO, "running %s with %s in %s (timeout %s)", path, s->shell, work,
	         s->timeout_ms ? limit : "none");
	const char *argv[] = {s->shell, path, NULL};
	/* the task's environment, as the execute stage gives it, and the work
	 * dir the script is preparing */
	char *work_var = NULL, **env = NULL;
	if (asprintf(&work_var, "KERUTA_WORK_DIR=%s", work) < 0)
		work_var = NULL;
	const char *more[] = {work_var, NULL};
	if (area && work_var)
		env = kr_stage_task_env(svc, t, area, KR_STAGE_ENV_MAX, more);
	else
		svc->fail(t, "install: out of memory");
	free(work_var);
	if (!env) {
		free(path);
		svc->free(area);
		return KR_FAILED;
	}
	kr_process_result r;
	rc = kr_stage_run_script(svc, t, argv, work, env, s->timeout_ms, "install", &r);
	free(path);
	svc->free(area);
	if (rc != KR_OK)
		return svc->fail(t, "could not start the install script with %s; check `with: shell:`",
		                 s->shell);
	if (r.cancelled || svc->cancelled(t))
		return KR_CANCELLED;
	if (r.timed_out)
		return svc->fail(t, "the install script did not finish within %s; it was killed "
		                    "(raise `with: timeout:` if it needs longer)",
		                 limit);
	if (r.oom_killed)
		return svc->fail(t, "the install script was killed by the out-of-memory killer; "
		                    "give the container more memory");
	if (r.signal)
		return svc->fail(t, "the install script was killed by signal %d (%s)", r.signal,
		                 strsignal(r.signal));
	if (r.exit_code != 0) {
		if (r.exit_code == 127)
			return svc->fail(t, "the install script failed with exit code 127 "
			                    "(a command it runs, or the shell %s, was not found)",
			                 s->shell);
		return svc->fail(t, "the install script failed with exit code %d", r.exit_code);
	}
	svc->log(t, KR_LOG_INFO, "install script succeeded");
	return KR_OK;
}

KR_PLUGIN_DEFINE(.name = "install", .version = "1.0",
                 .description = "fetch the repository's install script and run it",
                 .options = install_options, .init = install_init, .run = install_run,
                 .fini = install_fini);
