/*
 * ltask.c - a task record as the launcher reads it (image, resources,
 * the volume fields, from the task or its repository record) and the
 * volume values it resolves to (see ltask.h).
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "k8s_names.h"
#include "launcher_settings.h"
#include "log.h"
#include "ltask.h"
#include "utf8.h"

static const struct {
	const char *field, *want;
} pvc_defs[KR_PVC_FIELDS] = {
        [KR_PVC_SIZE] = {"pvcStorageSize", "a Kubernetes quantity such as 1Gi, 500Mi or 20G"},
        [KR_PVC_ACCESS_MODE] = {"pvcAccessMode",
                                "ReadWriteOnce, ReadWriteMany or ReadWriteOncePod"},
        [KR_PVC_STORAGE_CLASS] = {"pvcStorageClass",
                                  "a storage class name (DNS-1123: lowercase letters, digits, "
                                  "'-' and '.')"},
        [KR_PVC_NAME] = {"pvcName", "the name of an existing PersistentVolumeClaim (DNS-1123: "
                                    "lowercase letters, digits, '-' and '.')"},
};

static int pvc_valid(int i, const char *v)
{
	switch (i) {
	case KR_PVC_SIZE: return kr_k8s_is_quantity(v) && v[0] != '-';
	case KR_PVC_ACCESS_MODE:
		return !strcmp(v, "ReadWriteOnce") || !strcmp(v, "ReadWriteMany") ||
		       !strcmp(v, "ReadWriteOncePod");
	default: return kr_k8s_is_dns_subdomain(v);
	}
}

/*
 * The volume fields of a record (the task's, then its repository's): the
 * first record that sets a field wins.  A child task mounts its parent's
 * claim, so its own task-level fields say nothing about that volume: they
 * are ignored (noted in t->ignored for the caller to say), and only its repository's (shared with the parent)
 * count.
 */
static int pvc_fields(kr_ltask *t, const kr_node *rec, const char *name, const char *where,
                      kr_error *err)
{
	int is_task = strcmp(where, "the task") == 0;
	kr_buf ignored = {0};
	for (int i = 0; i < KR_PVC_FIELDS; i++) {
		const char *field = pvc_defs[i].field;
		const kr_node *n = kr_node_get(rec, field);
		if (!n || kr_node_is_null(n) || t->pvc[i])
			continue;
		if (is_task && kr_ltask_parent(t)) {
			kr_buf_addf(&ignored, "%s%s", ignored.len ? ", " : "", field);
			continue;
		}
		if (n->type != KR_NODE_SCALAR || strlen(n->value) != n->value_len ||
		    !pvc_valid(i, n->value)) {
			/* the task's id first: a file name or a repository says little */
			kr_error_set(err, KR_EXIT_TASK_FAILED,
			             "task %s (%s): field '%s' of %s is '%s', not %s; fix the record or "
			             "remove the field (the launcher's setting then applies)",
			             kr_ltask_id(t), name, field, where,
			             n->type == KR_NODE_SCALAR ? n->value : "not a string", pvc_defs[i].want);
			kr_buf_free(&ignored);
			return -1;
		}
		t->pvc[i] = kr_strdup(n->value);
	}
	if (ignored.len)
		t->ignored = ignored.data; /* t owns it now */
	else
		kr_buf_free(&ignored);
	return 0;
}

void kr_ltask_warn_ignored(const kr_ltask *t)
{
	if (t->ignored)
		kr_log(KR_LOG_WARN, NULL,
		       "task %s mounts the volume of its parent task %s: its own %s %s ignored",
		       kr_ltask_id(t), kr_ltask_parent(t), t->ignored,
		       strchr(t->ignored, ',') ? "are" : "is");
}

int kr_ltask_load(kr_ltask *t, const kr_node *record, const char *name, kr_error *err)
{
	memset(t, 0, sizeof(*t));
	t->task = kr_task_new();
	if (kr_task_fill_from_node(t->task, record, name, err))
		return -1;
	const kr_node *img = kr_node_get(record, "image");
	if (img && !kr_node_is_null(img)) {
		if (img->type != KR_NODE_SCALAR || !*img->value) {
			kr_error_set(err, KR_EXIT_TASK_FAILED, "%s: field 'image' must be a string", name);
			return -1;
		}
		t->image = kr_strdup(img->value);
	}
	const kr_node *res = kr_node_get(record, "resources");
	if (res && !kr_node_is_null(res)) {
		if (res->type != KR_NODE_MAP)
			goto bad;
		t->resources = json_object_new_object();
		for (size_t i = 0; i < res->n; i++) {
			const char *k = res->keys[i]->value;
			const kr_node *m = res->items[i];
			if ((strcmp(k, "requests") && strcmp(k, "limits")) || m->type != KR_NODE_MAP)
				goto bad;
			json_object *o = json_object_new_object();
			json_object_object_add(t->resources, k, o);
			for (size_t j = 0; j < m->n; j++) {
				if (m->items[j]->type != KR_NODE_SCALAR)
					goto bad;
				json_object_object_add(o, m->keys[j]->value, kr_json_str(m->items[j]->value));
			}
		}
	}
	if (pvc_fields(t, record, name, "the task", err))
		return -1;
	const kr_node *repo = kr_node_get(record, "repository");
	if (repo && repo->type == KR_NODE_MAP && kr_ltask_load_repository(t, repo, name, err))
		return -1;
	return 0;
bad:
	kr_error_set(err, KR_EXIT_TASK_FAILED,
	             "%s: field 'resources' must be {requests: {cpu: Q, memory: Q}, limits: {...}}",
	             name);
	return -1;
}

int kr_ltask_load_repository(kr_ltask *t, const kr_node *repo, const char *name, kr_error *err)
{
	return pvc_fields(t, repo, name, "its repository record", err);
}

void kr_ltask_free(kr_ltask *t)
{
	kr_task_free(t->task);
	free(t->image);
	json_object_put(t->resources);
	for (size_t i = 0; i < KR_PVC_FIELDS; i++)
		free(t->pvc[i]);
	free(t->ignored);
	memset(t, 0, sizeof(*t));
}

const char *kr_ltask_pvc_size(const kr_settings *s, const kr_ltask *t)
{
	return t->pvc[KR_PVC_SIZE] ? t->pvc[KR_PVC_SIZE] : kr_settings_get(s, KR_S_K8S_PVC_SIZE);
}

const char *kr_ltask_pvc_access_mode(const kr_settings *s, const kr_ltask *t)
{
	return t->pvc[KR_PVC_ACCESS_MODE] ? t->pvc[KR_PVC_ACCESS_MODE]
	                                  : kr_settings_get(s, KR_S_K8S_PVC_ACCESS_MODE);
}

const char *kr_ltask_pvc_storage_class(const kr_settings *s, const kr_ltask *t)
{
	return t->pvc[KR_PVC_STORAGE_CLASS] ? t->pvc[KR_PVC_STORAGE_CLASS]
	                                    : kr_settings_get(s, KR_S_K8S_STORAGE_CLASS);
}

const char *kr_ltask_existing_claim(const kr_ltask *t)
{
	return t->pvc[KR_PVC_NAME];
}

int kr_ltask_rwo(const kr_settings *s, const kr_ltask *t)
{
	return strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") == 0 &&
	       strcmp(kr_ltask_pvc_access_mode(s, t), "ReadWriteMany") != 0;
}

const char *kr_ltask_id(const kr_ltask *t)
{
	return kr_task_get(t->task, KR_TASK_ID);
}

const char *kr_ltask_parent(const kr_ltask *t)
{
	const char *p = kr_task_get(t->task, KR_TASK_PARENT_ID);
	return p && *p ? p : NULL;
}
