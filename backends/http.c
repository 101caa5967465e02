/*
 * http.c - JSON calls, downloads to a file and streamed multipart uploads
 * to keruta-api over one reused libcurl handle, with retries.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json.h>

#include "http.h"
#include "log.h"
#include "secret.h"
#include "supervise.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* Error bodies are only read for their message. */
#define ERROR_BODY_MAX (64u << 10)
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 10000

struct kr_http {
	CURL *curl;
	pthread_mutex_t lock;
	char *base;
	char *auth_header;
	char *ca_file;
	int insecure, debug;
	uint64_t connect_ms, timeout_ms, retry_max_ms;
	unsigned retries;
	const volatile int *abort_flag;
	unsigned seed;
	char errbuf[CURL_ERROR_SIZE];
};

/* One attempt's transfer state. */
typedef struct xfer {
	kr_http *h;
	const kr_http_req *rq;
	kr_http_resp *rs;
	enum { SINK_UNDECIDED, SINK_MEMORY, SINK_FILE, SINK_ERROR } sink;
	FILE *out;
	uint64_t got;
	int too_big;
	int write_errno;
	char *retry_after;
	char *disposition;
	uint64_t progress_ms; /* an upload's last progress line (0: not begun) */
} xfer;

static int aborted(const kr_http *h)
{
	return h->abort_flag && *h->abort_flag;
}

static CURLcode global_rc = CURLE_FAILED_INIT;
static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kr_http_global_init(kr_error *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init);
	if (global_rc == CURLE_OK)
		return 0;
	kr_error_set(err, KR_EXIT_INTERNAL, "cannot initialise libcurl: %s",
	             curl_easy_strerror(global_rc));
	return -1;
}

kr_http *kr_http_new(const kr_http_opts *o, kr_error *err)
{
	if (kr_http_global_init(err))
		return NULL;
	if (!o->base_url || (strncmp(o->base_url, "http://", 7) != 0 &&
	                     strncmp(o->base_url, "https://", 8) != 0)) {
		kr_secret_error_set(err, KR_EXIT_USAGE,
		                    "API URL '%s' must start with http:// or https://; fix --api-url or "
		                    "KERUTA_API_URL",
		                    o->base_url ? o->base_url : "");
		return NULL;
	}
	if (o->ca_file) {
		/* curl would block for good on a FIFO, and read a device forever */
		kr_error cerr = {0};
		int fd = kr_open_regular(o->ca_file, 64u << 20, KR_EXIT_USAGE, "CA file", &cerr);
		if (fd < 0) {
			kr_secret_error_set(
			        err, KR_EXIT_USAGE, "%s; fix --ca-file or KERUTA_CA_FILE", cerr.msg);
			return NULL;
		}
		close(fd);
	}
	if (kr_token_check("the API token", o->token, err))
		return NULL;
	CURL *c = curl_easy_init();
	if (!c) {
		kr_secret_error_set(
		        err, KR_EXIT_INTERNAL, "cannot create a libcurl handle (out of memory?)");
		return NULL;
	}
	kr_http *h = kr_calloc(1, sizeof(*h));
	h->curl = c;
	pthread_mutex_init(&h->lock, NULL);
	size_t n = strlen(o->base_url);
	while (n > 0 && o->base_url[n - 1] == '/')
		n--;
	h->base = kr_strndup(o->base_url, n);
	if (o->token && *o->token)
		h->auth_header = kr_asprintf("Authorization: Bearer %s", o->token);
	h->ca_file = o->ca_file ? kr_strdup(o->ca_file) : NULL;
	h->insecure = o->insecure;
	h->debug = o->debug;
	h->connect_ms = o->connect_timeout_ms;
	h->timeout_ms = o->timeout_ms;
	h->retries = o->retries;
	h->retry_max_ms = o->retry_max_ms;
	h->abort_flag = o->abort_flag;
	h->seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)h;
	return h;
}

void kr_http_free(kr_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	if (h->auth_header) {
		memset(h->auth_header, 0, strlen(h->auth_header));
		free(h->auth_header);
	}
	free(h->base);
	free(h->ca_file);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void kr_http_resp_free(kr_http_resp *rs)
{
	kr_buf_free(&rs->body);
	free(rs->filename);
	rs->filename = NULL;
}

char *kr_http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, (int)strlen(s));
	if (!e) {
		fprintf(stderr, "keruta-agent: out of memory\n");
		abort();
	}
	char *out = kr_strdup(e);
	curl_free(e);
	return out;
}

/* ---------------------------------------------------------------- parsing */

static void add_clean(kr_buf *b, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++)
		kr_buf_addc(b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i]);
	if (strlen(s) > max)
		kr_buf_adds(b, "...");
}

char *kr_http_server_error(const char *body, size_t len)
{
	if (!body || !len)
		return NULL;
	json_tokener *tok = json_tokener_new();
	json_object *root = json_tokener_parse_ex(tok, body, (int)(len > INT32_MAX ? INT32_MAX : len));
	json_tokener_free(tok);
	if (!root)
		return NULL;
	json_object *e = root, *inner = NULL;
	if (json_object_is_type(root, json_type_object) &&
	    json_object_object_get_ex(root, "error", &inner) &&
	    json_object_is_type(inner, json_type_object))
		e = inner;
	char *out = NULL;
	if (json_object_is_type(e, json_type_object)) {
		json_object *code = NULL, *msg = NULL;
		json_object_object_get_ex(e, "code", &code);
		json_object_object_get_ex(e, "message", &msg);
		/* Spring Boot's error document, keruta-api's own:
		 * {"status": 415, "error": "Unsupported Media Type", "message"?} */
		if (!code && inner && json_object_is_type(inner, json_type_string))
			code = inner;
		if (code && !json_object_is_type(code, json_type_string) &&
		    !json_object_is_type(code, json_type_int))
			code = NULL;
		if (msg && (!json_object_is_type(msg, json_type_string) || !*json_object_get_string(msg)))
			msg = NULL;
		if (code || msg) {
			kr_buf b = {0};
			if (code)
				add_clean(&b, json_object_get_string(code), 64);
			if (code && msg)
				kr_buf_adds(&b, ": ");
			if (msg)
				add_clean(&b, json_object_get_string(msg), 400);
			out = b.data;
		}
	}
	json_object_put(root);
	return out;
}

/* Longer waits are taken as this long: a year. */
#define KR_RETRY_AFTER_MAX_S (86400ull * 365)

int64_t kr_http_retry_after_ms(const char *v, int64_t now)
{
	while (*v == ' ' || *v == '\t')
		v++;
	if (isdigit((unsigned char)*v)) {
		char *end;
		errno = 0;
		unsigned long long s = strtoull(v, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (*end || errno)
			return -1;
		if (s > KR_RETRY_AFTER_MAX_S)
			s = KR_RETRY_AFTER_MAX_S;
		return (int64_t)s * 1000;
	}
	time_t when = curl_getdate(v, NULL);
	if (when == (time_t)-1)
		return -1;
	if (when <= now)
		return 0;
	/* a date centuries ahead must not overflow the milliseconds */
	uint64_t wait = (uint64_t)((int64_t)when - (int64_t)now);
	return (int64_t)(wait > KR_RETRY_AFTER_MAX_S ? KR_RETRY_AFTER_MAX_S : wait) * 1000;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The value of parameter `name` in a header like `attachment; a=b; name="x"`. */
static char *header_param(const char *v, const char *name)
{
	size_t nl = strlen(name);
	const char *p = v;
	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, name, nl) != 0)
			continue;
		const char *q = p + nl;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		kr_buf b = {0};
		if (*q == '"') {
			for (q++; *q && *q != '"'; q++) {
				if (*q == '\\' && q[1])
					q++;
				kr_buf_addc(&b, *q);
			}
		} else {
			for (; *q && *q != ';' && *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n'; q++)
				kr_buf_addc(&b, *q);
		}
		if (!b.data)
			kr_buf_adds(&b, "");
		return b.data;
	}
	return NULL;
}

char *kr_http_disposition_filename(const char *value)
{
	char *ext = header_param(value, "filename*");
	if (ext) {
		/* RFC 5987: charset'lang'percent-encoded */
		char *q1 = strchr(ext, '\'');
		char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
		if (q2) {
			kr_buf b = {0};
			int ok = 1;
			for (const char *p = q2 + 1; *p; p++) {
				if (*p == '%') {
					int hi = p[1] ? hexval(p[1]) : -1, lo = hi >= 0 && p[2] ? hexval(p[2]) : -1;
					if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
						ok = 0; /* also stops before a cut escape's terminator */
						break;
					}
					kr_buf_addc(&b, (char)(hi * 16 + lo));
					p += 2;
				} else {
					kr_buf_addc(&b, *p);
				}
			}
			free(ext);
			if (ok && b.len)
				return b.data;
			kr_buf_free(&b);
		} else {
			free(ext);
		}
	}
	char *plain = header_param(value, "filename");
	if (plain && !*plain) {
		free(plain);
		plain = NULL;
	}
	return plain;
}

/* ---------------------------------------------------------------- callbacks */

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
	xfer *x = ctx;
	size_t len = size * n;
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the last one. */
		free(x->retry_after);
		free(x->disposition);
		x->retry_after = x->disposition = NULL;
		return len;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon)
		return len;
	size_t nl = (size_t)(colon - data);
	const char *v = colon + 1;
	size_t vl = len - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	if (vl > 4096)
		return len;
	if (nl == 11 && strncasecmp(data, "retry-after", 11) == 0) {
		free(x->retry_after);
		x->retry_after = kr_strndup(v, vl);
	} else if (nl == 19 && strncasecmp(data, "content-disposition", 19) == 0) {
		free(x->disposition);
		x->disposition = kr_strndup(v, vl);
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	xfer *x = ctx;
	size_t len = size * n;
	if (x->sink == SINK_UNDECIDED) {
		long code = 0;
		curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200 && code < 300) {
			x->sink = x->rq->dest ? SINK_FILE : SINK_MEMORY;
			if (x->rq->dest) {
				x->out = fopen(x->rq->dest, "wbe");
				if (!x->out) {
					x->write_errno = errno;
					return 0;
				}
			}
		} else {
			x->sink = SINK_ERROR;
		}
	}
	if (x->sink == SINK_ERROR) {
		if (x->rs->body.len < ERROR_BODY_MAX) {
			size_t room = ERROR_BODY_MAX - x->rs->body.len;
			kr_buf_add(&x->rs->body, data, len < room ? len : room);
		}
		return len;
	}
	if (x->rq->max_bytes && x->got + len > x->rq->max_bytes) {
		x->too_big = 1;
		return 0;
	}
	x->got += len;
	if (x->sink == SINK_FILE) {
		if (fwrite(data, 1, len, x->out) != len) {
			x->write_errno = errno ? errno : EIO;
			return 0;
		}
	} else {
		kr_buf_add(&x->rs->body, data, len);
	}
	return len;
}

/* A large upload says how far it is every 2 s, so collect is not silent
 * for minutes. */
static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	xfer *x = ctx;
	(void)dt, (void)dn;
	if (x->rq->upload_path && ut > 0) {
		uint64_t now = kr_now_ms();
		if (!x->progress_ms) {
			x->progress_ms = now;
		} else if (now - x->progress_ms >= 2000) {
			x->progress_ms = now;
			kr_log(KR_LOG_INFO, NULL, "uploading %s: %.1f of %.1f MiB", x->rq->upload_name,
			       (double)un / 1048576.0, (double)ut / 1048576.0);
		}
	}
	return aborted(x->h) ? 1 : 0;
}

/* Headers at DEBUG, with the Authorization value replaced. */
static int on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *ctx)
{
	(void)c, (void)ctx;
	const char *dir = type == CURLINFO_HEADER_OUT ? "> " : type == CURLINFO_HEADER_IN ? "< " :
	                  type == CURLINFO_TEXT       ? "* " :
	                                                NULL;
	if (!dir)
		return 0;
	const char *p = data, *end = data + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t shown = len;
		while (shown && (p[shown - 1] == '\r'))
			shown--;
		if (shown) {
			if (shown >= 14 && strncasecmp(p, "authorization:", 14) == 0)
				kr_log(KR_LOG_DEBUG, NULL, "http %sAuthorization: %s", dir, KR_SECRET_MASK);
			else
				kr_log(KR_LOG_DEBUG, NULL, "http %s%.*s", dir, (int)(shown > 2000 ? 2000 : shown),
				       p);
		}
		p += len + (nl ? 1 : 0);
	}
	return 0;
}

/* ---------------------------------------------------------------- requests */

enum outcome { DONE_OK, DONE_FINAL, DONE_RETRY };

static const char *or_dash(const char *s)
{
	return s && *s ? s : "";
}

static int transport_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static int tls_failure(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
	       rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR ||
	       rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

static void setup(kr_http *h, xfer *x, const char *url, struct curl_slist *hdrs, curl_mime *mime)
{
	CURL *c = h->curl;
	const kr_http_req *rq = x->rq;
	/* reset keeps the connection cache, so the next call reuses the socket */
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "keruta-agent/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, h->insecure ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, h->insecure ? 0L : 2L);
	if (h->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	if (h->debug) {
		curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
	}
	if (mime) {
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	} else if (rq->json) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->json);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(rq->json));
	}
	if (strcmp(rq->method, "GET") == 0)
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	else if (strcmp(rq->method, "POST") != 0 || (!mime && !rq->json))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	if (!mime && !rq->json && strcmp(rq->method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
}

/* One request.  Fills err (a draft: the caller decides whether it is
 * final) and *retry_after_ms (-1 when the server named no delay). */
static enum outcome attempt(kr_http *h, xfer *x, const char *url, struct curl_slist *hdrs,
                            int64_t *retry_after_ms, kr_error *err)
{
	const kr_http_req *rq = x->rq;
	kr_http_resp *rs = x->rs;
	curl_mime *mime = NULL;
	*retry_after_ms = -1;
	if (rq->upload_path) {
		mime = curl_mime_init(h->curl);
		curl_mimepart *part = curl_mime_addpart(mime);
		curl_mime_name(part, rq->upload_field ? rq->upload_field : "file");
		CURLcode mrc = curl_mime_filedata(part, rq->upload_path);
		curl_mime_filename(part, rq->upload_name);
		curl_mime_type(part, "application/octet-stream");
		if (mrc != CURLE_OK) {
			curl_mime_free(mime);
			kr_secret_error_set(err, KR_EXIT_TASK_FAILED, "cannot read %s for upload: %s",
			                    rq->upload_path, curl_easy_strerror(mrc));
			return DONE_FINAL;
		}
	}
	h->errbuf[0] = '\0';
	setup(h, x, url, hdrs, mime);
	CURLcode rc = curl_easy_perform(h->curl);
	long code = 0;
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
	rs->status = code;
	rs->attempts++;
	int file_ok = 0;
	if (x->out) {
		file_ok = fclose(x->out) == 0;
		if (!file_ok && rc == CURLE_OK && !x->write_errno)
			x->write_errno = errno ? errno : EIO;
		x->out = NULL;
	}
	(void)file_ok;
	if (mime) {
		curl_easy_setopt(h->curl, CURLOPT_MIMEPOST, NULL);
		curl_mime_free(mime);
	}
	const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
	const char *what = or_dash(rq->what);
	int downloading = rq->dest && x->sink == SINK_FILE;

	if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		if (downloading)
			unlink(rq->dest);
		kr_secret_error_set(
		        err, KR_EXIT_TASK_FAILED,
		        "%s %s (%s): the answer is larger than the limit of %llu bytes; the transfer "
		        "was stopped%s (%s)",
		        rq->method, url, what, (unsigned long long)rq->max_bytes,
		        rq->dest ? " and the partial file removed" : "",
		        rq->limit_fix ? rq->limit_fix
		                      : "a fixed limit for JSON answers: check that api_url and "
		                        "api_paths name keruta-api's endpoints");
		return DONE_FINAL;
	}
	if (x->write_errno) {
		if (rq->dest)
			unlink(rq->dest);
		kr_secret_error_set(
		        err, KR_EXIT_TASK_FAILED, "%s %s (%s): cannot write %s: %s", rq->method, url,
		        what, or_dash(rq->dest), strerror(x->write_errno));
		return DONE_FINAL;
	}
	if (rc != CURLE_OK) {
		if (downloading)
			unlink(rq->dest);
		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			kr_secret_error_set(err, KR_EXIT_API, "%s %s (%s): interrupted (the agent is stopping)",
			                    rq->method, url, what);
			return DONE_FINAL;
		}
		if (tls_failure(rc)) {
			kr_secret_error_set(
			        err, KR_EXIT_API,
			        "%s %s (%s): TLS verification failed: %s; give the CA that signed the "
			        "server's certificate with --ca-file (KERUTA_CA_FILE)",
			        rq->method, url, what, why);
			return DONE_FINAL;
		}
		if (rc == CURLE_OPERATION_TIMEDOUT)
			kr_secret_error_set(
			        err, KR_EXIT_API,
			        "%s %s (%s): no complete answer within %llu ms (%s); raise --api-timeout "
			        "or check keruta-api",
			        rq->method, url, what, (unsigned long long)h->timeout_ms, why);
		else
			kr_secret_error_set(err, KR_EXIT_API,
			                    "cannot reach keruta-api: %s %s (%s): %s; check --api-url and that "
			                    "keruta-api is up",
			                    rq->method, url, what, why);
		return transport_retryable(rc) ? DONE_RETRY : DONE_FINAL;
	}
	if (code >= 200 && code < 300) {
		if (rq->dest && x->sink == SINK_UNDECIDED) { /* empty body: still a file */
			FILE *f = fopen(rq->dest, "wbe");
			if (!f || fclose(f) != 0) {
				kr_secret_error_set(err, KR_EXIT_TASK_FAILED, "cannot write %s: %s", rq->dest,
				                    strerror(errno));
				return DONE_FINAL;
			}
		}
		if (x->disposition)
			rs->filename = kr_http_disposition_filename(x->disposition);
		return DONE_OK;
	}
	char *server = kr_http_server_error(rs->body.data, rs->body.len);
	kr_buf detail = {0};
	if (server)
		kr_buf_addf(&detail, ": %s", server);
	else if (rs->body.len)
		kr_buf_adds(&detail, ": "), add_clean(&detail, rs->body.data, 200);
	free(server);
	const char *d = detail.data ? detail.data : "";
	enum outcome out = DONE_FINAL;
	if (code == 408 || code == 429 || code >= 500) {
		if (x->retry_after)
			*retry_after_ms = kr_http_retry_after_ms(x->retry_after, (int64_t)time(NULL));
		kr_secret_error_set(
		        err, KR_EXIT_API, "%s %s (%s): keruta-api answered %ld%s", rq->method, url,
		        what, code, d);
		out = DONE_RETRY;
	} else if (code == 401 || code == 403) {
		/* exit 3 as documented: keruta-api refused the agent */
		kr_secret_error_set(
		        err, KR_EXIT_API,
		        "%s %s (%s): keruta-api refused the request with %ld%s; check the API token "
		        "(KERUTA_API_TOKEN or --api-token-file)",
		        rq->method, url, what, code, d);
	} else if (code == 404) {
		kr_secret_error_set(err, KR_EXIT_USAGE,
		                    "%s %s (%s): keruta-api answered 404%s; check the id and the api_paths "
		                    "setting",
		                    rq->method, url, what, d);
	} else if (code >= 300 && code < 400) {
		kr_secret_error_set(
		        err, KR_EXIT_USAGE,
		        "%s %s (%s): keruta-api answered %ld (a redirect, not followed); set --api-url "
		        "to the final address",
		        rq->method, url, what, code);
	} else {
		kr_secret_error_set(
		        err, KR_EXIT_USAGE, "%s %s (%s): keruta-api refused the request with %ld%s",
		        rq->method, url, what, code, d);
	}
	kr_buf_free(&detail);
	return out;
}

static uint64_t backoff_ms(kr_http *h, unsigned n)
{
	uint64_t base = BACKOFF_FIRST_MS;
	for (unsigned i = 1; i < n && base < BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > BACKOFF_MAX_MS)
		base = BACKOFF_MAX_MS;
	/* full jitter in the upper half: spread agents out, never retry at once */
	return base / 2 + (uint64_t)rand_r(&h->seed) % (base / 2 + 1);
}

/* Sleep, waking early to give up when the agent is stopping. */
static int pause_ms(kr_http *h, uint64_t ms)
{
	uint64_t end = kr_now_ms() + ms;
	for (;;) {
		if (aborted(h) || kr_supervise_signal())
			return -1;
		uint64_t now = kr_now_ms();
		if (now >= end)
			return 0;
		uint64_t step = end - now < 50 ? end - now : 50;
		struct timespec ts = {0, (long)step * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int kr_http_request(kr_http *h, const kr_http_req *rq, kr_http_resp *rs, kr_error *err)
{
	char *url = kr_asprintf("%s%s", h->base, rq->path);
	struct curl_slist *hdrs = NULL;
	if (h->auth_header)
		hdrs = curl_slist_append(hdrs, h->auth_header);
	hdrs = curl_slist_append(hdrs, "Accept: application/json, */*;q=0.5");
	if (rq->json)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	int rc = KR_FAILED;
	uint64_t start = kr_now_ms();
	kr_error last = {0};

	pthread_mutex_lock(&h->lock);
	for (unsigned n = 1;; n++) {
		xfer x = {.h = h, .rq = rq, .rs = rs};
		kr_buf_reset(&rs->body);
		free(rs->filename);
		rs->filename = NULL;
		int64_t ra = -1;
		kr_error_clear(&last);
		rs->retry_after_ms = -1;
		uint64_t t0 = kr_now_ms();
		enum outcome o = attempt(h, &x, url, hdrs, &ra, &last);
		rs->retry_after_ms = ra;
		free(x.retry_after);
		free(x.disposition);
		kr_log(KR_LOG_DEBUG, NULL, "http: %s %s -> %ld (%llu ms, attempt %u)", rq->method, url,
		       rs->status, (unsigned long long)(kr_now_ms() - t0), n);
		if (o == DONE_OK) {
			rc = KR_OK;
			break;
		}
		if (o == DONE_FINAL) {
			rc = rs->status == 404 ? KR_NOT_FOUND : KR_FAILED;
			kr_error_set(err, last.code, "%s", last.msg);
			break;
		}
		/* Retry-After is a floor on our own backoff, never a way to retry
		 * sooner: "Retry-After: 0" from a proxy during a rolling restart
		 * spent every retry in a fraction of a second.  The budget of an
		 * outage is time (api_retry_max_time); api_retries only caps the
		 * count. */
		uint64_t spent = kr_now_ms() - start;
		uint64_t delay = backoff_ms(h, n);
		int server_delay = ra >= 0 && (uint64_t)ra > delay;
		if (server_delay)
			delay = (uint64_t)ra;
		const char *stop = NULL;
		if (n > h->retries)
			stop = "api_retries exhausted";
		else if (spent + delay > h->retry_max_ms)
			stop = server_delay ? "the server's Retry-After goes past api_retry_max_time"
			                    : "api_retry_max_time reached";
		else if (aborted(h) || kr_supervise_signal())
			stop = "the agent is stopping";
		if (stop) {
			kr_error_set(err, last.code ? last.code : KR_EXIT_API,
			             "%s (gave up after %u attempt%s in %.1f s: %s)", last.msg, n,
			             n == 1 ? "" : "s", (double)spent / 1000.0, stop);
			rc = KR_FAILED;
			break;
		}
		kr_log(KR_LOG_WARN, NULL, "%s; retry %u in %.1f s (giving up %.0f s from the first try)",
		       last.msg, n, (double)delay / 1000.0, (double)h->retry_max_ms / 1000.0);
		if (pause_ms(h, delay) < 0) {
			kr_error_set(err, last.code ? last.code : KR_EXIT_API,
			             "%s (not retried: the agent is stopping)", last.msg);
			rc = KR_FAILED;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	curl_slist_free_all(hdrs);
	free(url);
	return rc;
}
