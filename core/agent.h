/*
 * agent.h - one run of a task command: settings, pipeline, plugins,
 * backend and task context, and the services handed to plugins.
 */
#ifndef KR_AGENT_H
#define KR_AGENT_H

#include <pthread.h>
#include <stdarg.h>

#include "backend.h"
#include "keruta/plugin.h"
#include "loader.h"
#include "pipeline.h"
#include "reason.h"
#include "settings.h"
#include "task.h"

typedef struct kr_agent {
	const char *command;    /* "execute", "init", "run" or "cleanup" */
	kr_settings *settings;  /* owned                                 */
	kr_pipeline *pipeline;  /* owned                                 */
	kr_loader loader;
	kr_backend *backend;    /* owned; NULL until created             */
	kr_task *task;          /* owned                                 */
	kr_reason reason;       /* the running stage's fail() message    */
	int status_sent;        /* a final status reached the backend    */
	struct kr_chan *chan;   /* owned; the task channel, or NULL      */
	int chan_tried;         /* opened once, at the first child       */
	char reported[64];      /* terminal status keruta-api holds from
	                           the agent ("" when none)              */
	char late_note[512];    /* a failure after the terminal status   */
	int prior;              /* an earlier process left an outcome    */
	char prior_status[64], prior_stage[128], prior_reason[1024], prior_code[64];
	int no_api;             /* keruta-api is out of reach            */
} kr_agent;

/* The table every plugin gets. */
extern const kr_services kr_services_table;
/* The reason an init callback gave with fail(NULL, ...); cleared on read.
 * Non-zero if there was one. */
int kr_services_take_init_reason(char *out, size_t n);

/* Search path for plugins, in the documented order. */
void kr_agent_plugin_dirs(kr_loader *l, const kr_settings *s, const kr_pipeline *p);

/* Run a task command; returns the process exit code. */
int kr_agent_run(kr_agent *a, kr_error *err);

#endif
