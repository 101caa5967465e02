/*
 * task.h - the task context that travels from stage to stage: typed
 * fields (see the KR_TASK_* keys in keruta/plugin.h), three lists and a
 * free key/value store for keys with a dot.  Thread-safe.
 *
 * Ownership: the task owns every string in it.  A value replaced by
 * kr_task_set is kept until kr_task_release_retired(), which the runner
 * calls between stages, so a pointer a plugin got from task_get stays
 * valid until its run() returns, as the plugin header promises.
 */
#ifndef KR_TASK_H
#define KR_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "keruta/plugin.h"
#include "util.h"

struct kr_agent;

/* Kept by the runner: "STAGE DURATION[ (failed)]" of each stage that ran,
 * comma-separated, in order; unset until a stage has run. */
#define KR_TASK_STAGE_TIMES "agent.stage_times"

kr_task *kr_task_new(void);
void kr_task_free(kr_task *t);

/* NULL if unset or unknown. */
const char *kr_task_get(const kr_task *t, const char *key);
/* KR_OK, or KR_FAILED for an unknown key without a dot.  NULL unsets. */
int kr_task_set(kr_task *t, const char *key, const char *value);
int kr_task_is_field(const char *key);

size_t kr_task_list_count(const kr_task *t, const char *list);
const char *kr_task_list_item(const kr_task *t, const char *list, size_t i);
int kr_task_list_add(kr_task *t, const char *list, const char *value);

void kr_task_release_retired(kr_task *t);

/* The agent running the task, for services; set once by the agent. */
void kr_task_set_agent(kr_task *t, struct kr_agent *agent);
struct kr_agent *kr_task_agent(const kr_task *t);

/* The stage now running (for log prefixes) and its deadline. */
void kr_task_set_stage(kr_task *t, const char *stage, uint64_t deadline_ms);
const char *kr_task_stage(const kr_task *t);
uint64_t kr_task_deadline(const kr_task *t);

/* Every field and list, for `--log-level debug` and the local backend. */
typedef void (*kr_task_visit)(void *ctx, const char *key, const char *value);
void kr_task_each(const kr_task *t, kr_task_visit fn, void *ctx);

#endif
