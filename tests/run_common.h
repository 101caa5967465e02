/*
 * run_common.h - helpers shared by the execute-stage tests, over the
 * shared fixture (tests/lib/fixture.h): a pipeline of one execute stage,
 * and the events the agent wrote (<work>/.keruta/events.jsonl).
 */
#ifndef RUN_COMMON_H
#define RUN_COMMON_H

#include <stddef.h>
#include <sys/types.h>

#include "fixture.h"
#include "krtest.h"

/* A pipeline whose execute phase is one execute stage; `with` is the
 * YAML of its with: block (indented by the caller), `extra` more text
 * at the top level (e.g. a settings: block) or NULL. */
void rt_simple_pipeline(kf *r, const char *with, const char *extra);

/* One log event. */
typedef struct rt_line {
	char stream[16];
	char *text; /* unescaped; may hold NUL bytes */
	size_t len;
} rt_line;

/* Calls fn for every log event in order; returns the number of events
 * (-1 if the file is missing).  status events go to fn with stream
 * "status" and text "STATUS\tmessage". */
long rt_events_each(kf *r, void (*fn)(void *ctx, const rt_line *l), void *ctx);
/* The log lines of one stream ("stdout", "stderr", "agent", "status"). */
size_t rt_lines(kf *r, const char *stream, rt_line **out);
void rt_lines_free(rt_line *l, size_t n);
/* The last status event as "STATUS\tmessage" (caller frees) or NULL. */
char *rt_final_status(kf *r);

/* Is a process still there (zombies count as there)? */
int rt_alive(pid_t pid);
/* Read a pid written by a child into work/name. */
pid_t rt_read_pid(kf *r, const char *name);

#endif
