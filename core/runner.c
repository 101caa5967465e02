/* runner.c - see runner.h. */
#include "runner.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "supervise.h"

int kr_runner_load(kr_runner *r, const kr_pipeline *p, const kr_phase *phase, kr_loader *l,
                   kr_error *err)
{
	memset(r, 0, sizeof(*r));
	r->pipeline = p;
	r->phase = phase;
	r->runs = kr_calloc(phase->n ? phase->n : 1, sizeof(*r->runs));
	for (size_t i = 0; i < phase->n; i++) {
		const kr_stage_def *d = phase->stages[i];
		kr_stage_run *run = &r->runs[i];
		run->def = d;
		run->plugin = kr_loader_load(l, d->plugin, err);
		if (!run->plugin)
			return kr_error_wrap(err, 0, "%s:%d:%d: stage '%s'", p->path,
			                     d->plugin_node->line, d->plugin_node->col, d->name);
		if (kr_config_check(p->path, d->name, run->plugin->desc->options, d->with,
		                    d->plugin_node, err))
			return -1;
		run->cfg.stage = d->name;
		run->cfg.options = run->plugin->desc->options;
		run->cfg.with = d->with;
		kr_loader_config_prepare(&run->cfg);
		r->n++;
	}
	return 0;
}

int kr_runner_init(kr_runner *r, kr_agent *a, kr_error *err)
{
	for (size_t i = 0; i < r->n; i++) {
		kr_stage_run *run = &r->runs[i];
		const kr_plugin *pl = run->plugin->desc;
		if (!pl->init) {
			run->inited = 1;
			continue;
		}
		kr_reason_take(&a->reason, NULL, 0);
		kr_task_set_stage(a->task, run->def->name, 0);
		char init_reason[sizeof(a->reason.text)];
		kr_services_take_init_reason(init_reason, sizeof(init_reason));
		int rc = pl->init(&kr_services_table, &run->cfg, &run->state);
		int had = kr_services_take_init_reason(init_reason, sizeof(init_reason));
		if (rc < 0) {
			kr_error_set(err, KR_EXIT_USAGE, "stage '%s' (plugin %s): init failed: %s",
			             run->def->name, run->plugin->path,
			             had ? init_reason : "the plugin gave no reason");
			return -1;
		}
		run->inited = 1;
	}
	return 0;
}

static const char *when_name(kr_when w)
{
	return w == KR_WHEN_ALWAYS ? "always" : w == KR_WHEN_ON_FAILURE ? "on_failure" : "on_success";
}

/* "clone 1.20s, execute 3.01s (failed)" in the task, for the closing
 * summary: the stages that ran, in order, with their durations. */
static void note_time(kr_task *t, const char *stage, const char *dur, int ok)
{
	const char *was = kr_task_get(t, KR_TASK_STAGE_TIMES);
	char *now = kr_asprintf("%s%s%s %s%s", was ? was : "", was ? ", " : "", stage, dur,
	                        ok ? "" : " (failed)");
	kr_task_set(t, KR_TASK_STAGE_TIMES, now);
	free(now);
}

int kr_runner_run(kr_runner *r, kr_agent *a)
{
	int failed = 0;
	/* the exit code as it was when the first stage failed (owned): a stage
	 * run after that (when: always) must not change the one reported
	 * next to the first failure's stage and reason */
	char *failed_exit_code = NULL;
	kr_task *t = a->task;
	for (size_t i = 0; i < r->n; i++) {
		kr_stage_run *run = &r->runs[i];
		const kr_stage_def *d = run->def;
		int signalled = kr_supervise_signal() != 0;
		int should = d->when == KR_WHEN_ALWAYS ||
		             (d->when == KR_WHEN_ON_SUCCESS && !failed && !signalled) ||
		             (d->when == KR_WHEN_ON_FAILURE && (failed || signalled));
		if (!should) {
			kr_log(KR_LOG_INFO, d->name, "skipped (when: %s, %s)", when_name(d->when),
			       failed || signalled ? "an earlier stage failed" : "no stage failed");
			continue;
		}
		uint64_t start = kr_now_ms();
		uint64_t deadline = d->timeout_ms ? start + d->timeout_ms : 0;
		if (signalled) {
			/* after SIGTERM, a stage gets what is left of the grace period */
			uint64_t end = kr_supervise_signal_time() + kr_supervise_grace_ms();
			if (!deadline || end < deadline)
				deadline = end;
		}
		kr_reason_take(&a->reason, NULL, 0);
		kr_task_set_stage(t, d->name, deadline);
		kr_supervise_stage_begin(deadline);
		kr_log(KR_LOG_INFO, d->name, "started (plugin %s)", run->plugin->name);
		int rc = run->plugin->desc->run(&kr_services_table, run->state, t);
		int cancel = kr_supervise_cancelled();
		kr_supervise_stage_end();
		uint64_t took = kr_now_ms() - start;
		char dur[32];
		kr_format_ms(took, dur, sizeof(dur));
		/* KR_OK and KR_SKIPPED are the only passes: any other positive
		 * code (KR_NOT_FOUND is a services answer) is a plugin bug, and
		 * letting it pass would hide a stage that did not do its work */
		int passed = rc == KR_OK || rc == KR_SKIPPED;
		note_time(t, d->name, dur, passed);

		if (passed) {
			if (rc == KR_SKIPPED)
				kr_log(KR_LOG_INFO, d->name, "passed in %s (nothing to do)", dur);
			else
				kr_log(KR_LOG_INFO, d->name, "passed in %s", dur);
		} else {
			char given[sizeof(a->reason.text)];
			int had = kr_reason_take(&a->reason, given, sizeof(given));
			char reason[sizeof(given) + 128];
			char limit[32];
			if (cancel == KR_CANCEL_SIGNAL) {
				int sig = kr_supervise_signal();
				snprintf(reason, sizeof(reason), "terminated by %s%s%s",
				         sig == SIGINT ? "SIGINT" : "SIGTERM", had ? ": " : "",
				         had ? given : "");
			} else if (cancel == KR_CANCEL_TIMEOUT && signalled &&
			           (!d->timeout_ms || took < d->timeout_ms)) {
				snprintf(reason, sizeof(reason),
				         "did not finish within the grace period after %s%s%s",
				         kr_supervise_signal() == SIGINT ? "SIGINT" : "SIGTERM",
				         had ? ": " : "", had ? given : "");
			} else if (cancel == KR_CANCEL_TIMEOUT) {
				kr_format_ms(d->timeout_ms, limit, sizeof(limit));
				snprintf(reason, sizeof(reason), "timed out after %s%s%s", limit,
				         had ? ": " : "", had ? given : "");
			} else if (had) {
				snprintf(reason, sizeof(reason), "%s", given);
			} else if (rc > 0) {
				snprintf(reason, sizeof(reason),
				         "the plugin returned an unknown result (%d); run() returns KR_OK, "
				         "KR_SKIPPED or a failure: fix the plugin", rc);
			} else {
				snprintf(reason, sizeof(reason), "the plugin returned an error (%d) without a reason", rc);
			}
			kr_log(KR_LOG_ERROR, d->name, "failed in %s: %s", dur, reason);
			if (!failed) {
				kr_task_set(t, KR_TASK_FAILED_STAGE, d->name);
				kr_task_set(t, KR_TASK_REASON, reason);
				const char *code = kr_task_get(t, KR_TASK_EXIT_CODE);
				failed_exit_code = code ? kr_strdup(code) : NULL;
			}
			failed = 1;
		}
		kr_task_release_retired(t);
	}
	kr_task_set_stage(t, NULL, 0);
	if (failed)
		kr_task_set(t, KR_TASK_EXIT_CODE, failed_exit_code);
	free(failed_exit_code);
	if (!failed && kr_supervise_signal()) {
		/* signalled between stages: the task did not finish */
		kr_task_set(t, KR_TASK_FAILED_STAGE, "agent");
		kr_task_set(t, KR_TASK_REASON,
		            kr_supervise_signal() == SIGINT ? "terminated by SIGINT" : "terminated by SIGTERM");
		failed = 1;
	}
	return failed ? KR_EXIT_TASK_FAILED : KR_EXIT_OK;
}

void kr_runner_fini(kr_runner *r)
{
	for (size_t i = r->n; i-- > 0;) {
		kr_stage_run *run = &r->runs[i];
		if (run->inited && run->plugin->desc->fini)
			run->plugin->desc->fini(&kr_services_table, run->state);
		run->inited = 0;
		kr_loader_config_release(&run->cfg);
	}
	free(r->runs);
	memset(r, 0, sizeof(*r));
}
