/* kube.c - see kube.h. */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "kube.h"
#include "http.h"
#include "launcher_settings.h"
#include "log.h"
#include "node.h"
#include "secret.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define ANSWER_MAX (64u << 20)  /* a list of many Jobs; more is a broken server */
#define EVENT_MAX (16u << 20)   /* one watch event                              */
#define WATCH_SECONDS 300
#define TOKEN_REREAD_MS 60000   /* bound service-account tokens rotate         */
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 30000
/* a watch that lived this long ended normally (timeoutSeconds, a proxy's
 * idle limit): reopened at once; a shorter one backs off */
#define WATCH_HEALTHY_MS 10000
/* kr_kube_call retries inside one call only while the backoff is short;
 * past this the caller is told at once and tries again later */
#define CALL_WAIT_MAX_MS 3000

struct kr_kube {
	char *server;     /* https://host:port, no trailing slash */
	char *ns;
	char *token;
	char *token_file; /* re-read now and then                 */
	uint64_t token_read_ms;
	char *ca_file, *cert_file, *key_file; /* read into the *_data once */
	kr_buf ca_data, cert_data, key_data;
	int insecure;
	uint64_t connect_ms, timeout_ms;
	unsigned retries;
	CURL *easy;
	CURLM *multi;
	unsigned long requests;
	unsigned fails;      /* failed rounds in a row (health)          */
	uint64_t retry_at;   /* no request before (monotonic ms)         */
	unsigned seed;
	const volatile sig_atomic_t *cancel;
	int wake_fd;
};

/* ------------------------------------------------------------ helpers */

static int b64_decode(const char *in, kr_buf *out)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned acc = 0;
	int bits = 0;
	for (const char *p = in; *p; p++) {
		if (*p == '=' || *p == '\n' || *p == '\r' || *p == ' ')
			continue;
		const char *c = strchr(tbl, *p);
		if (!c)
			return -1;
		acc = (acc << 6) | (unsigned)(c - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			kr_buf_addc(out, (char)((acc >> bits) & 0xff));
		}
	}
	return out->len ? 0 : -1;
}

/*
 * A CA, certificate or key file named by the kubeconfig (or the pod's
 * service account), read once into the blob curl is given: curl would
 * open the name itself on every request, and block for good on a FIFO.
 * The *-data form, when the kubeconfig has it, wins.
 */
static int load_file(const char *path, kr_buf *out, const char *what, kr_error *err)
{
	if (!path || out->len)
		return 0;
	size_t n = 0;
	char *text = kr_read_file(path, 1u << 20, &n, KR_EXIT_USAGE, what, err);
	if (!text)
		return -1;
	kr_buf_add(out, text, n);
	free(text);
	return 0;
}

static const char *scalar(const kr_node *map, const char *key)
{
	const kr_node *n = kr_node_get(map, key);
	return n && n->type == KR_NODE_SCALAR && !kr_node_is_null(n) ? n->value : NULL;
}

/* The entry `name` of a kubeconfig list (clusters, users, contexts). */
static const kr_node *named(const kr_node *root, const char *list, const char *name,
                            const char *inner)
{
	const kr_node *l = kr_node_get(root, list);
	if (!l || l->type != KR_NODE_SEQ || !name)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		const char *n = scalar(l->items[i], "name");
		if (n && strcmp(n, name) == 0) {
			const kr_node *v = kr_node_get(l->items[i], inner);
			return v && v->type == KR_NODE_MAP ? v : NULL;
		}
	}
	return NULL;
}

/* A path in a kubeconfig is relative to the file's directory. */
static char *rel_path(const char *config, const char *p)
{
	if (p[0] == '/')
		return kr_strdup(p);
	const char *slash = strrchr(config, '/');
	if (!slash)
		return kr_strdup(p);
	return kr_asprintf("%.*s/%s", (int)(slash - config), config, p);
}

static int load_data(const kr_node *m, const char *key, kr_buf *out, const char *file,
                     kr_error *err)
{
	const char *v = scalar(m, key);
	if (v && b64_decode(v, out)) {
		kr_error_set(err, KR_EXIT_USAGE, "%s: '%s' is not base64; fix the kubeconfig", file, key);
		return -1;
	}
	return 0;
}

static int load_kubeconfig(kr_kube *k, const char *file, const char *want_ctx, kr_error *err)
{
	kr_node *root = NULL;
	if (kr_node_load_file(file, &root, err))
		return kr_error_wrap(err, KR_EXIT_USAGE, "cannot read the kubeconfig");
	int rc = -1;
	const char *cname = want_ctx ? want_ctx : scalar(root, "current-context");
	const kr_node *ctx = named(root, "contexts", cname, "context");
	if (!ctx) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "kubeconfig %s: context '%s' not found; give --context or set "
		             "current-context",
		             file, cname ? cname : "(none)");
		goto out;
	}
	const kr_node *cl = named(root, "clusters", scalar(ctx, "cluster"), "cluster");
	const kr_node *user = named(root, "users", scalar(ctx, "user"), "user");
	const char *server = cl ? scalar(cl, "server") : NULL;
	if (!server || strncmp(server, "http", 4) != 0) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "kubeconfig %s: context '%s' has no cluster with an http(s) server",
		             file, cname);
		goto out;
	}
	k->server = kr_strdup(server);
	size_t sl = strlen(k->server);
	while (sl && k->server[sl - 1] == '/')
		k->server[--sl] = '\0';
	if (scalar(ctx, "namespace"))
		k->ns = kr_strdup(scalar(ctx, "namespace"));
	const char *ins = scalar(cl, "insecure-skip-tls-verify");
	k->insecure = ins && strcmp(ins, "true") == 0;
	if (scalar(cl, "certificate-authority"))
		k->ca_file = rel_path(file, scalar(cl, "certificate-authority"));
	if (load_data(cl, "certificate-authority-data", &k->ca_data, file, err))
		goto out;
	if (user) {
		if (kr_node_get(user, "exec") || kr_node_get(user, "auth-provider")) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "kubeconfig %s: user of context '%s' uses an exec or auth-provider "
			             "plugin, which keruta-agent does not run; use a service-account "
			             "token (see README: dispatch on a real cluster)",
			             file, cname);
			goto out;
		}
		if (scalar(user, "token"))
			k->token = kr_strdup(scalar(user, "token"));
		else if (scalar(user, "tokenFile"))
			k->token_file = rel_path(file, scalar(user, "tokenFile"));
		if (scalar(user, "client-certificate"))
			k->cert_file = rel_path(file, scalar(user, "client-certificate"));
		if (scalar(user, "client-key"))
			k->key_file = rel_path(file, scalar(user, "client-key"));
		if (load_data(user, "client-certificate-data", &k->cert_data, file, err) ||
		    load_data(user, "client-key-data", &k->key_data, file, err))
			goto out;
	}
	rc = 0;
out:
	kr_node_free(root);
	return rc;
}

static int load_in_cluster(kr_kube *k, kr_error *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	k->server = strchr(host, ':') ? kr_asprintf("https://[%s]:%s", host, port ? port : "443")
	                              : kr_asprintf("https://%s:%s", host, port ? port : "443");
	k->token_file = kr_strdup(SA_DIR "/token");
	k->ca_file = kr_strdup(SA_DIR "/ca.crt");
	kr_error nerr = {0};
	char *ns = kr_read_value_file(SA_DIR "/namespace", 1u << 20, "namespace file", &nerr);
	if (ns)
		k->ns = ns;
	(void)err;
	return 0;
}

static int refresh_token(kr_kube *k, kr_error *err)
{
	if (!k->token_file || (k->token && kr_now_ms() - k->token_read_ms < TOKEN_REREAD_MS))
		return 0;
	char *t = kr_read_value_file(k->token_file, 1u << 20, "Kubernetes token file", err);
	if (t && kr_token_check("the Kubernetes token file", t, err)) {
		free(t);
		t = NULL;
	}
	if (!t)
		return k->token ? 0 : -1; /* keep the old one for a moment */
	free(k->token);
	k->token = t;
	k->token_read_ms = kr_now_ms();
	kr_secret_add(t);
	return 0;
}

kr_kube *kr_kube_new(const kr_settings *s, kr_error *err)
{
	if (kr_http_global_init(err))
		return NULL;
	kr_kube *k = kr_calloc(1, sizeof(*k));
	const char *cfg = kr_settings_get(s, KR_S_KUBECONFIG);
	char *owned = NULL;
	if (cfg && strchr(cfg, ':')) /* KUBECONFIG=a:b: the first that exists */
		for (char *p = owned = kr_strdup(cfg), *tok; (tok = strsep(&p, ":"));)
			if (*tok && access(tok, R_OK) == 0) {
				cfg = tok;
				break;
			}
	int rc;
	if (cfg && *cfg) {
		rc = load_kubeconfig(k, cfg, kr_settings_get(s, KR_S_K8S_CONTEXT), err);
	} else if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST")) {
		rc = load_in_cluster(k, err);
	} else {
		const char *home = getenv("HOME");
		char *def = kr_asprintf("%s/.kube/config", home ? home : "");
		if (access(def, R_OK) == 0) {
			rc = load_kubeconfig(k, def, kr_settings_get(s, KR_S_K8S_CONTEXT), err);
		} else {
			kr_error_set(err, KR_EXIT_USAGE,
			             "no Kubernetes credentials: not in a cluster (KUBERNETES_SERVICE_HOST "
			             "unset) and no kubeconfig; give --kubeconfig FILE");
			rc = -1;
		}
		free(def);
	}
	free(owned);
	if (rc == 0 && (kr_token_check("the kubeconfig's token", k->token, err) ||
	                load_file(k->ca_file, &k->ca_data, "Kubernetes CA file", err) ||
	                load_file(k->cert_file, &k->cert_data, "Kubernetes client certificate", err) ||
	                load_file(k->key_file, &k->key_data, "Kubernetes client key", err) ||
	                refresh_token(k, err)))
		rc = -1;
	if (rc) {
		kr_kube_free(k);
		return NULL;
	}
	kr_secret_add(k->token);
	const char *ns = kr_settings_get(s, KR_S_K8S_NAMESPACE);
	if (ns && *ns) {
		free(k->ns);
		k->ns = kr_strdup(ns);
	}
	if (!k->ns)
		k->ns = kr_strdup("default");
	k->connect_ms = kr_settings_u64(s, KR_S_API_CONNECT_TIMEOUT);
	k->timeout_ms = kr_settings_u64(s, KR_S_API_TIMEOUT);
	k->retries = 4;
	k->wake_fd = -1;
	k->seed = (unsigned)kr_now_ms() ^ (unsigned)getpid();
	k->easy = curl_easy_init();
	k->multi = curl_multi_init();
	if (!k->easy || !k->multi) {
		kr_error_set(err, KR_EXIT_INTERNAL, "cannot create a libcurl handle");
		kr_kube_free(k);
		return NULL;
	}
	return k;
}

void kr_kube_free(kr_kube *k)
{
	if (!k)
		return;
	if (k->easy)
		curl_easy_cleanup(k->easy);
	if (k->multi)
		curl_multi_cleanup(k->multi);
	free(k->server);
	free(k->ns);
	free(k->token);
	free(k->token_file);
	free(k->ca_file);
	free(k->cert_file);
	free(k->key_file);
	kr_buf_free(&k->ca_data);
	kr_buf_free(&k->cert_data);
	kr_buf_free(&k->key_data);
	free(k);
}

const char *kr_kube_namespace(const kr_kube *k)
{
	return k->ns;
}

const char *kr_kube_server(const kr_kube *k)
{
	return k->server;
}

unsigned long kr_kube_requests(const kr_kube *k)
{
	return k->requests;
}

void kr_kube_set_cancel(kr_kube *k, const volatile sig_atomic_t *flag, int wake_fd)
{
	k->cancel = flag;
	k->wake_fd = wake_fd;
}

static int cancelled(const kr_kube *k)
{
	return k->cancel && *k->cancel;
}

uint64_t kr_backoff_ms(unsigned fails, unsigned *seed)
{
	uint64_t base = BACKOFF_FIRST_MS;
	for (unsigned i = 1; i < fails && base < BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > BACKOFF_MAX_MS)
		base = BACKOFF_MAX_MS;
	/* jitter in the lower half: launchers restarted together spread out */
	return base / 2 + (uint64_t)rand_r(seed) % (base / 2 + 1);
}

uint64_t kr_kube_retry_at(const kr_kube *k)
{
	return k->retry_at > kr_now_ms() ? k->retry_at : 0;
}

/* A request found the server unusable.  Failures while a backoff runs
 * (the other watch, a call made in the same moment) are one round. */
static void health_failed(kr_kube *k, const char *why)
{
	uint64_t now = kr_now_ms();
	if (now < k->retry_at)
		return;
	k->fails++;
	uint64_t delay = kr_backoff_ms(k->fails, &k->seed);
	k->retry_at = now + delay;
	kr_log(k->fails == 1 ? KR_LOG_WARN : KR_LOG_DEBUG, NULL,
	       "Kubernetes API %s unavailable (%s); next attempt in %.1f s%s", k->server, why,
	       (double)delay / 1000.0, k->fails == 1 ? ", backing off up to 30 s" : "");
}

static void health_ok(kr_kube *k)
{
	if (k->fails)
		kr_log(KR_LOG_INFO, NULL, "Kubernetes API %s answers again (after %u failed attempt%s)",
		       k->server, k->fails, k->fails == 1 ? "" : "s");
	k->fails = 0;
	k->retry_at = 0;
}

/* Sleep until `until` (monotonic ms); -1 if cancelled meanwhile. */
static int pause_until(kr_kube *k, uint64_t until)
{
	for (;;) {
		if (cancelled(k))
			return -1;
		uint64_t now = kr_now_ms();
		if (now >= until)
			return 0;
		struct pollfd p = {k->wake_fd, POLLIN, 0};
		uint64_t step = until - now > 1000 ? 1000 : until - now;
		poll(&p, k->wake_fd >= 0 ? 1 : 0, (int)step);
	}
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return cancelled(ud) ? 1 : 0;
}

/* TLS and auth on one easy handle; the header list is the caller's. */
static struct curl_slist *setup(kr_kube *k, CURL *c, const char *url, kr_error *err)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)k->connect_ms);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "keruta-agent/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, k);
	if (k->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (k->ca_data.len) {
		struct curl_blob b = {k->ca_data.data, k->ca_data.len, CURL_BLOB_NOCOPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
	}
	if (k->cert_data.len) {
		struct curl_blob b = {k->cert_data.data, k->cert_data.len, CURL_BLOB_NOCOPY};
		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (k->key_data.len) {
		struct curl_blob b = {k->key_data.data, k->key_data.len, CURL_BLOB_NOCOPY};
		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
	struct curl_slist *h = NULL;
	if (refresh_token(k, err))
		return NULL;
	if (k->token) {
		char *a = kr_asprintf("Authorization: Bearer %s", k->token);
		h = curl_slist_append(h, a);
		memset(a, 0, strlen(a));
		free(a);
	}
	h = curl_slist_append(h, "Accept: application/json");
	k->requests++;
	return h;
}

typedef struct sink {
	kr_buf *b;
	size_t max;
	int over;
} sink;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	sink *s = ud;
	if (s->b->len + sz * n > s->max) {
		s->over = 1;
		return 0;
	}
	kr_buf_add(s->b, p, sz * n);
	return sz * n;
}

const char *kr_kube_status_message(json_object *answer)
{
	json_object *m;
	if (answer && json_object_object_get_ex(answer, "message", &m))
		return json_object_get_string(m);
	return "";
}

static json_object *parse(const kr_buf *b)
{
	if (!b->len || b->len > INT32_MAX)
		return NULL;
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, b->data, (int)b->len);
	if (json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

long kr_kube_call(kr_kube *k, const char *method, const char *path, json_object *body,
                  const char *content_type, json_object **out, kr_error *err)
{
	char *url = kr_asprintf("%s%s", k->server, path);
	const char *json = body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
	long status = -1;
	if (out)
		*out = NULL;
	if (cancelled(k)) {
		kr_error_set(err, KR_EXIT_API, "Kubernetes API %s %s: not sent (stopping)", method, path);
		free(url);
		return -1;
	}
	if (kr_kube_retry_at(k)) {
		kr_error_set(err, KR_EXIT_API,
		             "Kubernetes API %s %s: not sent: %s is unavailable (next attempt in %.1f "
		             "s)",
		             method, path, k->server, (double)(k->retry_at - kr_now_ms()) / 1000.0);
		free(url);
		return -1;
	}
	for (unsigned attempt = 0; attempt <= k->retries; attempt++) {
		CURL *c = k->easy;
		curl_easy_reset(c);
		struct curl_slist *h = setup(k, c, url, err);
		if (!h && err->code)
			break;
		if (json) {
			char *ct = kr_asprintf("Content-Type: %s", content_type ? content_type : "application/json");
			h = curl_slist_append(h, ct);
			free(ct);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
		}
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)k->timeout_ms);
		kr_buf b = {0};
		sink s = {&b, ANSWER_MAX, 0};
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
		CURLcode rc = curl_easy_perform(c);
		curl_slist_free_all(h);
		long code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (rc == CURLE_OK && code != 429 && code < 500) {
			health_ok(k);
			status = code;
			if (out)
				*out = parse(&b);
			kr_buf_free(&b);
			break;
		}
		if (s.over) {
			kr_error_set(err, KR_EXIT_API,
			             "Kubernetes API %s %s: answer larger than %u MiB; is %s really the API "
			             "server?",
			             method, path, ANSWER_MAX >> 20, k->server);
			kr_buf_free(&b);
			break;
		}
		json_object *ans = parse(&b);
		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			kr_error_set(err, KR_EXIT_API, "Kubernetes API %s %s: interrupted (stopping)",
			             method, path);
			json_object_put(ans);
			kr_buf_free(&b);
			break;
		}
		health_failed(k, rc != CURLE_OK ? curl_easy_strerror(rc) : code == 429 ? "HTTP 429" : "HTTP 5xx");
		if (rc != CURLE_OK)
			kr_error_set(err, KR_EXIT_API,
			             "Kubernetes API %s %s at %s: %s; check the server address, the network "
			             "and the CA",
			             method, path, k->server, curl_easy_strerror(rc));
		else
			kr_error_set(err, KR_EXIT_API, "Kubernetes API %s %s: HTTP %ld %s", method, path,
			             code, kr_kube_status_message(ans));
		json_object_put(ans);
		kr_buf_free(&b);
		/* a short outage is ridden out here; a longer one is the caller's
		 * to retry later, while the loop goes on following the watches */
		uint64_t again = kr_kube_retry_at(k), now = kr_now_ms();
		if (attempt < k->retries && (!again || again - now <= CALL_WAIT_MAX_MS) &&
		    pause_until(k, again) == 0) {
			kr_log(KR_LOG_DEBUG, NULL, "%s (retrying)", err->msg);
			kr_error_clear(err);
			continue;
		}
		break;
	}
	free(url);
	return status;
}

/* ------------------------------------------------------------ watches */

void kr_watch_init(kr_watch *w, kr_kube *k, const char *path, kr_watch_event cb, void *ctx)
{
	memset(w, 0, sizeof(*w));
	w->k = k;
	w->path = kr_strdup(path);
	w->cb = cb;
	w->ctx = ctx;
}

/* One line of the stream.  Whatever the server (or a proxy in front of
 * it) sends, a line that is not {"type": string, "object": {...}} is
 * counted and skipped: a launcher that runs for months must not die on
 * one bad event. */
static void deliver(kr_watch *w, const char *line, size_t len)
{
	if (w->status != 200 || len == 0 || (len == 1 && line[0] == '\r'))
		return;
	kr_buf b = {(char *)line, len, len};
	json_object *ev = parse(&b);
	json_object *type = NULL, *obj = NULL, *md, *rv;
	if (!ev || !json_object_object_get_ex(ev, "type", &type) ||
	    !json_object_is_type(type, json_type_string) ||
	    !json_object_object_get_ex(ev, "object", &obj) ||
	    !json_object_is_type(obj, json_type_object)) {
		w->bad++;
		/* the first few, then one in a thousand: a broken peer must
		 * not fill the log either */
		if (w->bad <= 3 || w->bad % 1000 == 0)
			kr_log(KR_LOG_WARN, NULL,
			       "watch %s: a line that is not an event {\"type\": string, \"object\": "
			       "{...}} (%lu so far); ignored: %.120s",
			       w->path, w->bad, line);
		json_object_put(ev);
		return;
	}
	const char *t = json_object_get_string(type);
	w->events++;
	if (strcmp(t, "ERROR") == 0) {
		json_object *code;
		long c = json_object_object_get_ex(obj, "code", &code) &&
		                         json_object_is_type(code, json_type_int)
		                 ? (long)json_object_get_int64(code)
		                 : 0;
		if (c == 410)
			w->gone = 1;
		kr_log(c == 410 ? KR_LOG_DEBUG : KR_LOG_WARN, NULL, "watch %s: error %ld %s", w->path,
		       c, kr_kube_status_message(obj));
		json_object_put(ev);
		return;
	}
	if (strcmp(t, "ADDED") != 0 && strcmp(t, "MODIFIED") != 0 && strcmp(t, "DELETED") != 0 &&
	    strcmp(t, "BOOKMARK") != 0) {
		kr_log(KR_LOG_DEBUG, NULL, "watch %s: event type '%.40s' ignored", w->path, t);
		json_object_put(ev);
		return;
	}
	/* a resume point is an opaque string; anything else would be sent
	 * back as "(null)" or a number the server never gave */
	if (json_object_object_get_ex(obj, "metadata", &md) &&
	    json_object_object_get_ex(md, "resourceVersion", &rv) &&
	    json_object_is_type(rv, json_type_string) && json_object_get_string_len(rv) > 0 &&
	    (size_t)json_object_get_string_len(rv) < sizeof(w->rv))
		snprintf(w->rv, sizeof(w->rv), "%s", json_object_get_string(rv));
	if (strcmp(t, "BOOKMARK") != 0)
		w->cb(w->ctx, t, obj);
	json_object_put(ev);
}

static size_t on_stream(char *p, size_t sz, size_t n, void *ud)
{
	kr_watch *w = ud;
	size_t len = sz * n;
	if (!w->status) {
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
		if (w->status && w->status < 500 && w->status != 429)
			health_ok(w->k);
	}
	if (w->status != 200) { /* a Status object: keep a little for the message */
		if (w->line.len < 65536)
			kr_buf_add(&w->line, p, len);
		return len;
	}
	kr_buf_add(&w->line, p, len);
	size_t start = 0;
	for (size_t i = w->line.len - len; i < w->line.len; i++) {
		if (w->line.data[i] != '\n')
			continue;
		deliver(w, w->line.data + start, i - start);
		start = i + 1;
	}
	if (start) {
		memmove(w->line.data, w->line.data + start, w->line.len - start);
		w->line.len -= start;
		w->line.data[w->line.len] = '\0';
	}
	if (w->line.len > EVENT_MAX) {
		kr_log(KR_LOG_WARN, NULL, "watch %s: an event larger than %u MiB; reconnecting",
		       w->path, EVENT_MAX >> 20);
		return 0;
	}
	return len;
}

int kr_watch_start(kr_watch *w, kr_error *err)
{
	kr_watch_stop(w);
	kr_buf url = {0};
	kr_buf_addf(&url, "%s%s%swatch=1&allowWatchBookmarks=true&timeoutSeconds=%d", w->k->server,
	            w->path, strchr(w->path, '?') ? "&" : "?", WATCH_SECONDS);
	if (w->rv[0]) {
		char *e = curl_easy_escape(NULL, w->rv, 0);
		kr_buf_addf(&url, "&resourceVersion=%s", e);
		curl_free(e);
	}
	CURL *c = curl_easy_init();
	if (!c) {
		kr_error_set(err, KR_EXIT_INTERNAL, "cannot create a libcurl handle");
		kr_buf_free(&url);
		return -1;
	}
	w->easy = c;
	w->hdr = setup(w->k, c, url.data, err);
	kr_buf_free(&url);
	if (!w->hdr && err->code) {
		curl_easy_cleanup(c);
		w->easy = NULL;
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, w->hdr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(c, CURLOPT_PRIVATE, w);
	/* a dead connection must not hang the launcher past the watch's own end */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(WATCH_SECONDS + 30) * 1000L);
	kr_buf_reset(&w->line);
	w->status = 0;
	w->gone = 0;
	w->active = 1;
	w->opened_ms = kr_now_ms();
	curl_multi_add_handle(w->k->multi, c);
	return 0;
}

uint64_t kr_watch_due(const kr_watch *w)
{
	uint64_t k = kr_kube_retry_at(w->k), now = kr_now_ms();
	uint64_t own = w->retry_at > now ? w->retry_at : 0;
	return k > own ? k : own;
}

void kr_watch_stop(kr_watch *w)
{
	if (w->easy) {
		curl_multi_remove_handle(w->k->multi, w->easy);
		curl_easy_cleanup(w->easy);
		w->easy = NULL;
	}
	curl_slist_free_all(w->hdr);
	w->hdr = NULL;
	w->active = 0;
}

void kr_watch_fini(kr_watch *w)
{
	kr_watch_stop(w);
	kr_buf_free(&w->line);
	free(w->path);
	memset(w, 0, sizeof(*w));
}

/* A stream ended: decide when it may be reopened. */
static void watch_ended(kr_kube *k, kr_watch *w, CURLcode rc)
{
	uint64_t now = kr_now_ms();
	int answered = w->status != 0;
	if (!answered || w->status >= 500 || w->status == 429)
		health_failed(k, !answered ? curl_easy_strerror(rc) : "HTTP 5xx");
	if (w->status == 410) {
		w->gone = 1;
	} else if (answered && w->status != 200) {
		kr_log(w->fails ? KR_LOG_DEBUG : KR_LOG_WARN, NULL, "watch %s: HTTP %ld %.200s; reopened with backoff",
		       w->path, w->status, w->line.data ? w->line.data : "");
	} else if (rc != CURLE_OK) {
		kr_log(KR_LOG_DEBUG, NULL, "watch %s ended: %s", w->path, curl_easy_strerror(rc));
	}
	if (w->status == 200 && now - w->opened_ms >= WATCH_HEALTHY_MS) {
		w->fails = 0;
		w->retry_at = 0;
	} else {
		w->fails++;
		w->retry_at = now + kr_backoff_ms(w->fails, &k->seed);
	}
	kr_watch_stop(w);
}

void kr_kube_pump(kr_kube *k, int timeout_ms)
{
	int running = 0;
	if (cancelled(k))
		return;
	curl_multi_perform(k->multi, &running);
	struct curl_waitfd wake = {k->wake_fd, CURL_WAIT_POLLIN, 0};
	/* waits the whole timeout even with no stream open; the wake fd ends
	 * it early when a signal arrives */
	curl_multi_poll(k->multi, k->wake_fd >= 0 ? &wake : NULL, k->wake_fd >= 0 ? 1 : 0,
	                timeout_ms, NULL);
	if (cancelled(k))
		return;
	curl_multi_perform(k->multi, &running);
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(k->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		kr_watch *w = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&w);
		CURLcode rc = m->data.result;
		if (!w)
			continue;
		if (!w->status)
			curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
		watch_ended(k, w, rc);
	}
}
