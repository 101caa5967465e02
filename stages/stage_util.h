/*
 * stage_util.h - small helpers the built-in stages share.  Each stage
 * stays one shared object that needs nothing but the plugin interface:
 * what is not inline here is a source file compiled into each stage that
 * uses it (task_env.c).
 */
#ifndef KR_STAGE_UTIL_H
#define KR_STAGE_UTIL_H

#include <stdint.h>
#include <stdio.h>

/* A duration as an operator would write it in the pipeline: 2h, 90s, 250ms. */
static inline void kr_stage_format_ms(uint64_t ms, char *out, size_t n)
{
	if (ms % 3600000 == 0 && ms)
		snprintf(out, n, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms)
		snprintf(out, n, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(out, n, "%llums", (unsigned long long)ms);
}

struct kr_services;
struct kr_task;

/* The environment of a task's script (task_env.c): KERUTA_TASK_ID, _TITLE,
 * _DESCRIPTION, _PRIORITY, _STATUS, _CREATED_AT, _UPDATED_AT, then the
 * task's own entries; a value over `max` bytes is cut and its full text
 * written under <area>/env/.  A NULL-terminated array the caller frees
 * with kr_stage_env_free(); NULL after svc->fail(). */
char **kr_stage_task_env(const struct kr_services *svc, struct kr_task *t, const char *area,
                         size_t max);
void kr_stage_env_free(char **env);

#endif
