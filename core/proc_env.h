/*
 * proc_env.h - a child's environment (proc_env.c).
 */
#ifndef KR_PROC_ENV_H
#define KR_PROC_ENV_H

#include "keruta/plugin.h"

struct kr_agent;

/*
 * The agent's environment without the credentials only the agent reads,
 * then the API token when pass_api_token_to_tasks says so, the task's
 * "env" list, p->env and the task channel's socket; a later NAME=VALUE
 * replaces an earlier one, a bare NAME removes it.  a may be NULL.
 * The array is the caller's to free(); its strings are borrowed, but for
 * owned[0] and owned[1] (NULL or malloc'd, the caller's to free), which
 * must outlive it.
 */
char **kr_proc_env(struct kr_agent *a, const kr_task *t, const kr_process *p, char **owned);

#endif
