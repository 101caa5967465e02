/*
 * dispatch.c - the launcher loop: tasks become a PVC and a Job, Jobs and
 * their pods are followed through two watches (one for every Job with
 * app=keruta, one for their pods), outcomes go to keruta-api.
 *
 * Event handlers only record what they saw; every API call is made from
 * the loop, never from inside a watch callback.  Jobs carry the task id
 * in an annotation, so a restarted launcher adopts the Jobs it created
 * (those not yet marked keruta.io/reported) instead of creating new ones.
 *
 * One terminal status per task: the agent in the pod reports it (the
 * main container, or the cleanup Job when one follows) and says so in
 * its termination message; dispatch reports only what no pod could (out
 * of memory, a crash loop, an image that cannot be pulled, a deleted Job,
 * a pod that died before reporting).  A failure after COMPLETED is a log
 * line and the annotation keruta.io/late-failure, never a second status.
 *
 * Both servers are followed with one health view each: after a
 * connection failure no request is made until a backoff (0.2 s doubling
 * to 30 s, with jitter) expires, then one request probes.  A report that
 * cannot be sent is owed: written on the Job (keruta.io/owed) and sent
 * once keruta-api answers, by this launcher or the next one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "k8s_names.h"
#include "keruta_api.h"
#include "kube.h"
#include "launcher.h"
#include "launcher_settings.h"
#include "log.h"
#include "manifest.h"
#include "settings_check.h"

#define SEL "labelSelector=app%%3Dkeruta" /* inside format strings */
#define REPORTED "keruta.io/reported"
#define OWED "keruta.io/owed"               /* {"status", "message", "deleteJob"} */
#define LATE "keruta.io/late-failure"

/* RUNNING: the Job runs.  CLEANUP: the cleanup Job runs.  SETTLE: the
 * outcome is known; what is owed is reported, then the Job is marked
 * (or deleted) and the PVC removed.  DONE: forgotten. */
typedef enum { T_RUNNING, T_CLEANUP, T_SETTLE, T_DONE } tstate;

typedef struct track {
	char *id;
	kr_ltask lt;          /* lt.task NULL: not read yet (adopted Job)   */
	tstate st;
	int outcome;          /* 1 Job succeeded, -1 failed, 0 running      */
	char *job_reason;     /* from the Job's Failed condition            */
	char *pod, *node;
	char *term_msg;       /* the agent's termination message            */
	char *agent_report;   /* terminal status the main pod's agent sent  */
	int cleanup_outcome;  /* 1 cleanup Job Complete, -1 failed/deleted  */
	char *cleanup_reason;
	char *cleanup_report; /* terminal status the cleanup agent sent     */
	char *owed_status;    /* a report still to send (API status name)  */
	char *owed_msg;
	int owed_noted;       /* ... written on the Job                     */
	int owed_sent;
	int delete_job;       /* delete the Job once settled (stuck pods)   */
	char *late;           /* a failure after COMPLETED, for the Job     */
	char *oom;            /* container killed for memory                */
	char *bad;            /* "container X: ImagePullBackOff: ..."       */
	int64_t bad_since; /* monotonic ms; before the launcher (or the machine) started when negative */
	uint64_t bad_limit;
	char bad_family[64];  /* "": bad_since not dated yet                */
	int deleting;         /* we deleted the Job ourselves               */
	uint64_t pod_wait_until; /* monotonic ms: its pod's events awaited  */
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
	/* keruta-api's health: failed rounds in a row, no call before */
	unsigned api_fails;
	uint64_t api_retry_at;
	unsigned seed;
	unsigned long api_calls_skipped;
} dispatcher;

static volatile sig_atomic_t stop_requested;
static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	int saved = errno;
	if (wake_pipe[1] >= 0 && write(wake_pipe[1], "x", 1) < 0) {
		/* full: a wake-up is already pending */
	}
	errno = saved;
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
	kr_ltask_free(&t->lt);
	free(t->id);
	free(t->job_reason);
	free(t->pod);
	free(t->node);
	free(t->term_msg);
	free(t->agent_report);
	free(t->cleanup_reason);
	free(t->cleanup_report);
	free(t->owed_status);
	free(t->owed_msg);
	free(t->late);
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

/* Lists from the server are used only when they are lists. */
static json_object *arr_at(json_object *o, const char *a, const char *b, const char *c)
{
	json_object *v = at(o, a, b, c);
	return v && json_object_is_type(v, json_type_array) ? v : NULL;
}

static size_t arr_len(json_object *a)
{
	return a ? json_object_array_length(a) : 0;
}

/* ----------------------------------------------------- agent's report */

/*
 * The terminal status the agent says it sent to keruta-api, from its
 * termination message, or NULL.  Two forms: {"taskId", "reported":
 * "COMPLETED"|"FAILED"|null, "stage", "reason"}, and the older {"status",
 * "agentExitCode", ...} where a terminal "status" was sent unless sending
 * it failed (COMPLETED then exits 3, KR_EXIT_API).
 */
static const char *agent_reported(const dispatcher *d, const char *msg, char *buf, size_t len)
{
	json_object *o = msg && *msg == '{' ? json_tokener_parse(msg) : NULL;
	const char *out = NULL;
	const char *done = kr_settings_status_name(d->s, "completed");
	const char *failed = kr_settings_status_name(d->s, "failed");
	json_object *rep;
	if (o && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "reported", &rep)) {
		const char *r = json_object_is_type(rep, json_type_string) ? json_object_get_string(rep) : NULL;
		if (r && (strcmp(r, done) == 0 || strcmp(r, failed) == 0))
			out = r;
	} else if (o && json_object_is_type(o, json_type_object)) {
		const char *st = str_at(o, "status", NULL, NULL);
		json_object *ec = at(o, "agentExitCode", NULL, NULL);
		int code = ec && json_object_is_type(ec, json_type_int) ? json_object_get_int(ec) : 0;
		if (st && strcmp(st, failed) == 0)
			out = st;
		else if (st && strcmp(st, done) == 0 && code != KR_EXIT_API)
			out = st;
	}
	if (out)
		snprintf(buf, len, "%s", out);
	json_object_put(o);
	return out ? buf : NULL;
}

/* ------------------------------------------------------------- events */

/* Conditions of a Job: 1 Complete, -1 Failed (*why: reason: message), 0 running. */
static int job_result(json_object *job, char **why)
{
	json_object *conds = arr_at(job, "status", "conditions", NULL);
	for (size_t i = 0; i < arr_len(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *ct = str_at(c, "type", NULL, NULL), *cs = str_at(c, "status", NULL, NULL);
		if (!ct || !cs || strcmp(cs, "True") != 0)
			continue;
		if (strcmp(ct, "Complete") == 0)
			return 1;
		if (strcmp(ct, "Failed") == 0) {
			const char *r = str_at(c, "reason", NULL, NULL), *m = str_at(c, "message", NULL, NULL);
			*why = kr_asprintf("%s%s%s", r ? r : "no reason", m ? ": " : "", m ? m : "");
			return -1;
		}
	}
	return 0;
}

/* A Job a previous launcher left with a report owed: take it over. */
static void take_owed(const dispatcher *d, track *t, json_object *job)
{
	const char *owed = str_at(job, "metadata", "annotations", OWED);
	json_object *o = owed ? json_tokener_parse(owed) : NULL;
	const char *st = str_at(o, "status", NULL, NULL);
	if (st && *st) {
		replace(&t->owed_status, st);
		replace(&t->owed_msg, str_at(o, "message", NULL, NULL));
		json_object *del = at(o, "deleteJob", NULL, NULL);
		t->delete_job = del && json_object_get_boolean(del);
		t->owed_noted = 1;
		t->result = strcmp(st, kr_settings_status_name(d->s, "failed")) == 0 ? KR_EXIT_TASK_FAILED
		                                                                      : KR_EXIT_OK;
		t->st = T_SETTLE;
	}
	json_object_put(o);
}

static void on_job(void *ctx, const char *type, json_object *job)
{
	dispatcher *d = ctx;
	const char *id = str_at(job, "metadata", "annotations", "keruta.io/task-id");
	const char *role = str_at(job, "metadata", "labels", "keruta.io/role");
	if (!id || !role)
		return;
	track *t = find(d, id);
	if (strcmp(role, "cleanup") == 0) {
		if (!t || t->cleanup_outcome)
			return;
		char *why = NULL;
		int r = strcmp(type, "DELETED") == 0 ? -1 : job_result(job, &why);
		if (r < 0)
			replace(&t->cleanup_reason, why ? why : "the cleanup Job was deleted before it finished");
		t->cleanup_outcome = r;
		free(why);
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
		take_owed(d, t, job);
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
	char *why = NULL;
	int r = job_result(job, &why);
	if (r < 0) {
		char *full = kr_asprintf("Job failed: %s", why);
		replace(&t->job_reason, full);
		free(full);
	}
	free(why);
	t->outcome = r;
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
	for (size_t i = 0; i < arr_len(list); i++) {
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
		char buf[64];
		if (agent_reported(d, msg, buf, sizeof(buf)))
			replace(&t->agent_report, buf);
	}
}

/* The cleanup Job's pod: only whether its agent reported. */
static void on_cleanup_pod(dispatcher *d, track *t, json_object *pod)
{
	json_object *list = arr_at(pod, "status", "containerStatuses", NULL);
	for (size_t i = 0; i < arr_len(list); i++) {
		json_object *cs = json_object_array_get_idx(list, i);
		char buf[64];
		const char *msg = str_at(cs, "state", "terminated", "message");
		if (!msg)
			msg = str_at(cs, "lastState", "terminated", "message");
		if (agent_reported(d, msg, buf, sizeof(buf)))
			replace(&t->cleanup_report, buf);
	}
}

static void on_pod(void *ctx, const char *type, json_object *pod)
{
	dispatcher *d = ctx;
	const char *id = str_at(pod, "metadata", "annotations", "keruta.io/task-id");
	const char *role = str_at(pod, "metadata", "labels", "keruta.io/role");
	if (!id || !role || strcmp(type, "DELETED") == 0)
		return;
	track *t = find(d, id);
	if (t && strcmp(role, "cleanup") == 0) {
		on_cleanup_pod(d, t, pod);
		return;
	}
	if (!t || t->st != T_RUNNING || strcmp(role, "main") != 0)
		return;
	replace(&t->pod, str_at(pod, "metadata", "name", NULL));
	if (str_at(pod, "spec", "nodeName", NULL))
		replace(&t->node, str_at(pod, "spec", "nodeName", NULL));
	const char *bad_reason = NULL;
	char *bad_text = NULL;
	scan_statuses(d, t, arr_at(pod, "status", "initContainerStatuses", NULL), &bad_reason, &bad_text);
	scan_statuses(d, t, arr_at(pod, "status", "containerStatuses", NULL), &bad_reason, &bad_text);
	if (!bad_reason) {
		replace(&t->bad, NULL);
		t->bad_since = 0;
		t->bad_family[0] = '\0';
	} else {
		if (strcmp(t->bad_family, family(bad_reason)) != 0) {
			t->bad_since = trouble_since(pod, family(bad_reason));
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
		char *why = kr_asprintf("pod %s: %s%s%s", t->pod ? t->pod : "?", reason, m ? ": " : "",
		                        m ? m : "");
		replace(&t->job_reason, why);
		free(why);
	}
}

/* ----------------------------------------------------------- requests */

static char *path(dispatcher *d, const char *group, const char *kind, const char *name)
{
	return kr_asprintf("%s%s/%s%s%s", group, d->ns_path, kind, name ? "/" : "", name ? name : "");
}

/* Items per list request: a namespace that kept 10,000 finished Jobs
 * and their pods is read in pages, so the launcher never holds the whole
 * list (tens of MiB of JSON) at once. */
#define LIST_PAGE 500

/* List kind (app=keruta plus extra, a URL-encoded selector term or "")
 * page by page, each item to cb; *rv: the first page's resourceVersion
 * when rv[0] is empty. */
static int list_pages(dispatcher *d, const char *group, const char *kind, const char *extra,
                      kr_watch_event cb, char *rv, size_t rvlen, kr_error *err)
{
	char *cont = NULL;
	int rc = 0;
	do {
		char *e = cont ? curl_easy_escape(NULL, cont, 0) : NULL;
		char *p = kr_asprintf("%s%s/%s?" SEL "%s&limit=%d%s%s", group, d->ns_path, kind, extra,
		                      LIST_PAGE, e ? "&continue=" : "", e ? e : "");
		curl_free(e);
		free(cont);
		cont = NULL;
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
			rc = -1;
			break;
		}
		json_object *items = arr_at(ans, "items", NULL, NULL);
		for (size_t i = 0; i < arr_len(items); i++)
			cb(d, "ADDED", json_object_array_get_idx(items, i));
		const char *v = str_at(ans, "metadata", "resourceVersion", NULL);
		if (!rv[0] && v && strlen(v) < rvlen)
			snprintf(rv, rvlen, "%s", v);
		const char *c = str_at(ans, "metadata", "continue", NULL);
		if (c && *c)
			cont = kr_strdup(c);
		json_object_put(ans);
	} while (cont && !stop_requested);
	free(cont);
	return rc;
}

static int relist(dispatcher *d, kr_watch *w, const char *group, const char *kind,
                  kr_watch_event cb, kr_error *err)
{
	char rv[sizeof(w->rv)] = "";
	int rc;
	if (cb == on_job)
		/* main Jobs first: a cleanup Job is only heard once its task is
		 * followed (adopted); the watch resumes from the first list, so
		 * nothing between the two is missed */
		rc = list_pages(d, group, kind, ",keruta.io%2Frole%21%3Dcleanup", cb, rv, sizeof(rv), err) ||
		     list_pages(d, group, kind, ",keruta.io%2Frole%3Dcleanup", cb, rv, sizeof(rv), err);
	else
		rc = list_pages(d, group, kind, "", cb, rv, sizeof(rv), err);
	if (rc)
		return -1;
	snprintf(w->rv, sizeof(w->rv), "%s", rv);
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
		json_object *items = arr_at(ans, "items", NULL, NULL);
		for (size_t i = 0; i < arr_len(items); i++) {
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
	memset(lt, 0, sizeof(*lt));
	/* here, not where the record is read: PENDING lists name the task
	 * again on every poll until its agent reports */
	kr_ltask_warn_ignored(&t->lt);
	d->started++;
	if (rc == 1) {
		/* it exists: read it back, it may be finished already */
		char *name = kr_render_job_name(id);
		char *p = path(d, "/apis/batch/v1", "jobs", name);
		json_object *ans = NULL;
		kr_error gerr = {0};
		if (kr_kube_call(d->k, "GET", p, NULL, NULL, &ans, &gerr) == 200) {
			const char *reported = str_at(ans, "metadata", "annotations", REPORTED);
			if (reported) {
				kr_log(KR_LOG_INFO, NULL, "task %s: its Job %s was already reported on (%s)",
				       id, name, reported);
				/* --task-id's exit status is the task's outcome, whoever reported it */
				if (strcmp(reported, kr_settings_status_name(d->s, "failed")) == 0) {
					t->result = KR_EXIT_TASK_FAILED;
					d->failed++;
				}
				t->st = T_DONE;
			} else {
				kr_log(KR_LOG_INFO, NULL, "task %s: Job %s exists; following it", id, name);
				take_owed(d, t, ans);
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

/* ------------------------------------------------------ keruta-api */

/* One health view of keruta-api: after a call failed for want of an
 * answer (connection, timeout, 5xx), no call until the backoff expires;
 * the next call is the probe. */
static int api_ready(const dispatcher *d)
{
	return kr_now_ms() >= d->api_retry_at;
}

/* After a call: err is the call's error (code 0 when it succeeded).
 * Returns 1 when keruta-api is to be left alone for a while. */
static int api_result(dispatcher *d, const kr_error *err)
{
	if (err->code != KR_EXIT_API) {
		if (d->api_fails)
			kr_log(KR_LOG_INFO, NULL, "keruta-api answers again (after %u failed attempt%s)",
			       d->api_fails, d->api_fails == 1 ? "" : "s");
		d->api_fails = 0;
		d->api_retry_at = 0;
		return 0;
	}
	d->api_fails++;
	uint64_t delay = kr_backoff_ms(d->api_fails, &d->seed);
	d->api_retry_at = kr_now_ms() + delay;
	kr_log(d->api_fails == 1 ? KR_LOG_WARN : KR_LOG_DEBUG, NULL,
	       "keruta-api unavailable: %s; reports are kept and sent when it answers (next attempt "
	       "in %.1f s)",
	       err->msg, (double)delay / 1000.0);
	return 1;
}

/* Send what is owed.  0 sent (or nothing to send any more), 1 later. */
static int send_owed(dispatcher *d, track *t)
{
	if (!d->api) {
		kr_log(KR_LOG_INFO, NULL, "task %s: %s%s%s (no keruta-api to tell)", t->id,
		       t->owed_status, t->owed_msg ? ": " : "", t->owed_msg ? t->owed_msg : "");
		return 0;
	}
	if (!api_ready(d) || stop_requested)
		return 1;
	kr_error err = {0};
	char *now = kr_launcher_status(d->s, d->api, t->id, &err);
	if (!now && api_result(d, &err))
		return 1;
	/* a terminal status keruta-api already has stays: the agent sent it,
	 * or a launcher that stopped before marking the Job did */
	if (now && (strcmp(now, kr_settings_status_name(d->s, "completed")) == 0 ||
	            strcmp(now, kr_settings_status_name(d->s, "failed")) == 0)) {
		kr_log(KR_LOG_INFO, NULL, "task %s: keruta-api already has %s; %s not sent", t->id, now,
		       t->owed_status);
		free(now);
		return 0;
	}
	free(now);
	kr_error_clear(&err);
	if (kr_launcher_report(d->s, d->api, t->id, t->owed_status, t->owed_msg, &err)) {
		if (api_result(d, &err))
			return 1;
		kr_log(KR_LOG_ERROR, NULL, "task %s: keruta-api refused %s: %s; not retried", t->id,
		       t->owed_status, err.msg);
		return 0;
	}
	api_result(d, &err);
	kr_log(strcmp(t->owed_status, kr_settings_status_name(d->s, "failed")) == 0 ? KR_LOG_WARN
	                                                                          : KR_LOG_INFO,
	       NULL, "task %s: reported %s%s%s", t->id, t->owed_status, t->owed_msg ? ": " : "",
	       t->owed_msg ? t->owed_msg : "");
	return 0;
}

/* ------------------------------------------------------------ outcome */

static long patch_job(dispatcher *d, track *t, json_object *ann, kr_error *err)
{
	char *name = kr_render_job_name(t->id);
	char *p = path(d, "/apis/batch/v1", "jobs", name);
	json_object *patch = json_object_new_object(), *md = json_object_new_object();
	json_object_object_add(md, "annotations", ann);
	json_object_object_add(patch, "metadata", md);
	long st = kr_kube_call(d->k, "PATCH", p, patch, "application/merge-patch+json", NULL, err);
	json_object_put(patch);
	free(p);
	free(name);
	return st;
}

/* Write the owed report on the Job, for the next launcher if this one
 * stops before keruta-api answers.  0 written (or no Job), -1 later. */
static int note_owed(dispatcher *d, track *t)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string(t->owed_status));
	if (t->owed_msg)
		json_object_object_add(o, "message", json_object_new_string(t->owed_msg));
	if (t->delete_job)
		json_object_object_add(o, "deleteJob", json_object_new_boolean(1));
	json_object *ann = json_object_new_object();
	json_object_object_add(ann, OWED,
	                       json_object_new_string(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)));
	json_object_put(o);
	kr_error err = {0};
	long st = patch_job(d, t, ann, &err);
	if (st < 0) {
		kr_log(KR_LOG_DEBUG, NULL, "task %s: cannot note the owed report on its Job yet: %s",
		       t->id, err.msg);
		return -1;
	}
	/* refused (no patch right?): said once, not asked again and again */
	if (st != 200 && st != 404)
		kr_log(KR_LOG_WARN, NULL,
		       "task %s: cannot note the owed report on its Job (HTTP %ld); a restarted "
		       "launcher works it out again from the Job",
		       t->id, st);
	t->owed_noted = 1;
	return 0;
}

/* The Job is done with: marked reported (the owed note removed), or
 * deleted when its pod was stuck.  0 done, -1 later. */
static int mark_done(dispatcher *d, track *t)
{
	kr_error err = {0};
	long st;
	char *name = kr_render_job_name(t->id);
	if (t->delete_job) {
		t->deleting = 1;
		/* Background: the Job's pods go too (the API's default for Jobs orphans them) */
		char *j = path(d, "/apis/batch/v1", "jobs", name);
		char *p = kr_asprintf("%s?propagationPolicy=Background", j);
		st = kr_kube_call(d->k, "DELETE", p, NULL, NULL, NULL, &err);
		free(p);
		free(j);
		if (st != 200 && st != 202 && st != 404 && st > 0)
			kr_log(KR_LOG_ERROR, NULL, "task %s: cannot delete Job %s: HTTP %ld", t->id, name, st);
	} else {
		json_object *ann = json_object_new_object();
		const char *status = t->owed_status    ? t->owed_status
		                     : t->cleanup_report ? t->cleanup_report
		                     : t->agent_report   ? t->agent_report
		                     : t->result == KR_EXIT_OK ? kr_settings_status_name(d->s, "completed")
		                                               : kr_settings_status_name(d->s, "failed");
		json_object_object_add(ann, REPORTED, json_object_new_string(status));
		if (t->owed_noted)
			json_object_object_add(ann, OWED, NULL);
		if (t->late)
			json_object_object_add(ann, LATE, json_object_new_string(t->late));
		st = patch_job(d, t, ann, &err);
		if (st != 200 && st != 404 && st > 0)
			kr_log(KR_LOG_WARN, NULL, "task %s: cannot mark Job %s as reported: HTTP %ld", t->id,
			       name, st);
	}
	free(name);
	if (st < 0) {
		kr_log(KR_LOG_DEBUG, NULL, "task %s: %s; tried again later", t->id, err.msg);
		return -1;
	}
	return 0;
}

/* A claim the launcher made for this task: its labels and annotation say
 * so.  One made by hand under the same name is never ours to delete.
 * 1 ours, 0 not, -1 the API server did not answer (try later). */
static int created_by_us(dispatcher *d, const char *p, const char *task_id)
{
	json_object *pvc = NULL;
	kr_error err = {0};
	int ours = 0;
	long st = kr_kube_call(d->k, "GET", p, NULL, NULL, &pvc, &err);
	if (st < 0)
		ours = -1;
	else if (st == 200) {
		const char *by = str_at(pvc, "metadata", "labels", "app.kubernetes.io/managed-by");
		const char *id = str_at(pvc, "metadata", "annotations", "keruta.io/task-id");
		ours = by && id && strcmp(by, "keruta-agent") == 0 && strcmp(id, task_id) == 0;
	}
	json_object_put(pvc);
	return ours;
}

/* 0 done (or nothing to do), -1 later. */
static int delete_pvc(dispatcher *d, track *t)
{
	if (!kr_settings_bool(d->s, KR_S_K8S_DELETE_PVC) || !t->lt.task ||
	    kr_ltask_parent(&t->lt) || kr_ltask_existing_claim(&t->lt) ||
	    strcmp(kr_settings_get(d->s, KR_S_K8S_WORK_VOLUME), "pvc"))
		return 0;
	char *name = kr_render_pvc_name(&t->lt);
	char *p = path(d, "/api/v1", "persistentvolumeclaims", name);
	kr_error err = {0};
	int ours = created_by_us(d, p, t->id);
	if (ours <= 0) {
		if (ours == 0)
			kr_log(KR_LOG_INFO, NULL,
			       "task %s: PVC %s was not created by keruta-agent for it; kept", t->id, name);
		free(p);
		free(name);
		return ours;
	}
	long st = kr_kube_call(d->k, "DELETE", p, NULL, NULL, NULL, &err);
	if (st != 200 && st != 202 && st != 404 && st > 0)
		kr_log(KR_LOG_WARN, NULL, "task %s: cannot delete PVC %s: HTTP %ld", t->id, name, st);
	free(p);
	free(name);
	return st < 0 ? -1 : 0;
}

/* The task record, for the cleanup Job and the PVC name of an adopted
 * task.  0, 1 later (keruta-api unavailable), -1 failed. */
static int need_task(dispatcher *d, track *t)
{
	if (t->lt.task)
		return 0;
	if (!api_ready(d))
		return 1;
	kr_error err = {0};
	if (kr_launcher_task(d->s, d->api, t->id, &t->lt, &err)) {
		kr_ltask_free(&t->lt);
		if (api_result(d, &err))
			return 1;
		kr_log(KR_LOG_WARN, NULL, "task %s: %s", t->id, err.msg);
		return -1;
	}
	api_result(d, &err);
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
		json_object *items = arr_at(ans, "items", NULL, NULL);
		if (arr_len(items))
			pod = kr_strdup(str_at(json_object_array_get_idx(items, 0), "metadata", "name", NULL));
	}
	json_object_put(ans);
	free(p);
	free(name);
	return pod;
}

/* Whether a cleanup Job follows a successful Job. */
static int cleanup_follows(const dispatcher *d, const track *t)
{
	/* An emptyDir volume dies with the pod: its main container ran
	 * `run --final-status yes`, collected and reported. */
	if (!kr_render_has_cleanup(d->s)) {
		kr_log(KR_LOG_INFO, NULL,
		       "task %s: emptyDir work volume: no cleanup Job, its main container collected",
		       t->id);
		return 0;
	}
	return kr_settings_bool(d->s, KR_S_K8S_CLEANUP_JOB);
}

/* Start the cleanup Job.  0 started (or it exists), 1 later, -1 cannot. */
static int start_cleanup(dispatcher *d, track *t)
{
	int rc = need_task(d, t);
	if (rc)
		return rc;
	if (kr_kube_retry_at(d->k))
		return 1;
	char *pod = source_pod(d, t);
	kr_error err = {0};
	json_object *cj = kr_render_cleanup_job(d->s, &t->lt, pod, t->node, &err);
	free(pod);
	rc = err.code ? -1 : create(d, "/apis/batch/v1", "jobs", cj, "the cleanup Job", &err);
	json_object_put(cj);
	if (rc < 0) {
		if (kr_kube_retry_at(d->k) && !stop_requested)
			return 1;
		kr_log(KR_LOG_ERROR, NULL, "task %s: %s", t->id, err.msg);
		return -1;
	}
	if (rc == 1) {
		/* it exists (a restarted launcher): it may be finished already */
		char *name = kr_render_cleanup_name(t->id);
		char *p = path(d, "/apis/batch/v1", "jobs", name);
		json_object *ans = NULL;
		kr_error gerr = {0};
		if (kr_kube_call(d->k, "GET", p, NULL, NULL, &ans, &gerr) == 200)
			on_job(d, "ADDED", ans);
		json_object_put(ans);
		free(p);
		free(name);
	}
	return 0;
}

/* What dispatch itself owes keruta-api, if anything. */
static void owe(dispatcher *d, track *t, const char *which, const char *message)
{
	replace(&t->owed_status, kr_settings_status_name(d->s, which));
	replace(&t->owed_msg, message);
}

/* A failure after COMPLETED: said, and written on the Job; the status stays. */
static void late_failure(track *t, const char *what)
{
	kr_log(KR_LOG_WARN, NULL, "task %s: %s after it was reported COMPLETED; the status stays", t->id,
	       what);
	replace(&t->late, what);
}

/* How long a Job that succeeded waits for its pod's events: the Job and
 * its pods come on two watches, and the Job's Complete can arrive first.
 * The pod's name and node are then known without a request per task. */
#define POD_LAG_MS 2000

/* The main Job finished.  0 on, 1 later. */
static int conclude_main(dispatcher *d, track *t)
{
	const char *done = kr_settings_status_name(d->s, "completed");
	if (t->outcome > 0) {
		t->result = KR_EXIT_OK;
		if (cleanup_follows(d, t) && !(t->agent_report && strcmp(t->agent_report, done) != 0)) {
			if (!t->pod && d->pods.active) {
				uint64_t now = kr_now_ms();
				if (!t->pod_wait_until)
					t->pod_wait_until = now + POD_LAG_MS;
				if (now < t->pod_wait_until)
					return 1;
			}
			int rc = start_cleanup(d, t);
			if (rc > 0)
				return 1;
			if (rc == 0) {
				t->st = T_CLEANUP;
				return 0;
			}
		}
		if (!t->agent_report)
			owe(d, t, "completed", NULL);
		t->st = T_SETTLE;
		return 0;
	}
	t->result = KR_EXIT_TASK_FAILED;
	d->failed++;
	if (!t->agent_report) {
		char *why = failure_reason(t);
		owe(d, t, "failed", why);
		free(why);
	} else if (strcmp(t->agent_report, done) == 0) {
		char *why = failure_reason(t);
		late_failure(t, why);
		free(why);
	}
	t->st = T_SETTLE;
	return 0;
}

/* The cleanup Job finished (or went away). */
static void conclude_cleanup(dispatcher *d, track *t)
{
	const char *done = kr_settings_status_name(d->s, "completed");
	int reported_done = (t->cleanup_report && strcmp(t->cleanup_report, done) == 0) ||
	                    (t->agent_report && strcmp(t->agent_report, done) == 0);
	if (t->cleanup_outcome < 0) {
		char *why = kr_asprintf("the cleanup Job failed: %s",
		                        t->cleanup_reason ? t->cleanup_reason : "no reason");
		if (reported_done) {
			late_failure(t, why);
		} else if (!t->cleanup_report) {
			owe(d, t, "failed", why);
			t->result = KR_EXIT_TASK_FAILED;
			d->failed++;
		}
		free(why);
	} else if (!t->cleanup_report && !reported_done) {
		/* an agent too old to say whether it reported, or one that died
		 * just after: keruta-api's answer decides (send_owed asks) */
		owe(d, t, "completed", NULL);
	}
	t->st = T_SETTLE;
}

/* A pod stuck past its threshold: FAILED, then the Job goes. */
static void give_up(dispatcher *d, track *t)
{
	/* "pod P: container C: Reason: message (for Ns); the Job was deleted" */
	char *full = kr_asprintf("%s%s%s%s (for %llus); the Job is deleted", t->pod ? "pod " : "",
	                         t->pod ? t->pod : "", t->pod ? ": " : "", t->bad,
	                         (unsigned long long)(((int64_t)kr_now_ms() - t->bad_since) / 1000));
	if (!t->agent_report)
		owe(d, t, "failed", full);
	free(full);
	t->delete_job = 1;
	t->result = KR_EXIT_TASK_FAILED;
	t->st = T_SETTLE;
	d->failed++;
}

/* Report what is owed, then mark the Job and remove the PVC.  0 done,
 * 1 later. */
static int settle(dispatcher *d, track *t)
{
	if (t->owed_status && !t->owed_sent) {
		if (send_owed(d, t)) {
			if (!t->owed_noted && !kr_kube_retry_at(d->k) && !stop_requested)
				note_owed(d, t);
			return 1;
		}
		t->owed_sent = 1;
	}
	if (stop_requested || kr_kube_retry_at(d->k) || mark_done(d, t))
		return 1;
	if (kr_settings_bool(d->s, KR_S_K8S_DELETE_PVC) && need_task(d, t) > 0)
		return 1;
	if (delete_pvc(d, t))
		return 1;
	t->st = T_DONE;
	return 0;
}

/* --------------------------------------------------------------- loop */

static size_t running(const dispatcher *d)
{
	size_t n = 0;
	for (const track *t = d->tracks; t; t = t->next)
		n += t->st == T_RUNNING || t->st == T_CLEANUP;
	return n;
}

/* Start PENDING tasks while there is room.  0 if the API answered, -1
 * if not asked (no room, keruta-api or the API server unavailable) or
 * it failed. */
static int take_pending(dispatcher *d)
{
	uint64_t conc = kr_settings_u64(d->s, KR_S_K8S_CONCURRENCY);
	if (conc == 0)
		conc = 1;
	size_t busy = running(d);
	if (busy >= conc || !api_ready(d) || kr_kube_retry_at(d->k))
		return -1;
	kr_pending list;
	kr_error err = {0};
	if (kr_launcher_pending(d->s, d->api, &list, &err)) {
		if (!api_result(d, &err))
			kr_log(KR_LOG_WARN, NULL, "cannot list PENDING tasks: %s", err.msg);
		kr_pending_free(&list);
		return -1;
	}
	api_result(d, &err);
	if (!list.is_list) {
		/* answered all the same: the next poll waits its interval (it was
		 * made at once, again and again, and --once never ended) */
		kr_log(KR_LOG_WARN, NULL, "the PENDING tasks answer is not a list; ignored");
		kr_pending_free(&list);
		return 0;
	}
	/* records are read only while there is room: the rest of the list is
	 * never parsed */
	for (size_t i = 0; i < list.n && busy < conc && !stop_requested && !kr_kube_retry_at(d->k);
	     i++) {
		char *what = kr_asprintf("PENDING task %zu", i + 1);
		const kr_node *item = kr_pending_item(&list, i, what, &err);
		/* keruta-api's GET /api/v1/tasks takes no status filter (its
		 * OpenAPI has none) and answers every task: only PENDING ones start */
		const kr_node *status = item ? kr_node_get(item, "status") : NULL;
		kr_ltask lt = {0};
		if (status && status->type == KR_NODE_SCALAR && strcmp(status->value, "PENDING") != 0) {
			/* not PENDING: left alone */
		} else if (!item || kr_ltask_load(&lt, item, what, &err) ||
		           /* an id that is no path segment could never be reported on: not taken */
		           kr_id_check("task id", kr_ltask_id(&lt), &err) ||
		           (!find(d, kr_ltask_id(&lt)) &&
		            kr_launcher_task_repository(d->s, d->api, &lt, &err))) {
			kr_log(KR_LOG_WARN, NULL, "%s; skipped", err.msg);
			kr_error_clear(&err);
		} else if (!find(d, kr_ltask_id(&lt))) {
			if (start(d, &lt, &err)) {
				kr_log(kr_kube_retry_at(d->k) ? KR_LOG_DEBUG : KR_LOG_ERROR, NULL,
				       "task %s: %s; will try again", kr_ltask_id(&lt), err.msg);
				kr_error_clear(&err);
			} else {
				busy++;
			}
		}
		kr_ltask_free(&lt);
		free(what);
	}
	kr_pending_free(&list);
	return 0;
}

static void soon(uint64_t *wake, uint64_t at)
{
	if (at && at < *wake)
		*wake = at;
}

/* Reopen the watches that ended, each on its own backoff and the API
 * server's.  At start (first) a failed list is fatal; later it is one
 * more failure to back off from. */
static int rewatch(dispatcher *d, int first, uint64_t *wake, kr_error *err)
{
	struct {
		kr_watch *w;
		const char *group, *kind;
		kr_watch_event cb;
	} ws[] = {{&d->jobs, "/apis/batch/v1", "jobs", on_job}, {&d->pods, "/api/v1", "pods", on_pod}};
	for (int i = 0; i < 2 && !stop_requested; i++) {
		kr_watch *w = ws[i].w;
		if (w->active)
			continue;
		uint64_t due = kr_watch_due(w);
		if (due) {
			soon(wake, due);
			continue;
		}
		int rc;
		if (w->gone || !w->rv[0]) {
			kr_log(KR_LOG_DEBUG, NULL, "re-listing %s", ws[i].kind);
			rc = relist(d, w, ws[i].group, ws[i].kind, ws[i].cb, err);
		} else {
			rc = kr_watch_start(w, err);
		}
		if (rc == 0)
			continue;
		if (first || err->code == KR_EXIT_USAGE)
			return -1;
		kr_log(KR_LOG_DEBUG, NULL, "%s", err->msg);
		kr_error_clear(err);
		w->fails++;
		w->retry_at = kr_now_ms() + kr_backoff_ms(w->fails, &d->seed);
		soon(wake, kr_watch_due(w));
	}
	return 0;
}

/* Move one task on as far as the servers allow; wake: when to look again. */
static void advance(dispatcher *d, track *t, uint64_t *wake)
{
	uint64_t later = kr_now_ms() + 1000;
	if (t->st == T_RUNNING && t->outcome) {
		if (conclude_main(d, t)) {
			soon(wake, kr_kube_retry_at(d->k) ? kr_kube_retry_at(d->k) : api_ready(d) ? later : d->api_retry_at);
			if (t->pod_wait_until > kr_now_ms())
				soon(wake, t->pod_wait_until);
		}
	} else if (t->st == T_RUNNING && t->bad && t->bad_family[0]) {
		uint64_t nowms = kr_now_ms();
		int64_t spent = (int64_t)nowms - t->bad_since;
		if (spent >= 0 && (uint64_t)spent >= t->bad_limit)
			give_up(d, t);
		else
			soon(wake, nowms + (t->bad_limit - (uint64_t)spent));
	}
	if (t->st == T_CLEANUP && t->cleanup_outcome)
		conclude_cleanup(d, t);
	if (t->st == T_SETTLE && settle(d, t)) {
		soon(wake, kr_kube_retry_at(d->k));
		soon(wake, d->api_retry_at > kr_now_ms() ? d->api_retry_at : later);
	}
}

/* A task whose report keruta-api could not take goes to the end of the
 * list, so one task's trouble (a 5xx for it alone) does not hold back
 * the others'. */
static void to_tail(track **pt)
{
	track *t = *pt;
	if (!t->next)
		return;
	*pt = t->next;
	track **end = pt;
	while (*end)
		end = &(*end)->next;
	t->next = NULL;
	*end = t;
}

/* The task of --task-id / --task-file, keruta-api asked on the backoff
 * while it does not answer (up to api_retries times). */
static int first_task(dispatcher *d, const char *id, kr_ltask *t, kr_error *err)
{
	uint64_t tries = kr_settings_u64(d->s, KR_S_API_RETRIES);
	for (unsigned n = 0;; n++) {
		if (kr_launcher_task(d->s, d->api, id, t, err) == 0)
			return 0;
		if (err->code != KR_EXIT_API || n >= tries || stop_requested)
			return -1;
		uint64_t delay = kr_backoff_ms(n + 1, &d->seed);
		kr_log(KR_LOG_WARN, NULL, "%s; retry %u of %llu in %.1f s", err->msg, n + 1,
		       (unsigned long long)tries, (double)delay / 1000.0);
		kr_error_clear(err);
		uint64_t end = kr_now_ms() + delay;
		while (!stop_requested && kr_now_ms() < end)
			poll(&(struct pollfd){wake_pipe[0], POLLIN, 0}, 1, (int)(end - kr_now_ms()));
	}
}

static int open_wake_pipe(void)
{
	if (pipe(wake_pipe))
		return -1;
	for (int i = 0; i < 2; i++) {
		fcntl(wake_pipe[i], F_SETFL, fcntl(wake_pipe[i], F_GETFL) | O_NONBLOCK);
		fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	return 0;
}

static void close_wake_pipe(void)
{
	for (int i = 0; i < 2; i++) {
		if (wake_pipe[i] >= 0)
			close(wake_pipe[i]);
		wake_pipe[i] = -1;
	}
}

int kr_dispatch(kr_settings *s, kr_error *err)
{
	if (kr_render_check(s, err))
		return err->code;
	dispatcher d = {.s = s, .seed = (unsigned)kr_now_ms() ^ (unsigned)getpid()};
	int code = KR_EXIT_OK;
	kr_ltask first = {0};
	int have_first = 0;
	stop_requested = 0;
	if (open_wake_pipe()) {
		kr_error_set(err, KR_EXIT_INTERNAL, "cannot create a pipe: %s", strerror(errno));
		return KR_EXIT_INTERNAL;
	}
	/* signals are caught from here on: every wait below ends on them */
	struct sigaction sa = {0}, old_term, old_int;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	/* one attempt per call: the health view below retries, on a backoff */
	d.api = kr_launcher_api(s, (const volatile int *)&stop_requested, 1, err);
	if (err->code) {
		code = err->code;
		goto out;
	}
	const char *file = kr_settings_get(s, KR_S_TASK_FILE);
	const char *id = kr_settings_get(s, KR_S_TASK_ID);
	int single = (file && *file) || (id && *id);
	if (!single && !d.api) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "dispatch needs --api-url (to take PENDING tasks), or one task with "
		             "--task-id / --task-file");
		code = KR_EXIT_USAGE;
		goto out;
	}
	if (single) {
		if (first_task(&d, id, &first, err)) {
			code = err->code ? err->code : KR_EXIT_INTERNAL;
			goto out;
		}
		have_first = 1;
		d.only = kr_strdup(kr_ltask_id(&first));
	}
	d.k = kr_kube_new(s, err);
	if (!d.k) {
		code = err->code;
		goto out;
	}
	kr_kube_set_cancel(d.k, &stop_requested, wake_pipe[0]);
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
	/* adopt first: the lists show the Jobs a previous run left */
	uint64_t wake = UINT64_MAX;
	if (rewatch(&d, 1, &wake, err)) {
		code = stop_requested ? KR_EXIT_OK : err->code ? err->code : KR_EXIT_API;
		goto restore;
	}
	if (have_first && start(&d, &first, err)) {
		code = stop_requested ? KR_EXIT_OK : err->code ? err->code : KR_EXIT_API;
		goto restore;
	}
	uint64_t interval = kr_settings_u64(s, KR_S_K8S_PENDING_INTERVAL);
	uint64_t next_poll = 0;
	int once = kr_settings_bool(s, KR_S_K8S_ONCE), idle_polls = 0;
	int single_result = -1;
	while (!stop_requested) {
		uint64_t now = kr_now_ms();
		wake = now + 5000;
		if (!single && now >= next_poll) {
			size_t before = d.started;
			if (take_pending(&d) == 0) {
				idle_polls = d.started == before ? idle_polls + 1 : 0;
				next_poll = now + interval;
			}
		}
		if (!single) {
			soon(&wake, next_poll > now ? next_poll : 0);
			soon(&wake, d.api_retry_at);
			soon(&wake, kr_kube_retry_at(d.k));
		}
		for (track **pt = &d.tracks; *pt && !stop_requested;) {
			track *t = *pt;
			unsigned fails = d.api_fails;
			advance(&d, t, &wake);
			if (t->st == T_DONE) {
				*pt = t->next;
				d.active--;
				d.finished++;
				if (d.only && strcmp(t->id, d.only) == 0)
					single_result = t->result;
				free_track(t);
				continue;
			}
			if (d.api_fails > fails && t->st == T_SETTLE) {
				to_tail(pt);
				if (*pt == t)
					pt = &t->next;
				continue;
			}
			pt = &t->next;
		}
		if (single && single_result >= 0 && !d.tracks)
			break;
		if (!single && once && d.active == 0 && idle_polls > 0)
			break;
		if (rewatch(&d, 0, &wake, err)) {
			code = err->code ? err->code : KR_EXIT_API;
			goto restore;
		}
		now = kr_now_ms();
		int64_t wait = wake > now ? (int64_t)(wake - now) : 0;
		if (wait > 5000)
			wait = 5000;
		if (!single && once && d.active == 0 && next_poll <= now)
			wait = 0;
		kr_kube_pump(d.k, (int)wait);
	}
	if (single)
		code = single_result >= 0 ? single_result : KR_EXIT_OK;
	if (stop_requested) {
		size_t owed = 0;
		for (track *t = d.tracks; t; t = t->next)
			owed += t->st == T_SETTLE;
		kr_log(KR_LOG_INFO, NULL,
		       "dispatch: stopping on a signal; %zu Job%s left running, %zu report%s owed (on the "
		       "Jobs; the next start adopts them)",
		       running(&d), running(&d) == 1 ? "" : "s", owed, owed == 1 ? "" : "s");
	}
restore:
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
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	close_wake_pipe();
	if (have_first)
		kr_ltask_free(&first);
	kr_kube_free(d.k);
	kr_http_free(d.api);
	free(d.only);
	return code;
}
