/*
 * ltask.h - a task as the launcher sees it: the context fields, plus what
 * only the launcher reads from the record (image, resources, the volume),
 * and the volume values it resolves to with the launcher's settings.
 */
#ifndef KR_LAUNCHER_LTASK_H
#define KR_LAUNCHER_LTASK_H

#include <json.h>

#include "node.h"
#include "settings.h"
#include "task.h"
#include "util.h"

/* The per-task volume fields, in the order of kr_ltask.pvc[]. */
enum { KR_PVC_SIZE, KR_PVC_ACCESS_MODE, KR_PVC_STORAGE_CLASS, KR_PVC_NAME, KR_PVC_FIELDS };

/* A task as the launcher sees it: the context fields, plus what only
 * the launcher reads from the record (image, resources, the volume). */
typedef struct kr_ltask {
	kr_task *task;
	char *image;            /* the task's own image, or NULL       */
	json_object *resources; /* {requests:{..},limits:{..}} or NULL */
	/* pvcStorageSize, pvcAccessMode, pvcStorageClass, pvcName from the
	 * task record, else its repository record; NULL: the launcher's
	 * setting (pvcName: none, the launcher's own git-repo-pvc-ID). */
	char *pvc[KR_PVC_FIELDS];
	/* a child task's own volume fields, which its parent's claim makes
	 * meaningless ("pvcStorageSize, pvcStorageClass"), or NULL: kept for
	 * kr_ltask_warn_ignored, so a launcher that reads the record on every
	 * poll can say so once */
	char *ignored;
} kr_ltask;

/* Read a task record (API JSON or task file); an embedded `repository`
 * mapping is read as its repository record. */
int kr_ltask_load(kr_ltask *t, const kr_node *record, const char *name, kr_error *err);
/* Fill the volume fields the task left unset from its repository record. */
int kr_ltask_load_repository(kr_ltask *t, const kr_node *repo, const char *name, kr_error *err);
/* The resolved volume values (task, repository, then the settings). */
const char *kr_ltask_pvc_size(const kr_settings *s, const kr_ltask *t);
const char *kr_ltask_pvc_access_mode(const kr_settings *s, const kr_ltask *t);
const char *kr_ltask_pvc_storage_class(const kr_settings *s, const kr_ltask *t);
/* The existing claim the task mounts (pvcName), or NULL. */
const char *kr_ltask_existing_claim(const kr_ltask *t);
/* The work volume attaches to one node at a time (pinning needed). */
int kr_ltask_rwo(const kr_settings *s, const kr_ltask *t);
/* Warn that a child task's own volume fields are ignored (if it has any). */
void kr_ltask_warn_ignored(const kr_ltask *t);
void kr_ltask_free(kr_ltask *t);
const char *kr_ltask_id(const kr_ltask *t);
const char *kr_ltask_parent(const kr_ltask *t);

#endif
