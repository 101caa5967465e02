/*
 * render.c - the render command: one task's Kubernetes objects, printed
 * as YAML for `kubectl apply -f -`.
 */
#include <stdio.h>
#include <string.h>

#include "keruta_api.h"
#include "launcher.h"
#include "launcher_settings.h"
#include "log.h"
#include "manifest.h"
#include "settings_check.h"
#include "yaml_out.h"

int kr_render(kr_settings *s, kr_error *err)
{
	if (kr_render_check(s, err))
		return err->code;
	kr_http *api = NULL;
	const char *id = kr_settings_get(s, KR_S_TASK_ID);
	const char *file = kr_settings_get(s, KR_S_TASK_FILE);
	if (!(file && *file)) {
		api = kr_launcher_api(s, NULL, 0, err);
		if (err->code)
			return err->code;
	}
	kr_ltask t;
	int code = KR_EXIT_OK;
	if (kr_launcher_task(s, api, id, &t, err)) {
		code = err->code ? err->code : KR_EXIT_INTERNAL;
		goto out;
	}
	kr_ltask_warn_ignored(&t);
	const char *what = kr_settings_get(s, KR_S_K8S_OBJECTS);
	const char *node = kr_settings_get(s, KR_S_K8S_NODE_NAME);
	if ((kr_ltask_parent(&t) || kr_ltask_existing_claim(&t)) && !(node && *node) &&
	    kr_ltask_rwo(s, &t)) {
		char *claim = kr_render_pvc_name(&t);
		kr_log(KR_LOG_WARN, NULL,
		       "task %s mounts the ReadWriteOnce PVC %s that %s: give --node-name NODE (where "
		       "it is attached) or the pod may not start elsewhere",
		       kr_ltask_id(&t), claim,
		       kr_ltask_existing_claim(&t) ? "exists already" : "its parent task used");
		free(claim);
	}
	kr_buf out = {0};
	int docs = 0;
	if (strcmp(what, "cleanup") != 0) {
		json_object *pvc = kr_render_pvc(s, &t);
		if (pvc) {
			kr_yaml_emit(pvc, docs++, &out);
			json_object_put(pvc);
		}
		json_object *job = kr_render_job(s, &t, node, err);
		kr_yaml_emit(job, docs++, &out);
		json_object_put(job);
	}
	if (strcmp(what, "cleanup") == 0 && !kr_render_has_cleanup(s)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--objects cleanup: with --work-volume emptydir there is no cleanup Job (the "
		             "volume is gone with the pod); the main container runs `run --final-status yes` and "
		             "collects itself");
		code = KR_EXIT_USAGE;
		kr_ltask_free(&t);
		goto out;
	}
	if (strcmp(what, "all") == 0 && !kr_render_has_cleanup(s))
		kr_log(KR_LOG_INFO, NULL,
		       "no cleanup Job with an emptyDir work volume: the main container (`run --final-status yes`) "
		       "collects and reports the outcome");
	if (strcmp(what, "job") != 0 && kr_render_has_cleanup(s)) {
		json_object *cj = kr_render_cleanup_job(s, &t, kr_settings_get(s, KR_S_SOURCE_POD),
		                                        node, err);
		kr_yaml_emit(cj, docs++, &out);
		json_object_put(cj);
	}
	if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout)) {
		kr_error_set(err, KR_EXIT_INTERNAL, "cannot write the manifests to standard output");
		code = KR_EXIT_INTERNAL;
	}
	kr_buf_free(&out);
	kr_ltask_free(&t);
out:
	kr_http_free(api);
	return code;
}
