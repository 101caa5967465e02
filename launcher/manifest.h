/*
 * manifest.h - the Kubernetes objects that run a task (PVC, Job, cleanup
 * Job) as json-c objects, and the claim the task mounts.
 */
#ifndef KR_LAUNCHER_MANIFEST_H
#define KR_LAUNCHER_MANIFEST_H

#include <json.h>

#include "ltask.h"
#include "settings.h"
#include "util.h"

/* Longest env value put in a manifest; longer ones are cut, marked. */
#define KR_RENDER_MAX_ENV (64u << 10)

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

#endif
