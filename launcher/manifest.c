/*
 * manifest.c - the Kubernetes objects that run a task: its PVC, its Job
 * (init and run containers, or one), and the cleanup Job, as json-c
 * objects (see manifest.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_names.h"
#include "launcher_settings.h"
#include "manifest.h"
#include "settings_check.h"
#include "utf8.h"

#define WORK_MOUNT "/work"
#define VOLUME "work"
#define TOKEN_SECRET "keruta-api-token"
#define TOKEN_VOLUME "api-token"
#define TOKEN_DIR "/var/run/secrets/keruta"
#define TOKEN_FILE TOKEN_DIR "/token"
#define GIT_CACHE_VOLUME "git-cache"
#define GIT_CACHE_MOUNT "/var/cache/keruta-git"

/* An env value, cut (on a character boundary) when it is huge. */
static json_object *env_str(const char *s)
{
	size_t len = strlen(s);
	if (len <= KR_RENDER_MAX_ENV)
		return kr_json_str(s);
	size_t cut = KR_RENDER_MAX_ENV;
	while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	char *t = kr_asprintf("%.*s\n[... cut by keruta-agent: %zu bytes in all]", (int)cut, s, len);
	json_object *o = kr_json_str(t);
	free(t);
	return o;
}

static json_object *str(const char *s)
{
	return json_object_new_string(s);
}

static void add(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static json_object *metadata(const kr_settings *s, const char *name, const kr_ltask *t,
                             const char *role)
{
	json_object *m = json_object_new_object();
	const char *id = kr_ltask_id(t);
	add(m, "name", str(name));
	const char *ns = kr_settings_get(s, KR_S_K8S_NAMESPACE);
	if (kr_launcher_given(ns))
		add(m, "namespace", kr_json_str(ns));
	json_object *labels = json_object_new_object();
	add(labels, "app", str("keruta"));
	char *lv = kr_k8s_label_value(id);
	add(labels, "task-id", str(lv));
	free(lv);
	if (role)
		add(labels, "keruta.io/role", str(role));
	add(labels, "app.kubernetes.io/managed-by", str("keruta-agent"));
	add(m, "labels", labels);
	json_object *ann = json_object_new_object();
	add(ann, "keruta.io/task-id", kr_json_str(id));
	if (kr_ltask_parent(t))
		add(ann, "keruta.io/parent-task-id", kr_json_str(kr_ltask_parent(t)));
	add(m, "annotations", ann);
	return m;
}

char *kr_render_pvc_name(const kr_ltask *t)
{
	if (kr_ltask_existing_claim(t))
		return kr_strdup(kr_ltask_existing_claim(t));
	const char *parent = kr_ltask_parent(t);
	return kr_k8s_name("git-repo-pvc-", parent ? parent : kr_ltask_id(t));
}

json_object *kr_render_pvc(const kr_settings *s, const kr_ltask *t)
{
	if (strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") != 0 || kr_ltask_parent(t) ||
	    kr_ltask_existing_claim(t))
		return NULL;
	json_object *o = json_object_new_object();
	add(o, "apiVersion", str("v1"));
	add(o, "kind", str("PersistentVolumeClaim"));
	char *name = kr_render_pvc_name(t);
	add(o, "metadata", metadata(s, name, t, "work"));
	free(name);
	json_object *spec = json_object_new_object();
	json_object *modes = json_object_new_array();
	json_object_array_add(modes, kr_json_str(kr_ltask_pvc_access_mode(s, t)));
	add(spec, "accessModes", modes);
	json_object *res = json_object_new_object(), *req = json_object_new_object();
	add(req, "storage", kr_json_str(kr_ltask_pvc_size(s, t)));
	add(res, "requests", req);
	add(spec, "resources", res);
	const char *sc = kr_ltask_pvc_storage_class(s, t);
	if (kr_launcher_given(sc))
		add(spec, "storageClassName", kr_json_str(sc));
	add(o, "spec", spec);
	return o;
}

static void env_value(json_object *env, const char *name, const char *value)
{
	if (!value)
		return;
	json_object *e = json_object_new_object();
	add(e, "name", str(name));
	add(e, "value", env_str(value));
	json_object_array_add(env, e);
}

static json_object *task_env(const kr_settings *s, const kr_ltask *t, const char *source_pod)
{
	json_object *env = json_object_new_array();
	static const struct {
		const char *env, *key;
	} fields[] = {
#define KR_ENV_FIELD(name, key) {name, key},
	        KR_TASK_ENV_FIELDS(KR_ENV_FIELD)
#undef KR_ENV_FIELD
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		env_value(env, fields[i].env, kr_task_get(t->task, fields[i].key));
	size_t nd = kr_task_list_count(t->task, KR_TASK_DOCUMENT_IDS);
	if (nd) {
		kr_buf b = {0};
		for (size_t i = 0; i < nd; i++) {
			if (i)
				kr_buf_addc(&b, ',');
			kr_buf_adds(&b, kr_task_list_item(t->task, KR_TASK_DOCUMENT_IDS, i));
		}
		env_value(env, "KERUTA_DOCUMENT_ID", b.data);
		kr_buf_free(&b);
	}
	const char *url = kr_settings_get(s, KR_S_API_URL);
	env_value(env, "KERUTA_API_URL", url ? url : "http://keruta-api:8080");
	env_value(env, "KERUTA_API_ENDPOINT", url ? url : "http://keruta-api:8080");
	env_value(env, "KERUTA_WORK_DIR", WORK_MOUNT);
	/* the pod's own name: the run records it on the work volume, the
	 * cleanup Job checks it against KERUTA_SOURCE_POD */
	json_object *pn = json_object_new_object(), *pfrom = json_object_new_object(),
	            *fref = json_object_new_object();
	add(fref, "fieldPath", str("metadata.name"));
	add(pfrom, "fieldRef", fref);
	add(pn, "name", str("KERUTA_POD_NAME"));
	add(pn, "valueFrom", pfrom);
	json_object_array_add(env, pn);
	if (source_pod)
		env_value(env, "KERUTA_SOURCE_POD", source_pod);
	return env;
}

static json_object *resources(const kr_settings *s, const kr_ltask *t)
{
	static const struct {
		const char *group, *name;
		kr_setting_id id;
	} defs[] = {{"requests", "cpu", KR_S_K8S_CPU_REQUEST},
	            {"requests", "memory", KR_S_K8S_MEMORY_REQUEST},
	            {"limits", "cpu", KR_S_K8S_CPU_LIMIT},
	            {"limits", "memory", KR_S_K8S_MEMORY_LIMIT}};
	json_object *r = json_object_new_object();
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		const char *v = kr_settings_get(s, defs[i].id);
		json_object *tg, *tv;
		if (t->resources && json_object_object_get_ex(t->resources, defs[i].group, &tg) &&
		    json_object_object_get_ex(tg, defs[i].name, &tv))
			v = json_object_get_string(tv);
		if (!kr_launcher_given(v))
			continue;
		json_object *g;
		if (!json_object_object_get_ex(r, defs[i].group, &g)) {
			g = json_object_new_object();
			add(r, defs[i].group, g);
		}
		add(g, defs[i].name, kr_json_str(v));
	}
	return r;
}

static json_object *container(const kr_settings *s, const kr_ltask *t, const char *name,
                              const char *const *args, json_object *env)
{
	json_object *c = json_object_new_object();
	add(c, "name", str(name));
	add(c, "image", kr_json_str(t->image ? t->image : kr_settings_get(s, KR_S_K8S_IMAGE)));
	const char *pp = kr_settings_get(s, KR_S_K8S_IMAGE_PULL_POLICY);
	if (kr_launcher_given(pp))
		add(c, "imagePullPolicy", str(pp));
	add(c, "workingDir", str(WORK_MOUNT));
	json_object *cmd = json_object_new_array();
	json_object_array_add(cmd, kr_json_str(kr_settings_get(s, KR_S_K8S_AGENT_COMMAND)));
	for (size_t i = 0; args[i]; i++)
		json_object_array_add(cmd, str(args[i]));
	/* a file, not an env var: a child process inherits the environment */
	json_object_array_add(cmd, str("--api-token-file"));
	json_object_array_add(cmd, str(TOKEN_FILE));
	add(c, "command", cmd);
	add(c, "env", env);
	json_object *res = resources(s, t);
	if (json_object_object_length(res))
		add(c, "resources", res);
	else
		json_object_put(res);
	json_object *mounts = json_object_new_array(), *m = json_object_new_object();
	add(m, "name", str(VOLUME));
	add(m, "mountPath", str(WORK_MOUNT));
	json_object_array_add(mounts, m);
	m = json_object_new_object();
	add(m, "name", str(TOKEN_VOLUME));
	add(m, "mountPath", str(TOKEN_DIR));
	add(m, "readOnly", json_object_new_boolean(1));
	json_object_array_add(mounts, m);
	add(c, "volumeMounts", mounts);
	/* the agent writes its outcome there; the launcher reads it back */
	add(c, "terminationMessagePath", str("/dev/termination-log"));
	add(c, "terminationMessagePolicy", str("FallbackToLogsOnError"));
	return c;
}

static json_object *pod_spec(const kr_settings *s, const kr_ltask *t, json_object *containers,
                             json_object *init, const char *node)
{
	json_object *spec = json_object_new_object();
	add(spec, "restartPolicy", str("Never"));
	const char *sa = kr_settings_get(s, KR_S_K8S_SERVICE_ACCOUNT);
	if (kr_launcher_given(sa))
		add(spec, "serviceAccountName", kr_json_str(sa));
	else /* the agent never talks to Kubernetes: no token in its pod */
		add(spec, "automountServiceAccountToken", json_object_new_boolean(0));
	size_t nsel = kr_settings_list_count(s, KR_S_K8S_NODE_SELECTOR);
	if (nsel) {
		json_object *sel = json_object_new_object();
		for (size_t i = 0; i < nsel; i++) {
			const char *e = kr_settings_list_item(s, KR_S_K8S_NODE_SELECTOR, i);
			const char *eq = strchr(e, '=');
			char *k = kr_strndup(e, (size_t)(eq - e));
			add(sel, k, kr_json_str(eq + 1));
			free(k);
		}
		add(spec, "nodeSelector", sel);
	}
	size_t ntol = kr_settings_list_count(s, KR_S_K8S_TOLERATIONS);
	if (ntol) {
		json_object *tols = json_object_new_array();
		for (size_t i = 0; i < ntol; i++) {
			json_object *o = NULL;
			if (kr_k8s_toleration(kr_settings_list_item(s, KR_S_K8S_TOLERATIONS, i), &o) == 0)
				json_object_array_add(tols, o);
		}
		add(spec, "tolerations", tols);
	}
	if (node && *node) {
		/* a ReadWriteOnce volume attaches to one node: go where it is */
		json_object *expr = json_object_new_object(), *vals = json_object_new_array();
		add(expr, "key", str("kubernetes.io/hostname"));
		add(expr, "operator", str("In"));
		json_object_array_add(vals, kr_json_str(node));
		add(expr, "values", vals);
		json_object *exprs = json_object_new_array(), *term = json_object_new_object(),
		            *terms = json_object_new_array(), *req = json_object_new_object(),
		            *na = json_object_new_object(), *aff = json_object_new_object();
		json_object_array_add(exprs, expr);
		add(term, "matchExpressions", exprs);
		json_object_array_add(terms, term);
		add(req, "nodeSelectorTerms", terms);
		add(na, "requiredDuringSchedulingIgnoredDuringExecution", req);
		add(aff, "nodeAffinity", na);
		add(spec, "affinity", aff);
	}
	if (init)
		add(spec, "initContainers", init);
	add(spec, "containers", containers);
	json_object *vols = json_object_new_array(), *v = json_object_new_object();
	add(v, "name", str(VOLUME));
	if (strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") == 0) {
		json_object *pvc = json_object_new_object();
		char *claim = kr_render_pvc_name(t);
		add(pvc, "claimName", str(claim));
		free(claim);
		add(v, "persistentVolumeClaim", pvc);
	} else {
		add(v, "emptyDir", json_object_new_object());
	}
	json_object_array_add(vols, v);
	/* readable by the agent (root, or the pod's fsGroup), by no other user */
	json_object *tv = json_object_new_object(), *sec = json_object_new_object(),
	            *items = json_object_new_array(), *item = json_object_new_object();
	add(tv, "name", str(TOKEN_VOLUME));
	add(sec, "secretName", str(TOKEN_SECRET));
	add(item, "key", str("token"));
	add(item, "path", str("token"));
	json_object_array_add(items, item);
	add(sec, "items", items);
	add(sec, "defaultMode", json_object_new_int(0440));
	add(tv, "secret", sec);
	json_object_array_add(vols, tv);
	add(spec, "volumes", vols);
	return spec;
}

static json_object *job(const kr_settings *s, const kr_ltask *t, const char *name,
                        const char *role, json_object *podspec, int64_t backoff)
{
	json_object *o = json_object_new_object();
	add(o, "apiVersion", str("batch/v1"));
	add(o, "kind", str("Job"));
	add(o, "metadata", metadata(s, name, t, role));
	json_object *spec = json_object_new_object();
	add(spec, "backoffLimit", json_object_new_int64(backoff));
	uint64_t ttl = kr_settings_u64(s, KR_S_K8S_TTL_AFTER_FINISHED) / 1000;
	add(spec, "ttlSecondsAfterFinished", json_object_new_int64((int64_t)(ttl > INT32_MAX ? INT32_MAX : ttl)));
	uint64_t dl = kr_settings_u64(s, KR_S_K8S_ACTIVE_DEADLINE) / 1000;
	if (dl)
		add(spec, "activeDeadlineSeconds", json_object_new_int64((int64_t)dl));
	json_object *tmpl = json_object_new_object();
	json_object *tm = metadata(s, name, t, role);
	json_object_object_del(tm, "name");
	json_object_object_del(tm, "namespace");
	add(tmpl, "metadata", tm);
	add(tmpl, "spec", podspec);
	add(spec, "template", tmpl);
	add(o, "spec", spec);
	return o;
}

/* Only the container that clones mounts the cache (writable: the agent
 * updates its mirrors there) and is told where it is; the task's own
 * containers never see it.  The clone takes no alternates from it, so
 * nothing on the work volume depends on the cache's path. */
static void git_cache_mount(const kr_settings *s, json_object *spec, json_object *c)
{
	const char *v = kr_settings_get(s, KR_S_K8S_GIT_CACHE_VOLUME);
	if (!kr_launcher_given(v))
		return;
	json_object *vol = json_object_new_object(), *src = json_object_new_object(), *a;
	add(vol, "name", str(GIT_CACHE_VOLUME));
	if (strncmp(v, "hostPath:", 9) == 0) {
		add(src, "path", kr_json_str(v + 9));
		add(src, "type", str("DirectoryOrCreate"));
		add(vol, "hostPath", src);
	} else {
		add(src, "claimName", kr_json_str(v));
		add(vol, "persistentVolumeClaim", src);
	}
	if (json_object_object_get_ex(spec, "volumes", &a))
		json_object_array_add(a, vol);
	json_object *m = json_object_new_object();
	add(m, "name", str(GIT_CACHE_VOLUME));
	add(m, "mountPath", str(GIT_CACHE_MOUNT));
	if (json_object_object_get_ex(c, "volumeMounts", &a))
		json_object_array_add(a, m);
	json_object *e = json_object_new_object();
	add(e, "name", str("KERUTA_GIT_CACHE"));
	add(e, "value", str(GIT_CACHE_MOUNT));
	if (json_object_object_get_ex(c, "env", &a))
		json_object_array_add(a, e);
}

json_object *kr_render_job(const kr_settings *s, const kr_ltask *t, const char *node,
                           kr_error *err)
{
	(void)err;
	json_object *containers = json_object_new_array(), *init = NULL;
	if (kr_settings_bool(s, KR_S_K8S_SINGLE_CONTAINER)) {
		static const char *const exec_args[] = {"execute", "--task-id", "$(KERUTA_TASK_ID)",
		                                        "--api-url", "$(KERUTA_API_URL)", NULL};
		json_object_array_add(containers,
		                      container(s, t, "main", exec_args, task_env(s, t, NULL)));
	} else {
		/* a task without documents has no KERUTA_DOCUMENT_ID: the agent
		 * then reads the unexpanded $(KERUTA_DOCUMENT_ID) as not given */
		static const char *const init_args[] = {
		        "init", "--repository-id", "$(KERUTA_REPOSITORY_ID)", "--document-id",
		        "$(KERUTA_DOCUMENT_ID)", "--api-url", "$(KERUTA_API_ENDPOINT)", "--work-dir",
		        WORK_MOUNT, NULL};
		/* the cleanup Job uploads last and sends the final status */
		static const char *const run_args[] = {"run", "--task-id", "$(KERUTA_TASK_ID)",
		                                       "--api-url", "$(KERUTA_API_ENDPOINT)",
		                                       "--final-status", "no", NULL};
		/* an emptyDir dies with the pod: no cleanup Job can read it, so
		 * the main container is the one that collects and reports last */
		static const char *const final_args[] = {"run", "--task-id", "$(KERUTA_TASK_ID)",
		                                         "--api-url", "$(KERUTA_API_ENDPOINT)",
		                                         "--final-status", "yes", NULL};
		init = json_object_new_array();
		json_object_array_add(init, container(s, t, "keruta-agent-init", init_args,
		                                      task_env(s, t, NULL)));
		json_object_array_add(containers, container(s, t, "main",
		                                            kr_render_has_cleanup(s) ? run_args : final_args,
		                                            task_env(s, t, NULL)));
	}
	char *name = kr_render_job_name(kr_ltask_id(t));
	/* only a volume that may be attached already (the parent's, or an
	 * existing claim) needs the pod to go where it is */
	if (!(kr_ltask_parent(t) || kr_ltask_existing_claim(t)) || !kr_ltask_rwo(s, t))
		node = NULL;
	json_object *spec = pod_spec(s, t, containers, init, node);
	if (init) /* kr_render_check refuses the cache with a single container */
		git_cache_mount(s, spec, json_object_array_get_idx(init, 0));
	json_object *o = job(s, t, name, "main", spec,
	                     (int64_t)kr_settings_u64(s, KR_S_K8S_BACKOFF_LIMIT));
	free(name);
	return o;
}

int kr_render_has_cleanup(const kr_settings *s)
{
	return strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") == 0;
}

json_object *kr_render_cleanup_job(const kr_settings *s, const kr_ltask *t,
                                   const char *source_pod, const char *node, kr_error *err)
{
	(void)err;
	static const char *const args[] = {"cleanup", "--task-id", "$(KERUTA_TASK_ID)", "--api-url",
	                                   "$(KERUTA_API_URL)", "--source-pod", "$(KERUTA_SOURCE_POD)",
	                                   NULL};
	json_object *containers = json_object_new_array();
	json_object_array_add(containers,
	                      container(s, t, "cleanup-container", args,
	                                task_env(s, t, source_pod ? source_pod : "")));
	/* it mounts the volume the task's pod used: go to that pod's node */
	if (!kr_ltask_rwo(s, t))
		node = NULL;
	char *name = kr_render_cleanup_name(kr_ltask_id(t));
	json_object *o = job(s, t, name, "cleanup", pod_spec(s, t, containers, NULL, node), 2);
	free(name);
	return o;
}
