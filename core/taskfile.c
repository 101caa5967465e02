/*
 * taskfile.c - the task record (API JSON or local task file) into the
 * task context.  One mapping for both backends, so a task behaves the
 * same whichever way it arrives.
 *
 * Field names follow keruta-api: id, title (or name), description,
 * priority, status, createdAt, updatedAt, repositoryId, parentId (or
 * parentTaskId), documentIds (or documents: ids or {id,...} objects),
 * env (or environment; a mapping), script / executeScript, installScript,
 * cleanupScript, command (a list: program and arguments, run in place of
 * the script), and repository: {id, url, branch|ref}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "task.h"

static int type_error(kr_error *err, const char *name, const char *field, const kr_node *n,
                      const char *want)
{
	kr_error_set(err, KR_EXIT_TASK_FAILED, "%s: field '%s' must be %s, not %s (line %d)", name,
	             field, want, kr_node_type_name(n), n->line);
	return -1;
}

/* A scalar field copied into the context; null counts as absent. */
static int scalar(kr_task *t, const kr_node *task, const char *name, const char *field,
                  const char *key, kr_error *err)
{
	const kr_node *n = kr_node_get(task, field);
	if (!n || kr_node_is_null(n))
		return 0;
	if (n->type != KR_NODE_SCALAR)
		return type_error(err, name, field, n, "a string or number");
	if (strlen(n->value) != n->value_len) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "%s: field '%s' contains a NUL byte", name, field);
		return -1;
	}
	kr_task_set(t, key, n->value);
	return 1;
}

static int script(kr_task *t, const kr_node *task, const char *name, const char *field,
                  const char *key, kr_error *err)
{
	const kr_node *n = kr_node_get(task, field);
	if (n && n->type == KR_NODE_MAP) /* {path: FILE}: read by the local backend */
		return 0;
	return scalar(t, task, name, field, key, err);
}

/* `command: [prog, arg...]`: the task's own argv, run by the execute
 * stage in place of its script (seed: a command per task). */
static int command(kr_task *t, const kr_node *task, const char *name, kr_error *err)
{
	const kr_node *n = kr_node_get(task, "command");
	if (!n || kr_node_is_null(n))
		return 0;
	if (n->type != KR_NODE_SEQ || n->n == 0)
		return type_error(err, name, "command", n, "a non-empty list of strings (program, arguments)");
	for (size_t i = 0; i < n->n; i++) {
		const kr_node *a = n->items[i];
		if (a->type != KR_NODE_SCALAR || kr_node_is_null(a) || strlen(a->value) != a->value_len ||
		    (i == 0 && !*a->value)) {
			kr_error_set(err, KR_EXIT_TASK_FAILED,
			             "%s: entry %zu of 'command' must be a string without NUL bytes%s "
			             "(line %d)",
			             name, i + 1, i == 0 ? ", and the program not empty" : "", a->line);
			return -1;
		}
	}
	for (size_t i = 0; i < n->n; i++)
		kr_task_list_add(t, KR_TASK_COMMAND, n->items[i]->value);
	return 0;
}

int kr_task_fill_repository(kr_task *t, const kr_node *repo, const char *name, kr_error *err)
{
	if (repo->type != KR_NODE_MAP)
		return type_error(err, name, "repository", repo, "a mapping");
	if (scalar(t, repo, name, "id", KR_TASK_REPOSITORY_ID, err) < 0 ||
	    scalar(t, repo, name, "url", KR_TASK_REPOSITORY_URL, err) < 0 ||
	    scalar(t, repo, name, "branch", KR_TASK_REPOSITORY_REF, err) < 0 ||
	    scalar(t, repo, name, "ref", KR_TASK_REPOSITORY_REF, err) < 0)
		return -1;
	return 0;
}

int kr_task_fill_from_node(kr_task *t, const kr_node *task, const char *name, kr_error *err)
{
	if (task->type != KR_NODE_MAP) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "%s: a task must be a mapping (object), not %s",
		             name, kr_node_type_name(task));
		return -1;
	}
	const kr_node *id = kr_node_get(task, "id");
	if (!id || kr_node_is_null(id)) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "%s: the task has no 'id' field", name);
		return -1;
	}
	static const struct {
		const char *field, *key;
	} scalars[] = {{"id", KR_TASK_ID},
	               {"name", KR_TASK_TITLE},
	               {"title", KR_TASK_TITLE},
	               {"description", KR_TASK_DESCRIPTION},
	               {"priority", KR_TASK_PRIORITY},
	               {"status", KR_TASK_STATUS},
	               {"createdAt", KR_TASK_CREATED_AT},
	               {"updatedAt", KR_TASK_UPDATED_AT},
	               {"repositoryId", KR_TASK_REPOSITORY_ID},
	               {"parentTaskId", KR_TASK_PARENT_ID},
	               {"parentId", KR_TASK_PARENT_ID}};
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++)
		if (scalar(t, task, name, scalars[i].field, scalars[i].key, err) < 0)
			return -1;
	if (script(t, task, name, "script", KR_TASK_SCRIPT_EXECUTE, err) < 0 ||
	    script(t, task, name, "executeScript", KR_TASK_SCRIPT_EXECUTE, err) < 0 ||
	    script(t, task, name, "installScript", KR_TASK_SCRIPT_INSTALL, err) < 0 ||
	    script(t, task, name, "cleanupScript", KR_TASK_SCRIPT_CLEANUP, err) < 0)
		return -1;

	const kr_node *docs = kr_node_get(task, "documentIds");
	const char *docs_field = "documentIds";
	if (!docs) {
		docs = kr_node_get(task, "documents");
		docs_field = "documents";
	}
	if (docs && !kr_node_is_null(docs)) {
		if (docs->type != KR_NODE_SEQ)
			return type_error(err, name, docs_field, docs, "a list");
		for (size_t i = 0; i < docs->n; i++) {
			const kr_node *d = docs->items[i];
			if (d->type == KR_NODE_MAP)
				d = kr_node_get(d, "id");
			if (!d || d->type != KR_NODE_SCALAR || kr_node_is_null(d)) {
				kr_error_set(err, KR_EXIT_TASK_FAILED,
				             "%s: entry %zu of '%s' must be an id or an object with an 'id'",
				             name, i + 1, docs_field);
				return -1;
			}
			kr_task_list_add(t, KR_TASK_DOCUMENT_IDS, d->value);
		}
	}

	const kr_node *env = kr_node_get(task, "env");
	const char *env_field = "env";
	if (!env) {
		env = kr_node_get(task, "environment");
		env_field = "environment";
	}
	if (env && !kr_node_is_null(env)) {
		if (env->type != KR_NODE_MAP)
			return type_error(err, name, env_field, env, "a mapping of names to values");
		for (size_t i = 0; i < env->n; i++) {
			const char *k = env->keys[i]->value;
			const kr_node *v = env->items[i];
			int ok = *k && !strchr(k, '=') && strlen(k) < 256;
			if (!ok || v->type != KR_NODE_SCALAR) {
				kr_error_set(err, KR_EXIT_TASK_FAILED,
				             "%s: '%s' entry '%s' must be NAME: value with a NAME free of '='",
				             name, env_field, k);
				return -1;
			}
			char *entry = kr_asprintf("%s=%s", k, v->value);
			kr_task_list_add(t, KR_TASK_ENV, entry);
			free(entry);
		}
	}

	if (command(t, task, name, err))
		return -1;

	const kr_node *repo = kr_node_get(task, "repository");
	if (repo && !kr_node_is_null(repo) && kr_task_fill_repository(t, repo, name, err))
		return -1;
	return 0;
}
