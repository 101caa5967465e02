/*
 * proc_env.c - the environment a child is started with: the agent's,
 * less the credentials only the agent may read, then the task's, then
 * the process's own.
 */
#include "proc_env.h"

#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "chan.h"

extern char **environ;

static size_t name_len(const char *e)
{
	const char *eq = strchr(e, '=');
	return eq ? (size_t)(eq - e) : strlen(e);
}

/* Later entries replace earlier ones with the same name; "NAME" alone
 * removes NAME. */
static void env_put(char ***env, size_t *n, size_t *cap, const char *e)
{
	size_t nl = name_len(e);
	if (nl == 0)
		return;
	for (size_t i = 0; i < *n; i++) {
		if (name_len((*env)[i]) == nl && memcmp((*env)[i], e, nl) == 0) {
			if (e[nl] == '=') {
				(*env)[i] = (char *)e;
			} else {
				(*env)[i] = (*env)[--*n];
				(*env)[*n] = NULL;
			}
			return;
		}
	}
	if (e[nl] != '=')
		return;
	if (*n + 2 > *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*env = kr_realloc(*env, *cap * sizeof(**env));
	}
	(*env)[(*n)++] = (char *)e;
	(*env)[*n] = NULL;
}

/*
 * Credentials the agent reads from its environment, kept from every
 * child: a task script is user code (doc/lifecycle.md).  The clone
 * stage's variables are read by the agent itself (libgit2), never by a
 * child; the repository cache, shared by all tasks, is not the task's.
 */
static const char *const agent_only[] = {
        "KERUTA_API_TOKEN",         "KERUTA_API_TOKEN_FILE",
        "KERUTA_GIT_TOKEN",         "KERUTA_GIT_TOKEN_FILE",
        "KERUTA_GIT_PASSWORD",      "KERUTA_GIT_PASSWORD_FILE",
        "KERUTA_GIT_USERNAME",      "KERUTA_GIT_SSH_KEY_FILE",
        "KERUTA_GIT_SSH_PASSPHRASE", "KERUTA_GIT_SSH_PASSPHRASE_FILE",
        "KERUTA_GIT_KNOWN_HOSTS",   "KERUTA_GIT_CACHE", NULL};

static int agent_only_entry(const char *e, const char *token)
{
	size_t nl = name_len(e);
	for (const char *const *k = agent_only; *k; k++)
		if (strlen(*k) == nl && memcmp(*k, e, nl) == 0)
			return 1;
	/* the token under another name is still the token */
	return token && *token && e[nl] == '=' && strstr(e + nl + 1, token);
}

char **kr_proc_env(struct kr_agent *a, const kr_task *t, const kr_process *p, char **owned)
{
	char **env = NULL;
	size_t n = 0, cap = 0;
	const char *token = a ? kr_settings_get(a->settings, KR_S_API_TOKEN) : NULL;
	int pass = a && kr_settings_bool(a->settings, KR_S_PASS_API_TOKEN);
	for (char **e = environ; e && *e; e++)
		if (!agent_only_entry(*e, token))
			env_put(&env, &n, &cap, *e);
	owned[0] = owned[1] = NULL;
	if (pass && token && *token)
		env_put(&env, &n, &cap, owned[0] = kr_asprintf("KERUTA_API_TOKEN=%s", token));
	size_t tn = kr_task_list_count(t, KR_TASK_ENV);
	for (size_t i = 0; i < tn; i++)
		env_put(&env, &n, &cap, kr_task_list_item(t, KR_TASK_ENV, i));
	for (const char *const *e = p->env; e && *e; e++)
		env_put(&env, &n, &cap, *e);
	if (a && a->chan) {
		owned[1] = kr_asprintf("KERUTA_AGENT_SOCKET=%s", kr_chan_path(a->chan));
		env_put(&env, &n, &cap, owned[1]);
	}
	if (!env)
		env = kr_calloc(1, sizeof(*env));
	return env;
}
