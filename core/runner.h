/*
 * runner.h - runs a phase's stages in order.
 *
 * Every plugin of the phase is loaded and every `with:` block checked
 * before any init runs, so a typo in the last stage stops the run before
 * the first stage touches anything.  A failed stage skips the on_success
 * stages after it; on_failure and always stages still run.  The first
 * failure is the task's: its stage and reason are kept in the task
 * context (failed_stage, reason).
 */
#ifndef KR_RUNNER_H
#define KR_RUNNER_H

#include "agent.h"
#include "options.h"

typedef struct kr_stage_run {
	const kr_stage_def *def;
	const kr_loaded *plugin;
	kr_config cfg;
	void *state;
	int inited;
} kr_stage_run;

typedef struct kr_runner {
	const kr_pipeline *pipeline;
	const kr_phase *phase;
	size_t n;
	kr_stage_run *runs; /* owned */
} kr_runner;

/* Load and check every stage of the phase. */
int kr_runner_load(kr_runner *r, const kr_pipeline *p, const kr_phase *phase, kr_loader *l,
                   kr_error *err);
/* Call every plugin's init; on failure, fini what was inited. */
int kr_runner_init(kr_runner *r, kr_agent *a, kr_error *err);
/* Run the stages.  Returns KR_EXIT_OK or KR_EXIT_TASK_FAILED. */
int kr_runner_run(kr_runner *r, kr_agent *a);
/* fini every inited stage and free the runner. */
void kr_runner_fini(kr_runner *r);

#endif
