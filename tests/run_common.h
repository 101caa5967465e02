/*
 * run_common.h - helpers shared by the execute-stage tests: a scratch
 * work dir with a task file and a pipeline, a run of the real agent in
 * local mode, and the events it wrote (<work>/.keruta/events.jsonl).
 */
#ifndef RUN_COMMON_H
#define RUN_COMMON_H

#include <stddef.h>
#include <sys/types.h>

#include "krtest.h"

typedef struct rt {
	char *dir;      /* scratch root                 */
	char *work;     /* dir/w: the work dir          */
	char *task;     /* dir/task.yaml                */
	char *pipeline; /* dir/pipeline.yaml            */
	char *term;     /* dir/termination-log          */
	char *events;   /* work/.keruta/events.jsonl    */
} rt;

void rt_init(rt *r, const char *task_yaml);
void rt_free(rt *r);
void rt_write_pipeline(rt *r, const char *yaml);
/* A pipeline whose execute phase is one execute stage; `with` is the
 * YAML of its with: block (indented by the caller), `extra` more text
 * at the top level (e.g. a settings: block) or NULL. */
void rt_simple_pipeline(rt *r, const char *with, const char *extra);

/* The argv/env for a run; args_extra and env_extra are NULL-ended. */
int rt_agent(rt *r, kt_result *res, const char *const *args_extra, const char *const *env_extra,
             int timeout_s);
pid_t rt_agent_spawn(rt *r, const char *const *args_extra, const char *const *env_extra,
                     int *out_fd, int *err_fd);

/* One log event. */
typedef struct rt_line {
	char stream[16];
	char *text; /* unescaped; may hold NUL bytes */
	size_t len;
} rt_line;

/* Calls fn for every log event in order; returns the number of events
 * (-1 if the file is missing).  status events go to fn with stream
 * "status" and text "STATUS\tmessage". */
long rt_events_each(rt *r, void (*fn)(void *ctx, const rt_line *l), void *ctx);
/* The log lines of one stream ("stdout", "stderr", "agent", "status"). */
size_t rt_lines(rt *r, const char *stream, rt_line **out);
void rt_lines_free(rt_line *l, size_t n);
/* The last status event as "STATUS\tmessage" (caller frees) or NULL. */
char *rt_final_status(rt *r);

/* Is a process still there (zombies count as there)? */
int rt_alive(pid_t pid);
/* Read a pid written by a child into work/name. */
pid_t rt_read_pid(rt *r, const char *name);

#endif
