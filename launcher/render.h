/*
 * render.h - the Kubernetes objects that run a task (PVC, Job, cleanup
 * Job) as json-c objects, the names they get, and a YAML writer that
 * quotes every string, so `keruta-agent render | kubectl apply -f -`
 * works whatever the task's id and text hold.
 */
#ifndef KR_LAUNCHER_RENDER_H
#define KR_LAUNCHER_RENDER_H

#include <json.h>

#include "node.h"
#include "settings.h"
#include "task.h"
#include "util.h"

/* Longest env value put in a manifest; longer ones are cut, marked. */
#define KR_RENDER_MAX_ENV (64u << 10)

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

/* Check the launcher's settings (volume kind, quantities, selectors...). */
int kr_render_check(const kr_settings *s, kr_error *err);

/*
 * A valid DNS-1123 label `prefix` + the id mapped (lowercase, other
 * characters to '-'), at most 63 characters.  When the mapping changed or
 * cut the id, a hash of the original is appended, so two ids never get
 * one name.  kr_k8s_label_value does the same for a label value.
 */
char *kr_k8s_name(const char *prefix, const char *id);
char *kr_k8s_label_value(const char *id);

char *kr_render_job_name(const char *task_id);
char *kr_render_cleanup_name(const char *task_id);
/* The claim the task mounts: its pvcName, else git-repo-pvc-ID (the
 * parent's id for a child). */
char *kr_render_pvc_name(const kr_ltask *t);

/* The PVC to create, or NULL (emptyDir, an existing claim, or a child
 * using its parent's). */
json_object *kr_render_pvc(const kr_settings *s, const kr_ltask *t);
/* node: where the parent's pod ran (ReadWriteOnce child), or NULL. */
json_object *kr_render_job(const kr_settings *s, const kr_ltask *t, const char *node,
                           kr_error *err);
/* Whether a cleanup Job follows the Job: not with an emptyDir work
 * volume, which is gone with the pod; its main container runs
 * `run --final-status yes` instead, collecting and reporting the terminal status. */
int kr_render_has_cleanup(const kr_settings *s);
json_object *kr_render_cleanup_job(const kr_settings *s, const kr_ltask *t,
                                   const char *source_pod, const char *node, kr_error *err);

/* Append one YAML document ("---" first when `separator`). */
void kr_yaml_emit(json_object *o, int separator, kr_buf *out);

/* A json string from bytes that may not be UTF-8 (U+FFFD for bad bytes). */
json_object *kr_json_str(const char *s);

#endif
