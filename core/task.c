/* task.c - see task.h. */
#include "task.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const field_names[] = {
        KR_TASK_ID,             KR_TASK_TITLE,          KR_TASK_DESCRIPTION,
        KR_TASK_PRIORITY,       KR_TASK_STATUS,         KR_TASK_CREATED_AT,
        KR_TASK_UPDATED_AT,     KR_TASK_REPOSITORY_ID,  KR_TASK_REPOSITORY_URL,
        KR_TASK_REPOSITORY_REF, KR_TASK_PARENT_ID,      KR_TASK_WORK_DIR,
        KR_TASK_API_URL,        KR_TASK_COMMIT,         KR_TASK_EXIT_CODE,
        KR_TASK_FAILED_STAGE,   KR_TASK_REASON,         KR_TASK_SCRIPT_INSTALL,
        KR_TASK_SCRIPT_EXECUTE, KR_TASK_SCRIPT_CLEANUP};
#define N_FIELDS (sizeof(field_names) / sizeof(field_names[0]))

static const char *const list_names[] = {KR_TASK_DOCUMENT_IDS, KR_TASK_ENV, KR_TASK_ARTIFACTS,
                                          KR_TASK_COMMAND};
#define N_LISTS (sizeof(list_names) / sizeof(list_names[0]))

typedef struct strlist {
	size_t n;
	char **v;
} strlist;

struct kr_task {
	pthread_mutex_t lock;
	char *fields[N_FIELDS];
	strlist lists[N_LISTS];
	strlist kv_keys, kv_vals;
	strlist retired;
	struct kr_agent *agent;
	char *stage;
	uint64_t deadline;
};

static void strlist_add(strlist *l, char *owned)
{
	l->v = kr_realloc(l->v, (l->n + 1) * sizeof(char *));
	l->v[l->n++] = owned;
}

static void strlist_free(strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

kr_task *kr_task_new(void)
{
	kr_task *t = kr_calloc(1, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void kr_task_free(kr_task *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < N_FIELDS; i++)
		free(t->fields[i]);
	for (size_t i = 0; i < N_LISTS; i++)
		strlist_free(&t->lists[i]);
	strlist_free(&t->kv_keys);
	strlist_free(&t->kv_vals);
	strlist_free(&t->retired);
	free(t->stage);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static int field_index(const char *key)
{
	for (size_t i = 0; i < N_FIELDS; i++)
		if (strcmp(field_names[i], key) == 0)
			return (int)i;
	return -1;
}

static int list_index(const char *key)
{
	for (size_t i = 0; i < N_LISTS; i++)
		if (strcmp(list_names[i], key) == 0)
			return (int)i;
	return -1;
}

int kr_task_is_field(const char *key)
{
	return field_index(key) >= 0;
}

const char *kr_task_get(const kr_task *t, const char *key)
{
	kr_task *m = (kr_task *)t;
	const char *v = NULL;
	if (!t || !key)
		return NULL;
	pthread_mutex_lock(&m->lock);
	int i = field_index(key);
	if (i >= 0) {
		v = t->fields[i];
	} else if (strchr(key, '.')) {
		for (size_t k = 0; k < t->kv_keys.n; k++)
			if (strcmp(t->kv_keys.v[k], key) == 0)
				v = t->kv_vals.v[k];
	}
	pthread_mutex_unlock(&m->lock);
	return v;
}

int kr_task_set(kr_task *t, const char *key, const char *value)
{
	if (!t || !key)
		return KR_FAILED;
	int i = field_index(key);
	if (i < 0 && !strchr(key, '.'))
		return KR_FAILED;
	char *copy = kr_strdup(value);
	pthread_mutex_lock(&t->lock);
	char **slot = NULL;
	if (i >= 0) {
		slot = &t->fields[i];
	} else {
		for (size_t k = 0; k < t->kv_keys.n; k++)
			if (strcmp(t->kv_keys.v[k], key) == 0)
				slot = &t->kv_vals.v[k];
		if (!slot) {
			strlist_add(&t->kv_keys, kr_strdup(key));
			strlist_add(&t->kv_vals, NULL);
			slot = &t->kv_vals.v[t->kv_vals.n - 1];
		}
	}
	if (*slot)
		strlist_add(&t->retired, *slot);
	*slot = copy;
	pthread_mutex_unlock(&t->lock);
	return KR_OK;
}

size_t kr_task_list_count(const kr_task *t, const char *list)
{
	int i = list_index(list ? list : "");
	if (!t || i < 0)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&t->lock);
	size_t n = t->lists[i].n;
	pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
	return n;
}

const char *kr_task_list_item(const kr_task *t, const char *list, size_t idx)
{
	int i = list_index(list ? list : "");
	if (!t || i < 0)
		return NULL;
	pthread_mutex_lock((pthread_mutex_t *)&t->lock);
	const char *v = idx < t->lists[i].n ? t->lists[i].v[idx] : NULL;
	pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
	return v;
}

int kr_task_list_add(kr_task *t, const char *list, const char *value)
{
	int i = list_index(list ? list : "");
	if (!t || i < 0 || !value)
		return KR_FAILED;
	pthread_mutex_lock(&t->lock);
	strlist_add(&t->lists[i], kr_strdup(value));
	pthread_mutex_unlock(&t->lock);
	return KR_OK;
}

void kr_task_release_retired(kr_task *t)
{
	pthread_mutex_lock(&t->lock);
	strlist_free(&t->retired);
	pthread_mutex_unlock(&t->lock);
}

void kr_task_set_agent(kr_task *t, struct kr_agent *agent)
{
	t->agent = agent;
}

struct kr_agent *kr_task_agent(const kr_task *t)
{
	return t->agent;
}

void kr_task_set_stage(kr_task *t, const char *stage, uint64_t deadline_ms)
{
	pthread_mutex_lock(&t->lock);
	free(t->stage);
	t->stage = kr_strdup(stage);
	t->deadline = deadline_ms;
	pthread_mutex_unlock(&t->lock);
}

const char *kr_task_stage(const kr_task *t)
{
	return t->stage;
}

uint64_t kr_task_deadline(const kr_task *t)
{
	return t->deadline;
}

