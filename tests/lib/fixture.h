/*
 * fixture.h - the one fixture of the tests that run the agent on files: a
 * scratch directory with a work dir, a task file and a pipeline, a run of
 * the real keruta-agent (a child process) on them, and what it left: exit
 * code, stdout, stderr, the events file and the termination message.
 *
 * Ownership: every char * in kf is the fixture's, freed by kf_free (which
 * also removes the scratch directory); a kt_result passed to kf_run is the
 * caller's (kt_result_free).
 */
#ifndef KR_FIXTURE_H
#define KR_FIXTURE_H

#include <sys/types.h>

#include "krtest.h"

typedef struct kf {
	char *dir;      /* scratch root                                     */
	char *work;     /* dir/work: the work dir (a caller may replace it) */
	char *task;     /* dir/task.yaml; NULL (freed by the caller): none  */
	char *pipeline; /* dir/pipeline.yaml                                */
	char *term;     /* dir/termination-log                              */
	char *evpath;   /* the events file: work/.keruta/events.jsonl, or
	                 * dir/events.jsonl after kf_files_outside          */
	char *arts;     /* dir/artifacts after kf_files_outside, else NULL  */
	const char *cwd;     /* where the agent runs: work, dir, or NULL: here */
	const char *api_url; /* set: keruta-api mode against it, no task file */
	int name_files;      /* pass --events-file and --artifacts-dir      */
	kt_result r;    /* for callers that keep the result here            */
	char *events;   /* the events file after the last run ("" if none)  */
	char *termtext; /* the termination message ("" if none)            */
	char *log;      /* stdout and stderr of the last run, joined        */
} kf;

/* A fresh scratch dir with an empty work dir and the task file
 * (task_yaml NULL: "id: t-1" and a title). */
void kf_init(kf *f, const char *task_yaml);
/* The events file and the artifacts outside the work dir, named on the
 * command line, and the agent started in dir instead of work. */
void kf_files_outside(kf *f);
/* Removes dir (unless the caller took it over and set it NULL). */
void kf_free(kf *f);
void kf_pipeline(kf *f, const char *yaml);

/*
 * Run `keruta-agent CMD` in local mode (or against f->api_url) on f's
 * files, with more arguments and "NAME=VALUE" / "NAME" (unset) env
 * entries (both NULL-ended or NULL).  Fixture plugins come first in the
 * plugin path; KERUTA_* settings of the caller's environment do not leak
 * in.  The result goes to *res; then f->events, f->termtext and f->log
 * hold what the run left.  Returns kt_run's answer (0: it ran).
 */
int kf_run(kf *f, kt_result *res, const char *cmd, const char *const *args,
           const char *const *env, int timeout_s);
/* The same started, not waited for; kf_wait collects it as kf_run does. */
pid_t kf_spawn(kf *f, const char *cmd, const char *const *args, const char *const *env,
               int *out_fd, int *err_fd);
int kf_wait(kf *f, kt_result *res, pid_t pid, int out_fd, int err_fd, int timeout_s);

#endif
