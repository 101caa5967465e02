/*
 * kube.h - a small Kubernetes REST client over libcurl and json-c:
 * credentials from the in-cluster service account or a kubeconfig file
 * (token, token file, client certificate and key, CA; file or inline
 * data forms), JSON calls with retries, and watch streams multiplexed on
 * one curl multi handle so one thread follows every Job and pod.
 */
#ifndef KR_LAUNCHER_KUBE_H
#define KR_LAUNCHER_KUBE_H

#include <json.h>
#include <signal.h>
#include <stdint.h>

#include "settings.h"
#include "util.h"

typedef struct kr_kube kr_kube;

kr_kube *kr_kube_new(const kr_settings *s, kr_error *err);
void kr_kube_free(kr_kube *k);
const char *kr_kube_namespace(const kr_kube *k);
const char *kr_kube_server(const kr_kube *k);
/* HTTP requests made so far (watch connections included). */
unsigned long kr_kube_requests(const kr_kube *k);

/*
 * Cancellation: once *flag is non-zero every call, retry sleep and pump
 * returns at once (a transfer in flight is aborted within about a
 * second).  wake_fd (or -1) is polled with the watches, so a signal
 * handler that writes to it ends a pump without waiting for its timeout.
 */
void kr_kube_set_cancel(kr_kube *k, const volatile sig_atomic_t *flag, int wake_fd);

/*
 * One view of the API server's health for every request: a connection
 * failure, 429 or 5xx starts an exponential backoff with jitter (0.2 s
 * doubling to 30 s); until it expires kr_kube_call makes no request and
 * watches are not reopened, so an outage costs a request or two per step
 * instead of a storm.  Any answer ends it.  0 when the server is usable
 * now, else the monotonic ms of the next attempt.
 */
uint64_t kr_kube_retry_at(const kr_kube *k);

/* The delay before attempt `fails` + 1 after `fails` failures in a row:
 * 0.2 s doubling to 30 s, jittered down to half (seed: rand_r state). */
uint64_t kr_backoff_ms(unsigned fails, unsigned *seed);

/*
 * One call.  body (not consumed) is sent as JSON (content_type defaults
 * to application/json).  Returns the HTTP status (*out: the parsed
 * answer, or NULL) or -1 when no answer came after retries (err set).
 * Connection errors, 429 and 5xx are retried.
 */
long kr_kube_call(kr_kube *k, const char *method, const char *path, json_object *body,
                  const char *content_type, json_object **out, kr_error *err);
/* "Status" message of an error answer, for messages ("" if none). */
const char *kr_kube_status_message(json_object *answer);

/* A watch on a list path ("/apis/batch/v1/namespaces/ns/jobs?labelSelector=..."). */
typedef void (*kr_watch_event)(void *ctx, const char *type, json_object *object);

typedef struct kr_watch {
	kr_kube *k;
	char *path;
	char rv[128];         /* resume point                            */
	int active;           /* a connection is open                    */
	int gone;             /* 410: the resume point expired; re-list  */
	long status;          /* HTTP status of the last connection      */
	unsigned long events; /* events received                         */
	unsigned long bad;    /* lines that were not a usable event      */
	unsigned fails;       /* short-lived connections in a row        */
	uint64_t retry_at;    /* not reopened before (monotonic ms)      */
	uint64_t opened_ms;
	kr_watch_event cb;
	void *ctx;
	void *easy;           /* CURL *                                  */
	kr_buf line;
	struct curl_slist *hdr;
} kr_watch;

void kr_watch_init(kr_watch *w, kr_kube *k, const char *path, kr_watch_event cb, void *ctx);
/* Open the stream from w->rv.  0, or -1 with err. */
int kr_watch_start(kr_watch *w, kr_error *err);
/* When the watch may be reopened (or re-listed): 0 now, else monotonic
 * ms.  A stream that lived long enough is reopened at once; one that
 * ended early (or never opened) waits its own backoff, and every watch
 * waits for the server's (kr_kube_retry_at). */
uint64_t kr_watch_due(const kr_watch *w);
void kr_watch_stop(kr_watch *w);
void kr_watch_fini(kr_watch *w);

/* Move data on every open watch, waiting at most timeout_ms for some;
 * events are delivered from inside.  Watches whose stream ended are
 * left !active. */
void kr_kube_pump(kr_kube *k, int timeout_ms);

#endif
