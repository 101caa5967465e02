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
 * the script), and repository: a URL or {id, url, branch|ref}.
 *
 * A task file written by a person is checked strictly first
 * (kr_taskfile_load): a typo must not quietly skip the clone.  Records
 * from keruta-api go straight to kr_task_fill_from_node, which ignores
 * fields it does not know: a server may add fields.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "node.h"
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
	if (repo && repo->type == KR_NODE_SCALAR && !kr_node_is_null(repo)) {
		kr_task_set(t, KR_TASK_REPOSITORY_URL, repo->value); /* repository: URL */
		return 0;
	}
	if (repo && !kr_node_is_null(repo) && kr_task_fill_repository(t, repo, name, err))
		return -1;
	return 0;
}

/* ------------------------------------------------ the task file's schema */

typedef enum kind {
	K_TEXT,      /* a string or number                                 */
	K_SOURCE,    /* text, {path: FILE} or {content: TEXT}               */
	K_ENV,       /* NAME: string                                       */
	K_DOCUMENTS, /* a list of ids or {id, name, path|content}           */
	K_IDS,       /* a list of ids                                       */
	K_REPO,      /* a URL or {id, name, url, branch|ref}                */
	K_STRINGS,   /* a list of strings                                   */
	K_RESOURCES, /* {requests: {NAME: Q}, limits: {NAME: Q}}            */
} kind;

/* Every key a task file may hold; adding a field is one line here (and
 * its use where the field is read). */
static const struct {
	const char *key;
	kind kind;
} task_keys[] = {
        {"id", K_TEXT},
        {"title", K_TEXT},
        {"name", K_TEXT},
        {"description", K_TEXT},
        {"priority", K_TEXT},
        {"status", K_TEXT},
        {"createdAt", K_TEXT},
        {"updatedAt", K_TEXT},
        {"repositoryId", K_TEXT},
        {"parentId", K_TEXT},
        {"parentTaskId", K_TEXT},
        {"repository", K_REPO},
        {"documents", K_DOCUMENTS},
        {"documentIds", K_IDS},
        {"env", K_ENV},
        {"environment", K_ENV},
        {"script", K_SOURCE},
        {"executeScript", K_SOURCE},
        {"installScript", K_SOURCE},
        {"cleanupScript", K_SOURCE},
        /* read by render and dispatch */
        {"image", K_TEXT},
        {"resources", K_RESOURCES},
        {"command", K_STRINGS},
        {"pvcStorageSize", K_TEXT},
        {"pvcAccessMode", K_TEXT},
        {"pvcStorageClass", K_TEXT},
        {"pvcName", K_TEXT},
};
#define N_TASK_KEYS (sizeof(task_keys) / sizeof(task_keys[0]))

/* Keys that name one field twice: a file gives one of each pair. */
static const char *const synonyms[][2] = {{"title", "name"},
                                          {"executeScript", "script"},
                                          {"env", "environment"},
                                          {"parentId", "parentTaskId"},
                                          {"documents", "documentIds"}};

static const char *const source_keys[] = {"path", "content"};
static const char *const document_keys[] = {"id", "name", "path", "content"};
static const char *const repo_keys[] = {"id",  "name",           "url",           "branch",
                                        "ref", "pvcStorageSize", "pvcAccessMode", "pvcStorageClass",
                                        "pvcName"};
static const char *const resource_keys[] = {"requests", "limits"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct check {
	const char *file;
	const char *base; /* the task file's directory, for {path: FILE} */
	kr_error *err;
} check;

static int bad(check *c, const kr_node *n, const char *what, const char *want)
{
	kr_error_set(c->err, KR_EXIT_USAGE, "%s:%d:%d: %s must be %s, not %s", c->file, n->line,
	             n->col, what, want, kr_node_is_null(n) ? "empty" : kr_node_type_name(n));
	return -1;
}

static int text(check *c, const kr_node *n, const char *what)
{
	if (n->type != KR_NODE_SCALAR || kr_node_is_null(n))
		return bad(c, n, what, "a string");
	if (strlen(n->value) != n->value_len) {
		kr_error_set(c->err, KR_EXIT_USAGE, "%s:%d:%d: %s contains a NUL byte", c->file,
		             n->line, n->col, what);
		return -1;
	}
	return 0;
}

static int known_keys(check *c, const kr_node *map, const char *where, const char *const *valid,
                      size_t n)
{
	for (size_t i = 0; i < map->n; i++) {
		size_t k = 0;
		while (k < n && strcmp(map->keys[i]->value, valid[k]) != 0)
			k++;
		if (k == n) {
			kr_error_unknown_key(c->err, c->file, map->keys[i], where, valid, n);
			return -1;
		}
	}
	return 0;
}

/* {path: FILE} must name a readable regular file now, not when the stage
 * that needs it comes (after a clone of minutes). */
static int path_ok(check *c, const kr_node *p, const char *what)
{
	if (text(c, p, what))
		return -1;
	char *full = p->value[0] == '/' ? kr_strdup(p->value)
	                                : kr_asprintf("%s/%s", c->base, p->value);
	struct stat st;
	const char *why = NULL;
	if (stat(full, &st) != 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (access(full, R_OK) != 0)
		why = strerror(errno);
	int rc = 0;
	if (why) {
		kr_error_set(c->err, KR_EXIT_USAGE,
		             "%s:%d:%d: %s: cannot read '%s': %s (paths are relative to the task "
		             "file's directory, %s)",
		             c->file, p->line, p->col, what, full, why, c->base);
		rc = -1;
	}
	free(full);
	return rc;
}

static int source(check *c, const kr_node *n, const char *what, const char *const *keys,
                  size_t n_keys)
{
	if (n->type != KR_NODE_MAP)
		return bad(c, n, what, "text, {path: FILE} or {content: TEXT}");
	char *where = kr_asprintf("in %s", what);
	int rc = known_keys(c, n, where, keys, n_keys);
	free(where);
	if (rc)
		return -1;
	const kr_node *path = kr_node_get(n, "path"), *content = kr_node_get(n, "content");
	if (path && content) {
		kr_error_set(c->err, KR_EXIT_USAGE, "%s:%d:%d: %s has both 'path' and 'content'; keep one",
		             c->file, n->line, n->col, what);
		return -1;
	}
	if (!path && !content) {
		kr_error_set(c->err, KR_EXIT_USAGE,
		             "%s:%d:%d: %s needs 'path: FILE' or 'content: TEXT'", c->file, n->line,
		             n->col, what);
		return -1;
	}
	if (content && (content->type != KR_NODE_SCALAR || strlen(content->value) != content->value_len))
		return bad(c, content, "'content'", "text");
	return path ? path_ok(c, path, what) : 0;
}

static int check_value(check *c, const char *key, kind k, const kr_node *v)
{
	char what[96];
	snprintf(what, sizeof(what), "'%s'", key);
	switch (k) {
	case K_TEXT:
		return text(c, v, what);
	case K_SOURCE:
		if (v->type == KR_NODE_SCALAR)
			return text(c, v, what);
		return source(c, v, what, source_keys, N(source_keys));
	case K_ENV:
		if (v->type != KR_NODE_MAP)
			return bad(c, v, what, "a mapping of NAME: value");
		for (size_t i = 0; i < v->n; i++) {
			const kr_node *k2 = v->keys[i];
			if (!*k2->value || strchr(k2->value, '=') || strlen(k2->value) >= 256) {
				kr_error_set(c->err, KR_EXIT_USAGE,
				             "%s:%d:%d: '%s' name '%s' must be 1 to 255 characters without '='",
				             c->file, k2->line, k2->col, key, k2->value);
				return -1;
			}
			const kr_node *val = v->items[i];
			if (val->type != KR_NODE_SCALAR || kr_node_is_null(val)) {
				kr_error_set(c->err, KR_EXIT_USAGE,
				             "%s:%d:%d: '%s.%s' must be a string, not %s (write '' for an "
				             "empty value)",
				             c->file, val->line, val->col, key, k2->value,
				             kr_node_is_null(val) ? "empty" : kr_node_type_name(val));
				return -1;
			}
			snprintf(what, sizeof(what), "'%s.%s'", key, k2->value);
			if (text(c, val, what))
				return -1;
		}
		return 0;
	case K_IDS:
	case K_STRINGS:
		if (v->type != KR_NODE_SEQ)
			return bad(c, v, what, k == K_IDS ? "a list of ids" : "a list of strings");
		for (size_t i = 0; i < v->n; i++) {
			snprintf(what, sizeof(what), "entry %zu of '%s'", i + 1, key);
			if (text(c, v->items[i], what))
				return -1;
		}
		return 0;
	case K_DOCUMENTS:
		if (v->type != KR_NODE_SEQ)
			return bad(c, v, what, "a list of {id, name, path|content}");
		for (size_t i = 0; i < v->n; i++) {
			const kr_node *d = v->items[i];
			snprintf(what, sizeof(what), "document %zu", i + 1);
			if (d->type == KR_NODE_SCALAR) {
				if (text(c, d, what))
					return -1;
				continue;
			}
			if (d->type != KR_NODE_MAP)
				return bad(c, d, what, "an id or {id, name, path|content}");
			const kr_node *id = kr_node_get(d, "id");
			if (!id) {
				kr_error_set(c->err, KR_EXIT_USAGE, "%s:%d:%d: %s has no 'id'", c->file,
				             d->line, d->col, what);
				return -1;
			}
			/* any name: the document stage makes hostile ones safe */
			const kr_node *name = kr_node_get(d, "name");
			if (text(c, id, "a document's 'id'") ||
			    (name && name->type != KR_NODE_SCALAR && bad(c, name, "a document's 'name'", "a string")) ||
			    source(c, d, what, document_keys, N(document_keys)))
				return -1;
		}
		return 0;
	case K_REPO:
		if (v->type == KR_NODE_SCALAR)
			return text(c, v, what);
		if (v->type != KR_NODE_MAP)
			return bad(c, v, what, "a URL or {url, ref}");
		if (known_keys(c, v, "in 'repository'", repo_keys, N(repo_keys)))
			return -1;
		for (size_t i = 0; i < v->n; i++) {
			snprintf(what, sizeof(what), "'repository.%s'", v->keys[i]->value);
			if (text(c, v->items[i], what))
				return -1;
		}
		/* {id} alone is a keruta-api repository record (render, API mode);
		 * the clone stage says so if no URL is found for it. */
		if (!kr_node_get(v, "url") && !kr_node_get(v, "id")) {
			kr_error_set(c->err, KR_EXIT_USAGE,
			             "%s:%d:%d: 'repository' has no 'url'; give the URL or path to clone",
			             c->file, v->line, v->col);
			return -1;
		}
		if (kr_node_get(v, "branch") && kr_node_get(v, "ref")) {
			kr_error_set(c->err, KR_EXIT_USAGE,
			             "%s:%d:%d: 'repository' has both 'branch' and 'ref'; keep one", c->file,
			             v->line, v->col);
			return -1;
		}
		return 0;
	case K_RESOURCES:
		if (v->type != KR_NODE_MAP)
			return bad(c, v, what, "{requests: {...}, limits: {...}}");
		if (known_keys(c, v, "in 'resources'", resource_keys, N(resource_keys)))
			return -1;
		for (size_t i = 0; i < v->n; i++) {
			const kr_node *m = v->items[i];
			snprintf(what, sizeof(what), "'resources.%s'", v->keys[i]->value);
			if (m->type != KR_NODE_MAP)
				return bad(c, m, what, "a mapping like {cpu: 500m, memory: 1Gi}");
			for (size_t j = 0; j < m->n; j++) {
				snprintf(what, sizeof(what), "'resources.%s.%s'", v->keys[i]->value,
				         m->keys[j]->value);
				if (text(c, m->items[j], what))
					return -1;
			}
		}
		return 0;
	}
	return 0;
}

int kr_taskfile_check(const kr_node *task, const char *file, kr_error *err)
{
	const char *slash = strrchr(file, '/');
	char *base = slash ? kr_strndup(file, (size_t)(slash - file + (slash == file))) : kr_strdup(".");
	check c = {.file = file, .base = base, .err = err};
	int rc = -1;
	if (task->type != KR_NODE_MAP) {
		bad(&c, task, "a task file", "a mapping of fields (id:, title:, repository:, ...)");
		goto out;
	}
	const char *names[N_TASK_KEYS];
	for (size_t i = 0; i < N_TASK_KEYS; i++)
		names[i] = task_keys[i].key;
	if (known_keys(&c, task, "in the task", names, N_TASK_KEYS))
		goto out;
	for (size_t i = 0; i < task->n; i++) {
		const char *key = task->keys[i]->value;
		const kr_node *v = task->items[i];
		size_t k = 0;
		while (strcmp(task_keys[k].key, key) != 0)
			k++;
		/* null is "not given", as for a record from keruta-api */
		if (kr_node_is_null(v) && strcmp(key, "id") != 0)
			continue;
		if (check_value(&c, key, task_keys[k].kind, v))
			goto out;
	}
	for (size_t i = 0; i < N(synonyms); i++) {
		const kr_node *a = kr_node_get(task, synonyms[i][0]);
		const kr_node *b = kr_node_get(task, synonyms[i][1]);
		if (a && b) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s:%d:%d: '%s' and '%s' name the same field; keep one", file,
			             b->line, b->col, synonyms[i][0], synonyms[i][1]);
			goto out;
		}
	}
	if (!kr_node_get(task, "id")) {
		kr_error_set(err, KR_EXIT_USAGE, "%s: the task has no 'id'; add a line 'id: my-task'",
		             file);
		goto out;
	}
	rc = 0;
out:
	free(base);
	return rc;
}

int kr_taskfile_load(const char *file, kr_node **out, kr_error *err)
{
	*out = NULL;
	kr_node *n = NULL;
	if (kr_node_load_file(file, &n, err)) {
		err->code = KR_EXIT_USAGE;
		return -1;
	}
	if (kr_taskfile_check(n, file, err)) {
		kr_node_free(n);
		return -1;
	}
	*out = n;
	return 0;
}
