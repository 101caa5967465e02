/*
 * http.h - the keruta-api module's HTTP layer, over one reused libcurl
 * easy handle (so consecutive calls share one keep-alive connection).
 *
 * Every call: bearer token, TLS verified unless told otherwise, connect
 * and total timeouts, retries with exponential backoff and jitter on
 * connection errors, 408, 429 and 5xx (Retry-After honoured), bounded in
 * count and in total time.  Other 4xx are final.  Error messages carry
 * the server's error.code / error.message when the body has that shape,
 * and never the token.
 *
 * A kr_http is used by one thread at a time (it holds a lock per call).
 */
#ifndef KR_HTTP_H
#define KR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct kr_http kr_http;

typedef struct kr_http_opts {
	const char *base_url; /* http(s)://host[:port][/prefix]          */
	const char *token;    /* bearer token, or NULL                   */
	const char *ca_file;  /* CA bundle, or NULL for the system one   */
	int insecure;         /* no TLS verification                     */
	uint64_t connect_timeout_ms;
	uint64_t timeout_ms;  /* per attempt                             */
	unsigned retries;     /* attempts after the first                */
	uint64_t retry_max_ms;
	int debug;            /* dump headers at DEBUG (token masked)    */
	/* Set to non-zero (from another thread) to abort the call in flight
	 * and every retry: the call then fails at once. */
	const volatile int *abort_flag;
} kr_http_opts;

/* libcurl's process-wide set-up, done once whoever asks first (kr_http_new
 * does; so must any other user of libcurl before curl_easy_init).  0, or
 * -1 with err set. */
int kr_http_global_init(kr_error *err);

kr_http *kr_http_new(const kr_http_opts *o, kr_error *err);
void kr_http_free(kr_http *h);

typedef struct kr_http_req {
	const char *method;       /* GET, PUT, POST                          */
	const char *path;         /* appended to base_url; already escaped   */
	const char *json;         /* JSON request body, or NULL              */
	const char *upload_path;  /* multipart: file streamed from disk      */
	const char *upload_name;  /* ... its filename in the form            */
	const char *upload_field; /* ... its field name                      */
	const char *dest;         /* a 2xx body goes to this file            */
	uint64_t max_bytes;       /* cap on a 2xx body (0: none)             */
	const char *limit_fix;    /* what raises max_bytes, for the message;
	                           * NULL: a fixed limit                     */
	const char *what;         /* "the task", for messages                */
} kr_http_req;

typedef struct kr_http_resp {
	long status;       /* last HTTP status, 0 if none                  */
	kr_buf body;       /* 2xx body unless downloaded; else error body  */
	char *filename;    /* Content-Disposition filename, or NULL        */
	unsigned attempts; /* requests made                                */
	int64_t retry_after_ms; /* the last answer's Retry-After, or -1    */
} kr_http_resp;

/* KR_OK on 2xx; KR_NOT_FOUND on 404 (err filled too); else KR_FAILED. */
int kr_http_request(kr_http *h, const kr_http_req *rq, kr_http_resp *rs, kr_error *err);
void kr_http_resp_free(kr_http_resp *rs);

/* URL-encode one path segment (caller frees). */
char *kr_http_escape(const char *s);
/* "CODE: message" from {"error":{"code","message"}}, {"code","message"} or
 * Spring Boot's {"error": phrase, "message"}; NULL if the body has none
 * (caller frees). */
char *kr_http_server_error(const char *body, size_t len);
/* Parse a Retry-After value: seconds or an HTTP date.  -1 if invalid. */
int64_t kr_http_retry_after_ms(const char *value, int64_t now_epoch_s);
/* The filename of a Content-Disposition value (filename* preferred), or NULL. */
char *kr_http_disposition_filename(const char *value);

#endif
