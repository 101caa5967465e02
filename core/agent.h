/*
 * agent.h - one run of a task command: settings, pipeline, plugins,
 * backend and task context, and the services handed to plugins.
 */
#ifndef KR_AGENT_H
#define KR_AGENT_H

#include "backend.h"
#include "keruta/plugin.h"
#include "loader.h"
#include "pipeline.h"
#include "settings.h"
#include "task.h"

typedef struct kr_agent {
	const char *command;    /* "execute", "init", "run" or "cleanup" */
	kr_settings *settings;  /* owned                                 */
	kr_pipeline *pipeline;  /* owned                                 */
	kr_loader loader;
	kr_backend *backend;    /* owned; NULL until created             */
	kr_task *task;          /* owned                                 */
	char reason[2048];      /* the running stage's fail() message    */
	int reason_set;
	int status_sent;        /* a final status reached the backend    */
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
