/*
 * launcher_util.h - helpers of the launcher tests: the Kubernetes API test
 * server (tests/kubeapi) with a kubeconfig pointing at it, runs of
 * `keruta-agent render/dispatch` with the build tree's launcher module,
 * and JSON access.
 */
#ifndef KT_LAUNCHER_UTIL_H
#define KT_LAUNCHER_UTIL_H

#include <json.h>

#include "krtest.h"

typedef struct kt_kube {
	kt_api srv;        /* reuses kt_api's fields: pid, port, url, dir */
	char *kubeconfig;  /* token auth, current-context "test"          */
} kt_kube;

/* Start the server (token "kube-token", history step in seconds). */
int kt_kube_start(kt_kube *k, const char *step);
/* The same over TLS: tls holds the server's --tls-* arguments (NULL-ended);
 * the url is https, and the control calls need CURL_CA_BUNDLE set. */
int kt_kube_start_tls(kt_kube *k, const char *step, const char *const *tls);
void kt_kube_stop(kt_kube *k);
/* A control or API call; the answer parsed (NULL on failure). */
json_object *kt_kube_json(kt_kube *k, const char *method, const char *path, const char *body);

/* Env for the agent: the launcher module of this build, NULL-ended. */
const char *const *kt_launcher_env(void);

/* Run keruta-agent with args (NULL-ended) and extra env. */
int kt_agent_run(kt_result *r, const char *const *args, const char *const *env, int timeout_s);

/*
 * The fixture of the dispatch suites: the Kubernetes API test server (one
 * history step every 0.02 s) and the reference keruta-api, both started
 * (asserted) and stopped together.
 */
void kt_cluster_start(kt_kube *kube, kt_api *api);
/* The same, the pods' agents reporting to that keruta-api as the real ones do. */
void kt_cluster_start_reporting(kt_kube *kube, kt_api *api);
void kt_cluster_stop(kt_kube *kube, kt_api *api);
/* Tasks into keruta-api (asserted), a scenario into the Kubernetes server. */
void kt_seed(kt_api *api, const char *tasks_json);
void kt_scenario(kt_kube *kube, const char *json);
/* A main Job of ours and its pod, stored as if a launcher had created them
 * before it stopped: the pod is Pending, its main container waiting with
 * `reason`; `created` (any string, stored as given) is the pod's
 * creationTimestamp, or NULL for none. */
void kt_seed_waiting_pod(kt_kube *kube, const char *id, const char *created, const char *reason);
/* `keruta-agent dispatch` against both servers with these extra args
 * (NULL-ended), asserted to finish within 60 s. */
void kt_dispatch(kt_result *r, kt_kube *kube, kt_api *api, const char *const *more);
/* The statuses keruta-api received for a task, as JSON text ("[]": none). */
char *kt_statuses(kt_api *api, const char *id);
/* How many statuses `which` it received for a task (NULL: COMPLETED or FAILED). */
int kt_terminal_count(kt_api *api, const char *id, const char *which);
/* An object the Kubernetes server holds (the caller's reference), or NULL. */
json_object *kt_kube_object(kt_kube *kube, const char *kind, const char *name);
int kt_kube_exists(kt_kube *kube, const char *kind, const char *name);
/* Recorded requests (a server's /_control/requests answer) with this
 * method, a path ending with suffix and, unless NULL, a query holding query. */
int kt_count_requests(json_object *reqs, const char *method, const char *suffix,
                      const char *query);

/* o["a"]["b"]... by a dotted path with [N] for array items; NULL if absent. */
json_object *kt_jpath(json_object *o, const char *path);
const char *kt_jstr(json_object *o, const char *path);

#endif
