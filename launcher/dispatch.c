/*
 * dispatch.c - the launcher loop: tasks become a PVC and a Job, Jobs and
 * their pods are followed through two watches (one for every Job with
 * app=keruta, one for their pods), outcomes go to keruta-api.
 *
 * Event handlers only record what they saw; every API call is made from
 * the loop, never from inside a watch callback.  Jobs carry the task id
 * in an annotation, so a restarted launcher adopts the Jobs it created
 * (those not yet marked keruta.io/reported) instead of creating new ones.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "kube.h"
#include "launcher.h"
#include "log.h"

#define SEL "labelSelector=app%%3Dkeruta" /* inside format strings */
#define REPORTED "keruta.io/reported"

typedef enum { T_RUNNING, T_CLEANUP, T_DONE } tstate;

typedef struct track {
	char *id;
	kr_ltask lt;
	int have_task;
	tstate st;
	int outcome;          /* 1 Job succeeded, -1 failed, 0 running      */
	char *job_reason;     /* from the Job's Failed condition            */
	char *pod, *node;
	char *term_msg;       /* the agent's termination message            */
	char *oom;            /* container killed for memory                */
	char *bad;            /* "container X: ImagePullBackOff: ..."       */
	int64_t bad_since; /* monotonic ms; before the launcher (or the machine) started when negative */
	int bad_dated;
	uint64_t bad_limit;
	char bad_family[64];
	int deleting;         /* we deleted the Job ourselves               */
	int cleanup_finished;
	int result;           /* KR_EXIT_OK / KR_EXIT_TASK_FAILED when done */
	struct track *next;
} track;

typedef struct dispatcher {
	kr_settings *s;
	kr_kube *k;
	kr_http *api;
	kr_watch jobs, pods;
	track *tracks;
	char *only;           /* --task-id / the task file's id: one task   */
	size_t active;
	unsigned long started, finished, failed;
	char *ns_path;        /* /namespaces/NS                             */
} dispatcher;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ------------------------------------------------------------- tracks */

static track *find(dispatcher *d, const char *id)
{
	for (track *t = d->tracks; t; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

static track *add_track(dispatcher *d, const char *id)
{
	track *t = kr_calloc(1, sizeof(*t));
	t->id = kr_strdup(id);
	t->next = d->tracks;
	d->tracks = t;
	d->active++;
	return t;
}

static void free_track(track *t)
{
	if (t->have_task)
		kr_ltask_free(&t->lt);
	free(t->id);
	free(t->job_reason);
	free(t->pod);
	free(t->node);
	free(t->term_msg);
	free(t->oom);
	free(t->bad);
	free(t);
}

static void replace(char **slot, const char *v)
{
	if (v && *slot && strcmp(*slot, v) == 0)
		return;
	free(*slot);
	*slot = v ? kr_strdup(v) : NULL;
}

/* ------------------------------------------------------- JSON helpers */

static json_object *at(json_object *o, const char *a, const char *b, const char *c)
{
	const char *keys[] = {a, b, c};
	for (int i = 0; i < 3 && keys[i] && o; i++)
		if (!json_object_object_get_ex(o, keys[i], &o))
			return NULL;
	return o;
}

static const char *str_at(json_object *o, const char *a, const char *b, const char *c)
{
	json_object *v = at(o, a, b, c);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* ------------------------------------------------------------- events */

static void on_job(void *ctx, const char *type, json_object *job)
{
	dispatcher *d = ctx;
	const char *id = str_at(job, "metadata", "annotations", "keruta.io/task-id");
	const char *role = str_at(job, "metadata", "labels", "keruta.io/role");
	if (!id || !role)
		return;
	track *t = find(d, id);
	if (strcmp(role, "cleanup") == 0) {
		if (!t || t->st != T_CLEANUP)
			return;
		json_object *conds = at(job, "status", "conditions", NULL);
		for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
			json_object *c = json_object_array_get_idx(conds, i);
			const char *ct = str_at(c, "type", NULL, NULL), *cs = str_at(c, "status", NULL, NULL);
			if (ct && cs && strcmp(cs, "True") == 0 &&
			    (strcmp(ct, "Complete") == 0 || strcmp(ct, "Failed") == 0)) {
				if (strcmp(ct, "Failed") == 0)
					kr_log(KR_LOG_WARN, NULL, "task %s: the cleanup Job failed: %s", id,
					       str_at(c, "message", NULL, NULL) ? str_at(c, "message", NULL, NULL)
					                                        : "no message");
				t->cleanup_finished = 1;
			}
		}
		if (strcmp(type, "DELETED") == 0)
			t->cleanup_finished = 1;
		return;
	}
	if (strcmp(role, "main") != 0)
		return;
	if (!t) {
		/* adoption: a Job of ours, not yet reported on */
		if (strcmp(type, "DELETED") == 0 || str_at(job, "metadata", "annotations", REPORTED))
			return;
		if (d->only && strcmp(d->only, id) != 0)
			return;
		kr_log(KR_LOG_INFO, NULL, "task %s: adopting Job %s", id,
		       str_at(job, "metadata", "name", NULL));
		t = add_track(d, id);
	}
	if (t->st != T_RUNNING || t->outcome)
		return;
	if (strcmp(type, "DELETED") == 0) {
		if (!t->deleting) {
			t->outcome = -1;
			replace(&t->job_reason, "the Job was deleted before it finished");
		}
		return;
	}
	json_object *conds = at(job, "status", "conditions", NULL);
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *ct = str_at(c, "type", NULL, NULL), *cs = str_at(c, "status", NULL, NULL);
		if (!ct || !cs || strcmp(cs, "True") != 0)
			continue;
		if (strcmp(ct, "Complete") == 0) {
			t->outcome = 1;
		} else if (strcmp(ct, "Failed") == 0) {
			const char *r = str_at(c, "reason", NULL, NULL), *m = str_at(c, "message", NULL, NULL);
			char *why = kr_asprintf("Job failed: %s%s%s", r ? r : "no reason", m ? ": " : "",
			                        m ? m : "");
			replace(&t->job_reason, why);
			free(why);
			t->outcome = -1;
		}
	}
}

static uint64_t limit_for(const dispatcher *d, const char *reason)
{
	if (strcmp(reason, "CrashLoopBackOff") == 0)
		return kr_settings_u64(d->s, KR_S_K8S_CRASHLOOP_AFTER);
	if (strcmp(reason, "ImagePullBackOff") == 0 || strcmp(reason, "ErrImagePull") == 0 ||
	    strcmp(reason, "InvalidImageName") == 0 || strcmp(reason, "ErrImageNeverPull") == 0)
		return kr_settings_u64(d->s, KR_S_K8S_IMAGE_ERROR_AFTER);
	if (strcmp(reason, "CreateContainerConfigError") == 0 ||
	    strcmp(reason, "CreateContainerError") == 0 || strcmp(reason, "RunContainerError") == 0)
		return kr_settings_u64(d->s, KR_S_K8S_CONFIG_ERROR_AFTER);
	return UINT64_MAX;
}

/* Image errors count as one condition: ErrImagePull and ImagePullBackOff
 * alternate while the kubelet retries. */
static const char *family(const char *reason)
{
	return strstr(reason, "Image") ? "image" : reason;
}

/* When a pod's trouble began, on our monotonic clock.  Image and config
 * errors begin with the pod (the container never started), so its
 * creationTimestamp dates them, and a restarted launcher does not wait
 * the whole threshold again; a crash loop can begin any time later, so it
 * is dated when first seen.  Clock skew with the cluster only moves the
 * start; it is never put in the future. */
static int64_t trouble_since(json_object *pod, const char *family_name)
{
	int64_t now = (int64_t)kr_now_ms();
	const char *created = str_at(pod, "metadata", "creationTimestamp", NULL);
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (strcmp(family_name, "CrashLoopBackOff") == 0 || !created ||
	    sscanf(created, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	           &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return now;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t at = timegm(&tm);
	time_t wall = time(NULL);
	if (at == (time_t)-1 || at >= wall)
		return now;
	/* The monotonic clock starts at boot: a pod older than the machine's
	 * uptime (a node rebooted, a launcher on a fresh VM) dates before zero. */
	int64_t ago = (int64_t)(wall - at);
	if (ago > INT64_MAX / 2000)
		ago = INT64_MAX / 2000;
	return now - ago * 1000;
}

static void scan_statuses(dispatcher *d, track *t, json_object *list, const char **bad_reason,
                          char **bad_text)
{
	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		json_object *cs = json_object_array_get_idx(list, i);
		const char *cname = str_at(cs, "name", NULL, NULL);
		const char *wr = str_at(cs, "state", "waiting", "reason");
		if (wr && limit_for(d, wr) != UINT64_MAX && !*bad_reason) {
			const char *wm = str_at(cs, "state", "waiting", "message");
			*bad_reason = wr;
			*bad_text = kr_asprintf("container %s: %s%s%s", cname ? cname : "?", wr,
			                        wm ? ": " : "", wm ? wm : "");
		}
		json_object *term = at(cs, "state", "terminated", NULL);
		if (!term)
			term = at(cs, "lastState", "terminated", NULL);
		if (!term)
			continue;
		const char *tr = str_at(term, "reason", NULL, NULL);
		if (tr && strcmp(tr, "OOMKilled") == 0)
			replace(&t->oom, cname ? cname : "?");
		const char *msg = str_at(term, "message", NULL, NULL);
		json_object *ec = at(term, "exitCode", NULL, NULL);
		if (msg && *msg && (!ec || json_object_get_int(ec) != 0 || !t->term_msg))
			replace(&t->term_msg, msg);
	}
}

static void on_pod(void *ctx, const char *type, json_object *pod)
{
	dispatcher *d = ctx;
	const char *id = str_at(pod, "metadata", "annotations", "keruta.io/task-id");
	const char *role = str_at(pod, "metadata", "labels", "keruta.io/role");
	if (!id || !role || strcmp(role, "main") != 0 || strcmp(type, "DELETED") == 0)
		return;
	track *t = find(d, id);
	if (!t || t->st != T_RUNNING)
		return;
	replace(&t->pod, str_at(pod, "metadata", "name", NULL));
	if (str_at(pod, "spec", "nodeName", NULL))
		replace(&t->node, str_at(pod, "spec", "nodeName", NULL));
	const char *bad_reason = NULL;
	char *bad_text = NULL;
	scan_statuses(d, t, at(pod, "status", "initContainerStatuses", NULL), &bad_reason, &bad_text);
	scan_statuses(d, t, at(pod, "status", "containerStatuses", NULL), &bad_reason, &bad_text);
	if (!bad_reason) {
		replace(&t->bad, NULL);
		t->bad_since = 0;
		t->bad_dated = 0;
		t->bad_family[0] = '\0';
	} else {
		if (!t->bad_dated || strcmp(t->bad_family, family(bad_reason)) != 0) {
			t->bad_since = trouble_since(pod, family(bad_reason));
			t->bad_dated = 1;
			snprintf(t->bad_family, sizeof(t->bad_family), "%s", family(bad_reason));
		}
		t->bad_limit = limit_for(d, bad_reason);
		replace(&t->bad, bad_text);
	}
	free(bad_text);
	const char *reason = str_at(pod, "status", "reason", NULL);
	const char *phase = str_at(pod, "status", "phase", NULL);
	if (phase && strcmp(phase, "Failed") == 0 && reason && !t->job_reason) {
		const char *m = str_at(pod, "status", "message", NULL);
		char *why = kr_asprintf("pod %s: %s%s%s", t->pod, reason, m ? ": " : "", m ? m : "");
		replace(&t->job_reason, why);
		free(why);
	}
}

/* ----------------------------------------------------------- requests */

static char *path(dispatcher *d, const char *group, const char *kind, const char *name)
{
	return kr_asprintf("%s%s/%s%s%s", group, d->ns_path, kind, name ? "/" : "", name ? name : "");
}

static int relist(dispatcher *d, kr_watch *w, const char *group, const char *kind,
                  kr_watch_event cb, kr_error *err)
{
	char *p = kr_asprintf("%s%s/%s?" SEL, group, d->ns_path, kind);
	json_object *ans = NULL;
	long st = kr_kube_call(d->k, "GET", p, NULL, NULL, &ans, err);
	free(p);
	if (st != 200) {
		if (st > 0)
			kr_error_set(err, st == 401 || st == 403 ? KR_EXIT_USAGE : KR_EXIT_API,
			             "cannot list %s in namespace %s: HTTP %ld %s%s", kind,
			             kr_kube_namespace(d->k), st, kr_kube_status_message(ans),
			             st == 401 || st == 403 ? " (check the token and the launcher's Role)"
			                                    : "");
		json_object_put(ans);
		return -1;
	}
	json_object *items = at(ans, "items", NULL, NULL);
	for (size_t i = 0; items && i < json_object_array_length(items); i++)
		cb(d, "ADDED", json_object_array_get_idx(items, i));
	const char *rv = str_at(ans, "metadata", "resourceVersion", NULL);
	snprintf(w->rv, sizeof(w->rv), "%s", rv ? rv : "");
	json_object_put(ans);
	return kr_watch_start(w, err);
}

static int create(dispatcher *d, const char *group, const char *kind, json_object *obj,
                  const char *what, kr_error *err)
{
	char *p = path(d, group, kind, NULL);
	json_object *ans = NULL;
	long st = kr_kube_call(d->k, "POST", p, obj, NULL, &ans, err);
	free(p);
	if (st == 201 || st == 200 || st == 202 || st == 409) {
		json_object_put(ans);
		return st == 409 ? 1 : 0;
	}
	if (st > 0)
		kr_error_set(err, st == 401 || st == 403 || st == 422 ? KR_EXIT_USAGE : KR_EXIT_API,
		             "cannot create %s: HTTP %ld %s", what, st, kr_kube_status_message(ans));
	json_object_put(ans);
	return -1;
}

/* The node a task's pod ran on (for a ReadWriteOnce child), or NULL. */
static char *node_of(dispatcher *d, const char *task_id)
{
	char *label = kr_k8s_label_value(task_id);
	char *p = kr_asprintf("/api/v1%s/pods?" SEL ",keruta.io%%2Frole%%3Dmain,task-id%%3D%s",
	                      d->ns_path, label);
	free(label);
	json_object *ans = NULL;
	kr_error err = {0};
	char *node = NULL;
	if (kr_kube_call(d->k, "GET", p, NULL, NULL, &ans, &err) == 200) {
		json_object *items = at(ans, "items", NULL, NULL);
		for (size_t i = 0; items && i < json_object_array_length(items); i++) {
			json_object *pod = json_object_array_get_idx(items, i);
			const char *id = str_at(pod, "metadata", "annotations", "keruta.io/task-id");
			const char *n = str_at(pod, "spec", "nodeName", NULL);
			if (id && n && strcmp(id, task_id) == 0)
				replace(&node, n);
		}
	}
	json_object_put(ans);
	free(p);
	return node;
}

static int rwo_child(const dispatcher *d, const kr_ltask *lt)
{
	return kr_ltask_parent(lt) && !kr_ltask_existing_claim(lt) && kr_ltask_rwo(d->s, lt);
}

/*
 * A task that mounts an existing claim (pvcName): the claim must exist
 * (the launcher never creates it), and when it attaches to one node only
 * the pod goes where a pod using it runs or ran.  *node: that node or
 * NULL; the task's access mode becomes the claim's.  0, or -1 with err.
 */
static int existing_claim(dispatcher *d, kr_ltask *lt, char **node, kr_error *err)
{
	const char *claim = kr_ltask_existing_claim(lt);
	*node = NULL;
	if (!claim || strcmp(kr_settings_get(d->s, KR_S_K8S_WORK_VOLUME), "pvc") != 0)
		return 0;
	char *p = path(d, "/api/v1", "persistentvolumeclaims", claim);
	json_object *pvc = NULL;
	long st = kr_kube_call(d->k, "GET", p, NULL, NULL, &pvc, err);
	free(p);
	if (st != 200) {
		if (st > 0)
			kr_error_set(err, st == 404 ? KR_EXIT_TASK_FAILED : KR_EXIT_API,
			             "the task's pvcName names PVC %s, which %s in namespace %s%s%s; the "
			             "launcher mounts existing claims only, never creates them",
			             claim, st == 404 ? "does not exist" : "cannot be read",
			             kr_kube_namespace(d->k), st == 404 ? "" : ": ",
			             st == 404 ? "" : kr_kube_status_message(pvc));
		json_object_put(pvc);
		return -1;
	}
	json_object *modes = at(pvc, "spec", "accessModes", NULL);
	int many = 0;
	for (size_t i = 0; modes && i < json_object_array_length(modes); i++)
		many |= strcmp(json_object_get_string(json_object_array_get_idx(modes, i)),
		               "ReadWriteMany") == 0;
	json_object_put(pvc);
	/* the claim itself says how it attaches, whatever the task or the
	 * settings assumed: the Job and the cleanup Job are pinned by it */
	replace(&lt->pvc[KR_PVC_ACCESS_MODE], many ? "ReadWriteMany" : "ReadWriteOnce");
	if (many)
		return 0;
	/* where it is attached: the node of a pod that mounts it, a live one first */
	p = kr_asprintf("/api/v1%s/pods", d->ns_path);
	json_object *ans = NULL;
	kr_error lerr = {0};
	int best = -1;
	if (kr_kube_call(d->k, "GET", p, NULL, NULL, &ans, &lerr) == 200) {
		json_object *items = at(ans, "items", NULL, NULL);
		for (size_t i = 0; items && i < json_object_array_length(items); i++) {
			json_object *pod = json_object_array_get_idx(items, i);
			const char *n = str_at(pod, "spec", "nodeName", NULL);
			const char *phase = str_at(pod, "status", "phase", NULL);
			json_object *vols = at(pod, "spec", "volumes", NULL);
			int uses = 0;
			for (size_t v = 0; vols && v < json_object_array_length(vols); v++) {
				const char *c = str_at(json_object_array_get_idx(vols, v),
				                       "persistentVolumeClaim", "claimName", NULL);
				uses |= c && strcmp(c, claim) == 0;
			}
			int live = phase && (!strcmp(phase, "Running") || !strcmp(phase, "Pending"));
			if (uses && n && live > best) {
				replace(node, n);
				best = live;
			}
		}
	}
	json_object_put(ans);
	free(p);
	if (!*node)
		kr_log(KR_LOG_INFO, NULL,
		       "task %s: no pod mounts its ReadWriteOnce PVC %s now, so the pod is not pinned "
		       "to a node",
		       kr_ltask_id(lt), claim);
	return 0;
}

/* Create what runs the task.  0 started (or adopted), -1 err. */
static int start(dispatcher *d, kr_ltask *lt, kr_error *err)
{
	const char *id = kr_ltask_id(lt);
	if (find(d, id))
		return 0;
	json_object *pvc = kr_render_pvc(d->s, lt);
	if (pvc) {
		int rc = create(d, "/api/v1", "persistentvolumeclaims", pvc, "the task's PVC", err);
		json_object_put(pvc);
		if (rc < 0)
			return -1;
	}
	char *node = NULL;
	if (existing_claim(d, lt, &node, err))
		return -1;
	if (rwo_child(d, lt)) {
		node = node_of(d, kr_ltask_parent(lt));
		if (!node)
			kr_log(KR_LOG_WARN, NULL,
			       "task %s: no pod of parent task %s found, so the pod is not pinned to the "
			       "node holding its ReadWriteOnce PVC",
			       id, kr_ltask_parent(lt));
	}
	json_object *job = kr_render_job(d->s, lt, node, err);
	free(node);
	int rc = create(d, "/apis/batch/v1", "jobs", job, "the task's Job", err);
	json_object_put(job);
	if (rc < 0)
		return -1;
	track *t = add_track(d, id);
	t->lt = *lt;
	t->have_task = 1;
	memset(lt, 0, sizeof(*lt));
	d->started++;
	if (rc == 1) {
		/* it exists: read it back, it may be finished already */
		char *name = kr_render_job_name(id);
		char *p = path(d, "/apis/batch/v1", "jobs", name);
		json_object *ans = NULL;
		kr_error gerr = {0};
		if (kr_kube_call(d->k, "GET", p, NULL, NULL, &ans, &gerr) == 200) {
			if (str_at(ans, "metadata", "annotations", REPORTED)) {
				kr_log(KR_LOG_INFO, NULL, "task %s: its Job %s was already reported on", id,
				       name);
				t->st = T_DONE;
			} else {
				kr_log(KR_LOG_INFO, NULL, "task %s: Job %s exists; following it", id, name);
				on_job(d, "ADDED", ans);
			}
		}
		json_object_put(ans);
		free(p);
		free(name);
	} else {
		kr_log(KR_LOG_INFO, NULL, "task %s: Job created", id);
	}
	return 0;
}

/* ------------------------------------------------------------ outcome */

static char *failure_reason(track *t)
{
	if (t->oom)
		return kr_asprintf("out of memory: container %s was OOMKilled%s%s", t->oom,
		                   t->pod ? " in pod " : "", t->pod ? t->pod : "");
	json_object *o = t->term_msg ? json_tokener_parse(t->term_msg) : NULL;
	const char *reason = str_at(o, "reason", NULL, NULL), *stage = str_at(o, "stage", NULL, NULL);
	char *out = NULL;
	if (reason || stage) {
		json_object *ec = at(o, "exitCode", NULL, NULL);
		kr_buf b = {0};
		kr_buf_addf(&b, "stage %s failed: %s", stage ? stage : "?", reason ? reason : "no reason");
		if (ec)
			kr_buf_addf(&b, " (exit code %d)", json_object_get_int(ec));
		out = b.data;
	}
	json_object_put(o);
	if (out)
		return out;
	if (t->job_reason)
		return kr_strdup(t->job_reason);
	return kr_strdup("the Job failed without a reason");
}

static void report(dispatcher *d, track *t, const char *which, const char *message)
{
	const char *status = kr_launcher_status_name(d->s, which);
	kr_log(strcmp(which, "failed") == 0 ? KR_LOG_WARN : KR_LOG_INFO, NULL, "task %s: %s%s%s",
	       t->id, status, message ? ": " : "", message ? message : "");
	if (!d->api)
		return;
	kr_error err = {0};
	char *now = kr_launcher_status(d->s, d->api, t->id, &err);
	/* what the agent reported itself stays: it knows more */
	if (now && (strcmp(now, kr_launcher_status_name(d->s, "completed")) == 0 ||
	            strcmp(now, kr_launcher_status_name(d->s, "failed")) == 0)) {
		kr_log(KR_LOG_DEBUG, NULL, "task %s: keruta-api already has %s", t->id, now);
		free(now);
		return;
	}
	free(now);
	kr_error_clear(&err);
	if (kr_launcher_report(d->s, d->api, t->id, status, message, &err))
		kr_log(KR_LOG_ERROR, NULL, "task %s: could not report %s: %s", t->id, status, err.msg);
}

static void mark_reported(dispatcher *d, track *t, const char *status)
{
	char *name = kr_render_job_name(t->id);
	char *p = path(d, "/apis/batch/v1", "jobs", name);
	json_object *patch = json_object_new_object(), *md = json_object_new_object(),
	            *ann = json_object_new_object();
	json_object_object_add(ann, REPORTED, json_object_new_string(status));
	json_object_object_add(md, "annotations", ann);
	json_object_object_add(patch, "metadata", md);
	kr_error err = {0};
	long st = kr_kube_call(d->k, "PATCH", p, patch, "application/merge-patch+json", NULL, &err);
	if (st != 200 && st != 404)
		kr_log(KR_LOG_WARN, NULL, "task %s: cannot mark Job %s as reported: %s", t->id, name,
		       st < 0 ? err.msg : "HTTP error");
	json_object_put(patch);
	free(p);
	free(name);
}

/* A claim the launcher made for this task: its labels and annotation say
 * so.  One made by hand under the same name is never ours to delete. */
static int created_by_us(dispatcher *d, const char *p, const char *task_id)
{
	json_object *pvc = NULL;
	kr_error err = {0};
	int ours = 0;
	if (kr_kube_call(d->k, "GET", p, NULL, NULL, &pvc, &err) == 200) {
		const char *by = str_at(pvc, "metadata", "labels", "app.kubernetes.io/managed-by");
		const char *id = str_at(pvc, "metadata", "annotations", "keruta.io/task-id");
		ours = by && id && strcmp(by, "keruta-agent") == 0 && strcmp(id, task_id) == 0;
	}
	json_object_put(pvc);
	return ours;
}

static void delete_pvc(dispatcher *d, track *t)
{
	if (!kr_settings_bool(d->s, KR_S_K8S_DELETE_PVC) || !t->have_task ||
	    kr_ltask_parent(&t->lt) || kr_ltask_existing_claim(&t->lt) ||
	    strcmp(kr_settings_get(d->s, KR_S_K8S_WORK_VOLUME), "pvc"))
		return;
	char *name = kr_render_pvc_name(&t->lt);
	char *p = path(d, "/api/v1", "persistentvolumeclaims", name);
	kr_error err = {0};
	if (!created_by_us(d, p, t->id)) {
		kr_log(KR_LOG_INFO, NULL, "task %s: PVC %s was not created by keruta-agent for it; kept",
		       t->id, name);
		free(p);
		free(name);
		return;
	}
	long st = kr_kube_call(d->k, "DELETE", p, NULL, NULL, NULL, &err);
	if (st != 200 && st != 202 && st != 404)
		kr_log(KR_LOG_WARN, NULL, "task %s: cannot delete PVC %s: %s", t->id, name,
		       st < 0 ? err.msg : "HTTP error");
	free(p);
	free(name);
}

static int need_task(dispatcher *d, track *t)
{
	if (t->have_task)
		return 0;
	kr_error err = {0};
	if (kr_launcher_task(d->s, d->api, t->id, &t->lt, &err)) {
		kr_log(KR_LOG_WARN, NULL, "task %s: %s", t->id, err.msg);
		kr_ltask_free(&t->lt);
		return -1;
	}
	t->have_task = 1;
	return 0;
}

static char *source_pod(dispatcher *d, track *t)
{
	if (t->pod)
		return kr_strdup(t->pod);
	char *name = kr_render_job_name(t->id);
	char *p = kr_asprintf("/api/v1%s/pods?labelSelector=job-name%%3D%s", d->ns_path, name);
	json_object *ans = NULL;
	kr_error err = {0};
	char *pod = NULL;
	if (kr_kube_call(d->k, "GET", p, NULL, NULL, &ans, &err) == 200) {
		json_object *items = at(ans, "items", NULL, NULL);
		if (items && json_object_array_length(items))
			pod = kr_strdup(str_at(json_object_array_get_idx(items, 0), "metadata", "name", NULL));
	}
	json_object_put(ans);
	free(p);
	free(name);
	return pod;
}

static void finish(dispatcher *d, track *t)
{
	if (t->outcome > 0) {
		int cleanup = kr_settings_bool(d->s, KR_S_K8S_CLEANUP_JOB) && kr_render_has_cleanup(d->s);
		if (!kr_render_has_cleanup(d->s))
			kr_log(KR_LOG_INFO, NULL,
			       "task %s: emptyDir work volume: no cleanup Job, its main container collected",
			       t->id);
		if (cleanup && need_task(d, t) == 0) {
			char *pod = source_pod(d, t);
			kr_error err = {0};
			json_object *cj = kr_render_cleanup_job(d->s, &t->lt, pod, t->node, &err);
			if (create(d, "/apis/batch/v1", "jobs", cj, "the cleanup Job", &err) < 0) {
				kr_log(KR_LOG_ERROR, NULL, "task %s: %s", t->id, err.msg);
				cleanup = 0;
			}
			json_object_put(cj);
			free(pod);
		} else {
			cleanup = 0;
		}
		report(d, t, "completed", NULL);
		mark_reported(d, t, kr_launcher_status_name(d->s, "completed"));
		t->result = KR_EXIT_OK;
		t->st = cleanup ? T_CLEANUP : T_DONE;
		if (!cleanup)
			delete_pvc(d, t);
		return;
	}
	char *why = failure_reason(t);
	report(d, t, "failed", why);
	free(why);
	mark_reported(d, t, kr_launcher_status_name(d->s, "failed"));
	t->result = KR_EXIT_TASK_FAILED;
	t->st = T_DONE;
	d->failed++;
	delete_pvc(d, t);
}

static void give_up(dispatcher *d, track *t)
{
	/* "pod P: container C: Reason: message (for Ns); the Job was deleted" */
	char *full = kr_asprintf("%s%s%s%s (for %llus); the Job was deleted", t->pod ? "pod " : "",
	                         t->pod ? t->pod : "", t->pod ? ": " : "", t->bad,
	                         (unsigned long long)(((int64_t)kr_now_ms() - t->bad_since) / 1000));
	t->deleting = 1;
	char *name = kr_render_job_name(t->id);
	char *p = kr_asprintf("%s%s/jobs/%s?propagationPolicy=Background", "/apis/batch/v1",
	                      d->ns_path, name);
	json_object *opts = json_object_new_object();
	json_object_object_add(opts, "kind", json_object_new_string("DeleteOptions"));
	json_object_object_add(opts, "apiVersion", json_object_new_string("v1"));
	json_object_object_add(opts, "propagationPolicy", json_object_new_string("Background"));
	kr_error err = {0};
	long st = kr_kube_call(d->k, "DELETE", p, opts, NULL, NULL, &err);
	if (st != 200 && st != 202 && st != 404)
		kr_log(KR_LOG_ERROR, NULL, "task %s: cannot delete Job %s: %s", t->id, name,
		       st < 0 ? err.msg : "HTTP error");
	json_object_put(opts);
	free(p);
	free(name);
	report(d, t, "failed", full);
	free(full);
	t->result = KR_EXIT_TASK_FAILED;
	t->st = T_DONE;
	d->failed++;
	delete_pvc(d, t);
}

/* --------------------------------------------------------------- loop */

/* Start PENDING tasks while there is room.  0 if the API was asked,
 * -1 if not (no room, or it failed). */
static int take_pending(dispatcher *d)
{
	uint64_t conc = kr_settings_u64(d->s, KR_S_K8S_CONCURRENCY);
	if (conc == 0)
		conc = 1;
	if (d->active >= conc)
		return -1;
	kr_node *list = NULL;
	kr_error err = {0};
	if (kr_launcher_pending(d->s, d->api, &list, &err)) {
		kr_log(KR_LOG_WARN, NULL, "cannot list PENDING tasks: %s", err.msg);
		return -1;
	}
	const kr_node *items = list;
	if (items->type == KR_NODE_MAP) { /* paged answers wrap the list */
		static const char *const keys[] = {"content", "items", "tasks", "data"};
		for (size_t i = 0; i < 4 && items->type == KR_NODE_MAP; i++)
			if (kr_node_get(list, keys[i]) && kr_node_get(list, keys[i])->type == KR_NODE_SEQ)
				items = kr_node_get(list, keys[i]);
	}
	if (items->type != KR_NODE_SEQ) {
		kr_log(KR_LOG_WARN, NULL, "the PENDING tasks answer is not a list; ignored");
		kr_node_free(list);
		return -1;
	}
	for (size_t i = 0; i < items->n && d->active < conc && !stop_requested; i++) {
		kr_ltask lt;
		char *what = kr_asprintf("PENDING task %zu", i + 1);
		if (kr_ltask_load(&lt, items->items[i], what, &err) ||
		    (!find(d, kr_ltask_id(&lt)) &&
		     kr_launcher_task_repository(d->s, d->api, &lt, &err))) {
			kr_log(KR_LOG_WARN, NULL, "%s; skipped", err.msg);
			kr_error_clear(&err);
		} else if (!find(d, kr_ltask_id(&lt)) && start(d, &lt, &err)) {
			kr_log(KR_LOG_ERROR, NULL, "task %s: %s; will try again", kr_ltask_id(&lt), err.msg);
			kr_error_clear(&err);
		}
		kr_ltask_free(&lt);
		free(what);
	}
	kr_node_free(list);
	return 0;
}

static int rewatch(dispatcher *d, kr_error *err)
{
	struct {
		kr_watch *w;
		const char *group, *kind;
		kr_watch_event cb;
	} ws[] = {{&d->jobs, "/apis/batch/v1", "jobs", on_job}, {&d->pods, "/api/v1", "pods", on_pod}};
	for (int i = 0; i < 2; i++) {
		if (ws[i].w->active)
			continue;
		if (ws[i].w->gone || !ws[i].w->rv[0]) {
			kr_log(KR_LOG_DEBUG, NULL, "re-listing %s", ws[i].kind);
			if (relist(d, ws[i].w, ws[i].group, ws[i].kind, ws[i].cb, err))
				return -1;
		} else if (kr_watch_start(ws[i].w, err)) {
			return -1;
		}
	}
	return 0;
}

int kr_dispatch(kr_settings *s, kr_error *err)
{
	if (kr_render_check(s, err))
		return err->code;
	dispatcher d = {.s = s};
	int code = KR_EXIT_OK;
	kr_ltask first = {0};
	int have_first = 0;
	d.api = kr_launcher_api(s, err);
	if (err->code)
		return err->code;
	const char *file = kr_settings_get(s, KR_S_TASK_FILE);
	const char *id = kr_settings_get(s, KR_S_TASK_ID);
	int single = (file && *file) || (id && *id);
	if (!single && !d.api) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "dispatch needs --api-url (to take PENDING tasks), or one task with "
		             "--task-id / --task-file");
		kr_http_free(d.api);
		return KR_EXIT_USAGE;
	}
	if (single) {
		if (kr_launcher_task(s, d.api, id, &first, err)) {
			kr_http_free(d.api);
			return err->code ? err->code : KR_EXIT_INTERNAL;
		}
		have_first = 1;
		d.only = kr_strdup(kr_ltask_id(&first));
	}
	d.k = kr_kube_new(s, err);
	if (!d.k) {
		code = err->code;
		goto out;
	}
	char *ens = curl_easy_escape(NULL, kr_kube_namespace(d.k), 0);
	d.ns_path = kr_asprintf("/namespaces/%s", ens);
	curl_free(ens);
	kr_log(KR_LOG_INFO, NULL, "dispatch: Kubernetes API %s, namespace %s", kr_kube_server(d.k),
	       kr_kube_namespace(d.k));
	char *jp = kr_asprintf("/apis/batch/v1%s/jobs?" SEL, d.ns_path);
	char *pp = kr_asprintf("/api/v1%s/pods?" SEL, d.ns_path);
	kr_watch_init(&d.jobs, d.k, jp, on_job, &d);
	kr_watch_init(&d.pods, d.k, pp, on_pod, &d);
	free(jp);
	free(pp);
	stop_requested = 0;
	struct sigaction sa = {0}, old_term, old_int;
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	/* adopt first: the lists show the Jobs a previous run left */
	if (rewatch(&d, err)) {
		code = err->code ? err->code : KR_EXIT_API;
		goto restore;
	}
	if (have_first && start(&d, &first, err)) {
		code = err->code ? err->code : KR_EXIT_API;
		goto restore;
	}
	uint64_t interval = kr_settings_u64(s, KR_S_K8S_PENDING_INTERVAL);
	uint64_t next_poll = 0;
	int once = kr_settings_bool(s, KR_S_K8S_ONCE), idle_polls = 0;
	int single_result = -1;
	while (!stop_requested) {
		uint64_t now = kr_now_ms();
		if (!single && now >= next_poll) {
			size_t before = d.started;
			if (take_pending(&d) == 0)
				idle_polls = d.started == before ? idle_polls + 1 : 0;
			next_poll = now + interval;
		}
		uint64_t wake = single ? now + 5000 : next_poll;
		for (track **pt = &d.tracks; *pt;) {
			track *t = *pt;
			if (t->st == T_RUNNING && t->outcome) {
				finish(&d, t);
			} else if (t->st == T_RUNNING && t->bad && t->bad_dated) {
				uint64_t nowms = kr_now_ms();
				int64_t spent = (int64_t)nowms - t->bad_since;
				if (spent >= 0 && (uint64_t)spent >= t->bad_limit)
					give_up(&d, t);
				else if (nowms + (t->bad_limit - (uint64_t)spent) < wake)
					wake = nowms + (t->bad_limit - (uint64_t)spent);
			}
			if (t->st == T_CLEANUP && t->cleanup_finished) {
				delete_pvc(&d, t);
				t->st = T_DONE;
			}
			if (t->st == T_DONE) {
				*pt = t->next;
				d.active--;
				d.finished++;
				if (d.only && strcmp(t->id, d.only) == 0)
					single_result = t->result;
				free_track(t);
				continue;
			}
			pt = &t->next;
		}
		if (single && single_result >= 0 && !d.tracks)
			break;
		if (!single && once && d.active == 0 && idle_polls > 0)
			break;
		if (rewatch(&d, err)) {
			code = err->code ? err->code : KR_EXIT_API;
			goto restore;
		}
		now = kr_now_ms();
		int64_t wait = wake > now ? (int64_t)(wake - now) : 0;
		if (wait > 5000)
			wait = 5000;
		if (!single && once && d.active == 0)
			wait = 0;
		kr_kube_pump(d.k, (int)wait);
	}
	if (single)
		code = single_result >= 0 ? single_result : KR_EXIT_OK;
	if (stop_requested)
		kr_log(KR_LOG_INFO, NULL,
		       "dispatch: stopping on a signal; %zu Job%s left running (adopted on the next "
		       "start)",
		       d.active, d.active == 1 ? "" : "s");
restore:
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	kr_log(KR_LOG_INFO, NULL,
	       "dispatch: %lu task%s finished (%lu failed); %lu Kubernetes API requests, %lu watch "
	       "events",
	       d.finished, d.finished == 1 ? "" : "s", d.failed, kr_kube_requests(d.k),
	       d.jobs.events + d.pods.events);
	kr_watch_fini(&d.jobs);
	kr_watch_fini(&d.pods);
	while (d.tracks) {
		track *t = d.tracks;
		d.tracks = t->next;
		free_track(t);
	}
	free(d.ns_path);
out:
	if (have_first)
		kr_ltask_free(&first);
	kr_kube_free(d.k);
	kr_http_free(d.api);
	free(d.only);
	return code;
}
