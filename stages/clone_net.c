/*
 * clone_net.c - the clone stage's transport side: our own socket stream,
 * credentials, certificate and host-key checks, and progress lines.
 *
 * Why a socket stream of our own: libgit2 1.5 leaves Nagle's algorithm on
 * and sends an HTTP POST's headers and body in two writes, so every smart
 * HTTP request waits for the server's delayed ACK (~40 ms each).  Ours sets
 * TCP_NODELAY, and its reads and writes wait with poll() so a server that
 * stalls ends the transfer after io_timeout and a cancelled agent is heard
 * within a fraction of a second (libgit2's own sockets block forever).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <git2/sys/stream.h>

#include "clone.h"

#define POLL_SLICE_MS 200

uint64_t clone_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- socket stream ---------------------------------------------------- */

static clone_run *g_run; /* the run whose transfers use our stream */

typedef struct nstream {
	git_stream parent;
	char *host, *port;
	int fd;
	/* the start of an HTTP response after a request was written:
	 * "HTTP/1.1 404" is all we keep of it */
	int want_status;
	char status[12];
	size_t status_len;
} nstream;

static void note_request(nstream *s, const char *data, size_t len)
{
	if ((len >= 4 && memcmp(data, "GET ", 4) == 0) || (len >= 5 && memcmp(data, "POST ", 5) == 0)) {
		s->want_status = 1;
		s->status_len = 0;
	}
}

static void note_response(nstream *s, const char *data, size_t len)
{
	if (!s->want_status)
		return;
	while (len && s->status_len < sizeof s->status)
		s->status[s->status_len++] = *data++, len--;
	if (s->status_len < sizeof s->status)
		return;
	s->want_status = 0;
	const char *p = s->status;
	if (memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ' && p[9] >= '1' && p[9] <= '5' &&
	    p[10] >= '0' && p[10] <= '9' && p[11] >= '0' && p[11] <= '9' && g_run)
		g_run->http_status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

static int stream_error(const char *what, const nstream *s, int err)
{
	git_error_set(GIT_ERROR_NET, "%s %s:%s: %s", what, s->host, s->port,
	              err ? strerror(err) : "timed out");
	return -1;
}

/* Wait for fd to be ready; 0 ready, -1 with a libgit2 error set. */
static int wait_fd(nstream *s, short events, const char *what)
{
	uint64_t limit = g_run ? g_run->cfg->io_timeout_ms : 60000;
	uint64_t start = clone_now_ms();
	for (;;) {
		if (g_run && g_run->svc->cancelled(g_run->task)) {
			git_error_set_str(GIT_ERROR_NET, "transfer stopped: the stage was cancelled");
			return -1;
		}
		uint64_t spent = clone_now_ms() - start;
		if (limit && spent >= limit)
			return stream_error(what, s, 0);
		struct pollfd p = {.fd = s->fd, .events = events};
		int n = poll(&p, 1, POLL_SLICE_MS);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return stream_error(what, s, errno);
	}
}

static int ns_connect(git_stream *st)
{
	nstream *s = (nstream *)st;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(s->host, s->port, &hints, &res);
	if (rc) {
		git_error_set(GIT_ERROR_NET, "cannot resolve %s: %s", s->host, gai_strerror(rc));
		return -1;
	}
	int last = ECONNREFUSED;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		                a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		s->fd = fd;
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			if (errno != EINPROGRESS) {
				last = errno;
				close(fd);
				s->fd = -1;
				continue;
			}
			if (wait_fd(s, POLLOUT, "cannot connect to")) {
				close(fd);
				s->fd = -1;
				freeaddrinfo(res);
				return -1;
			}
			int soerr = 0;
			socklen_t len = sizeof soerr;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
			if (soerr) {
				last = soerr;
				close(fd);
				s->fd = -1;
				continue;
			}
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		freeaddrinfo(res);
		return 0;
	}
	freeaddrinfo(res);
	return stream_error("cannot connect to", s, last);
}

static ssize_t ns_read(git_stream *st, void *buf, size_t len)
{
	nstream *s = (nstream *)st;
	for (;;) {
		ssize_t n = recv(s->fd, buf, len, 0);
		if (n >= 0) {
			note_response(s, buf, (size_t)n);
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return stream_error("connection lost while reading from", s, errno);
		if (wait_fd(s, POLLIN, "no data for too long from"))
			return -1;
	}
}

static ssize_t ns_write(git_stream *st, const char *data, size_t len, int flags)
{
	nstream *s = (nstream *)st;
	(void)flags;
	note_request(s, data, len);
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(s->fd, data + off, len - off, MSG_NOSIGNAL);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return stream_error("connection lost while writing to", s, errno);
		if (wait_fd(s, POLLOUT, "cannot send to"))
			return -1;
	}
	return (ssize_t)len;
}

static int ns_close(git_stream *st)
{
	nstream *s = (nstream *)st;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	return 0;
}

static void ns_free(git_stream *st)
{
	nstream *s = (nstream *)st;
	ns_close(st);
	free(s->host);
	free(s->port);
	free(s);
}

static int ns_init(git_stream **out, const char *host, const char *port)
{
	nstream *s = calloc(1, sizeof *s);
	if (!s || !(s->host = strdup(host)) || !(s->port = strdup(port))) {
		if (s)
			free(s->host);
		free(s);
		git_error_set_oom();
		return -1;
	}
	s->fd = -1;
	s->parent.version = GIT_STREAM_VERSION;
	s->parent.connect = ns_connect;
	s->parent.read = ns_read;
	s->parent.write = ns_write;
	s->parent.close = ns_close;
	s->parent.free = ns_free;
	*out = &s->parent;
	return 0;
}

int clone_stream_install(clone_run *r)
{
	git_stream_registration reg = {.version = GIT_STREAM_VERSION, .init = ns_init};
	g_run = r;
	return git_stream_register(GIT_STREAM_STANDARD, &reg);
}

void clone_stream_remove(void)
{
	git_stream_register(GIT_STREAM_STANDARD, NULL);
	g_run = NULL;
}

/* ---- credentials ------------------------------------------------------ */

/* A secret file whole, trailing newlines cut (malloc'd, the caller's); NULL
 * with the reason in why. */
static char *read_secret_file(clone_run *r, const char *path, char *why, size_t why_size)
{
	size_t n = 0;
	char *buf = r->svc->read_file(r->task, path, 65536, &n, why, why_size);
	if (!buf)
		return NULL;
	char *out = NULL;
	if (memchr(buf, 0, n))
		snprintf(why, why_size, "it holds a NUL byte");
	else if (!(out = strdup(buf)))
		snprintf(why, why_size, "out of memory");
	memset(buf, 0, n);
	r->svc->free(buf);
	n = out ? strlen(out) : 0;
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = 0;
	return out;
}

/* A secret from `with:` file, else env VAR_FILE, else env VAR. */
static int load_one(clone_run *r, const char *opt_file, const char *what, const char *env,
                    const char *env_file, char **out)
{
	const char *file = opt_file && *opt_file ? opt_file : getenv(env_file);
	if (file && *file) {
		char why[256];
		*out = read_secret_file(r, file, why, sizeof(why));
		if (!*out)
			return r->svc->fail(r->task,
			                    "cannot read the git %s from %s: %s; mount the Secret there "
			                    "or fix the path (a text file of at most 64 KiB)",
			                    what, file, why);
	} else if (env && getenv(env) && *getenv(env)) {
		*out = strdup(getenv(env));
	}
	if (*out && **out)
		r->svc->add_secret(r->task, *out);
	return 0;
}

static const char *ssh_key_file(const clone_run *r)
{
	const char *k = r->cfg->ssh_key_file;
	return k && *k ? k : getenv("KERUTA_GIT_SSH_KEY_FILE");
}

int clone_load_credentials(clone_run *r)
{
	const clone_cfg *c = r->cfg;
	if (load_one(r, c->token_file, "token", "KERUTA_GIT_TOKEN", "KERUTA_GIT_TOKEN_FILE",
	             &r->token) ||
	    load_one(r, c->password_file, "password", "KERUTA_GIT_PASSWORD",
	             "KERUTA_GIT_PASSWORD_FILE", &r->password) ||
	    load_one(r, c->ssh_passphrase_file, "SSH key passphrase", NULL,
	             "KERUTA_GIT_SSH_PASSPHRASE_FILE", &r->ssh_passphrase))
		return KR_FAILED;
	/* libssh2 reads the key itself, blocking: make sure now that it is a
	 * file it can read, not a FIFO it would wait on. */
	const char *key = ssh_key_file(r);
	if (key && *key) {
		char why[256];
		char *text = r->svc->read_file(r->task, key, 1u << 20, NULL, why, sizeof(why));
		if (!text)
			return r->svc->fail(r->task,
			                    "cannot read the git SSH key from %s: %s; mount the Secret "
			                    "there or fix the path",
			                    key, why);
		r->svc->free(text);
	}
	const char *u = c->username && *c->username ? c->username : getenv("KERUTA_GIT_USERNAME");
	if (u && *u)
		r->user = strdup(u);
	return 0;
}

void clone_free_credentials(clone_run *r)
{
	free(r->token);
	free(r->password);
	free(r->ssh_passphrase);
	free(r->user);
	r->token = r->password = r->ssh_passphrase = r->user = NULL;
}

static int cred_cb(git_credential **out, const char *url, const char *url_user,
                   unsigned int allowed, void *payload)
{
	clone_run *r = payload;
	(void)url;
	if (r->cred_attempts++ > 0) {
		r->auth_failed = 1;
		git_error_set_str(GIT_ERROR_NET, "the server refused the credentials");
		return GIT_EAUTH;
	}
	const char *user = r->user ? r->user : (url_user && *url_user ? url_user : NULL);
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		if (r->token && !r->cfg->token_bearer)
			return git_credential_userpass_plaintext_new(out, user ? user : "x-access-token",
			                                             r->token);
		if (r->password && user)
			return git_credential_userpass_plaintext_new(out, user, r->password);
	}
	const char *key = ssh_key_file(r);
	if ((allowed & GIT_CREDENTIAL_SSH_KEY) && key && *key)
		return git_credential_ssh_key_new(out, user ? user : "git", NULL, key,
		                                  r->ssh_passphrase);
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user ? user : "git");
	r->auth_failed = 1;
	git_error_set_str(GIT_ERROR_NET,
	                  "the server asks for credentials and none were given (or they do not "
	                  "fit what it accepts)");
	return GIT_EAUTH;
}

/* ---- certificates and SSH host keys ----------------------------------- */

static char *base64(const unsigned char *p, size_t n)
{
	static const char tbl[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*o++ = tbl[(v >> 18) & 63];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? tbl[v & 63] : '=';
	}
	*o = 0;
	return out;
}

/* known_hosts wildcards: '*' and '?' only ('[' is literal there). */
static int wild(const char *p, const char *s)
{
	if (!*p)
		return !*s;
	if (*p == '*')
		return wild(p + 1, s) || (*s && wild(p, s + 1));
	if (!*s)
		return 0;
	char a = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
	char b = *s >= 'A' && *s <= 'Z' ? (char)(*s + 32) : *s;
	return (*p == '?' || a == b) && wild(p + 1, s + 1);
}

/* Does a known_hosts host list ("a,b,[c]:2222,*.d,!e") name host:port? */
static int hosts_match(char *list, const char *host, int port)
{
	char name[300];
	if (port == 22 || port <= 0)
		snprintf(name, sizeof name, "%s", host);
	else
		snprintf(name, sizeof name, "[%s]:%d", host, port);
	int match = 0;
	for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		int neg = *p == '!';
		if (strlen(p) < 300 && wild(p + neg, name)) {
			if (neg)
				return 0;
			match = 1;
		}
	}
	return match;
}

/* 1: the key is listed for the host; 0: not; -1: the file is unreadable.
 * Every line is read: a @revoked mark wins wherever it stands, also after
 * a line that lists the same key as valid. */
static int known_host(clone_run *r, const char *file, const char *host, int port,
                      const char *key_b64, int *revoked, char *why, size_t why_size)
{
	char *text = r->svc->read_file(r->task, file, 0, NULL, why, why_size);
	if (!text)
		return -1;
	int found = 0;
	for (char *rest = text, *line; !*revoked && (line = strsep(&rest, "\n"));) {
		char *save = NULL, *marker = NULL;
		char *hostsf = strtok_r(line, " \t\r\n", &save);
		if (!hostsf || *hostsf == '#')
			continue;
		if (*hostsf == '@') {
			marker = hostsf;
			hostsf = strtok_r(NULL, " \t\r\n", &save);
		}
		char *type = strtok_r(NULL, " \t\r\n", &save);
		char *blob = strtok_r(NULL, " \t\r\n", &save);
		if (!hostsf || !type || !blob || *hostsf == '|')
			continue; /* hashed names are not supported: see the option's help */
		if (!hosts_match(hostsf, host, port) || strcmp(blob, key_b64) != 0)
			continue;
		if (marker && strcmp(marker, "@revoked") == 0)
			*revoked = 1;
		else if (!marker)
			found = 1;
	}
	r->svc->free(text);
	return found;
}

static int check_host_key(clone_run *r, git_cert_hostkey *hk, const char *host)
{
	r->cert_failed = 1; /* until the key is accepted: such a failure is final */
	if (r->cfg->ssh_insecure_host) {
		if (!r->warned_insecure_ssh++)
			r->svc->log(r->task, KR_LOG_WARN,
			            "the SSH host key of %s is not checked (ssh_insecure_host: true)",
			            host);
		r->cert_failed = 0;
		return 0;
	}
	if (!(hk->type & GIT_CERT_SSH_RAW)) {
		git_error_set(GIT_ERROR_SSH, "no raw host key from %s to check", host);
		return -1;
	}
	char *b64 = base64((const unsigned char *)hk->hostkey, hk->hostkey_len);
	const char *file = r->cfg->known_hosts && *r->cfg->known_hosts
	                           ? r->cfg->known_hosts
	                           : getenv("KERUTA_GIT_KNOWN_HOSTS");
	char defpath[4096];
	if (!file || !*file) {
		const char *home = getenv("HOME");
		snprintf(defpath, sizeof defpath, "%s/.ssh/known_hosts", home ? home : "");
		file = defpath;
	}
	int revoked = 0;
	char why[256] = "out of memory";
	int ok = b64 ? known_host(r, file, host, r->ssh_port, b64, &revoked, why, sizeof(why)) : -1;
	free(b64);
	if (revoked) {
		git_error_set(GIT_ERROR_SSH, "the SSH host key of %s is marked @revoked in %s", host,
		              file);
		return -1;
	}
	if (ok == 1) {
		r->cert_failed = 0;
		return 0;
	}
	if (ok < 0)
		git_error_set(GIT_ERROR_SSH,
		              "cannot read known_hosts file %s to check the SSH host key of %s: %s; "
		              "set with: known_hosts (or KERUTA_GIT_KNOWN_HOSTS)",
		              file, host, why);
	else
		git_error_set(GIT_ERROR_SSH,
		              "the SSH host key of %s is not in %s: add it (ssh-keyscan, without -H) "
		              "or set ssh_insecure_host: true",
		              host, file);
	return -1;
}

static int cert_cb(git_cert *cert, int valid, const char *host, void *payload)
{
	clone_run *r = payload;
	r->cert_checked = 1;
	if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2)
		return check_host_key(r, (git_cert_hostkey *)cert, host);
	if (valid || r->cfg->insecure)
		return 0;
	r->cert_failed = 1;
	git_error_set(GIT_ERROR_SSL,
	              "the TLS certificate of %s is not trusted (or not issued for that name): "
	              "give its CA with ca_file or KERUTA_CA_FILE",
	              host);
	return -1;
}

/* ---- progress ---------------------------------------------------------- */

#define PROGRESS_EVERY_MS 2000

static void progress_line(clone_run *r, const git_indexer_progress *p, uint64_t now, int final)
{
	const double mib = 1024.0 * 1024.0;
	uint64_t span = now - (final ? r->started_ms : r->last_log_ms);
	size_t bytes = final ? p->received_bytes : p->received_bytes - r->last_bytes;
	double rate = span ? (double)bytes / mib / ((double)span / 1000.0) : 0.0;
	if (final)
		r->svc->log(r->task, KR_LOG_INFO,
		            "received %u objects, %.1f MiB in %.1f s (%.1f MiB/s)",
		            p->received_objects, (double)p->received_bytes / mib,
		            (double)span / 1000.0, rate);
	else
		r->svc->log(r->task, KR_LOG_INFO, "receiving: %u/%u objects, %.1f MiB, %.1f MiB/s",
		            p->received_objects, p->total_objects, (double)p->received_bytes / mib,
		            rate);
}

static int progress_cb(const git_indexer_progress *p, void *payload)
{
	clone_run *r = payload;
	if (r->svc->cancelled(r->task)) {
		r->cancelled = 1;
		git_error_set_str(GIT_ERROR_NET, "transfer stopped: the stage was cancelled");
		return -1;
	}
	uint64_t now = clone_now_ms();
	if (now - r->last_log_ms >= PROGRESS_EVERY_MS && p->total_objects) {
		progress_line(r, p, now, 0);
		r->last_log_ms = now;
		r->last_bytes = p->received_bytes;
		r->progress_logged = 1;
	}
	return 0;
}

/* The server's text ("Counting objects: 45% ...", "Compressing ...", and
 * for a local path libgit2's own pack building): a long clone spends most
 * of its time here before the first object arrives.  The first line is
 * logged at once, then the latest at most every PROGRESS_EVERY_MS. */
static int sideband_cb(const char *str, int len, void *payload)
{
	clone_run *r = payload;
	if (r->svc->cancelled(r->task)) {
		r->cancelled = 1;
		git_error_set_str(GIT_ERROR_NET, "transfer stopped: the stage was cancelled");
		return -1;
	}
	for (int i = 0; i < len; i++) {
		char c = str[i];
		if (c == '\r' || c == '\n') {
			if (r->side_len) {
				memcpy(r->side_line, r->side, r->side_len);
				r->side_line[r->side_len] = '\0';
				r->side_len = 0;
			}
		} else if (r->side_len < sizeof r->side - 1) {
			r->side[r->side_len++] = (c >= ' ' && c != 0x7f) ? c : '?';
		}
	}
	uint64_t now = clone_now_ms();
	if (r->side_line[0] && (!r->side_logged || now - r->last_log_ms >= PROGRESS_EVERY_MS)) {
		r->svc->log(r->task, KR_LOG_INFO, "remote: %s", r->side_line);
		r->side_line[0] = '\0';
		r->side_logged = 1;
		r->last_log_ms = now;
	}
	return 0;
}

void clone_progress_done(clone_run *r, const git_indexer_progress *p)
{
	if (p && p->total_objects)
		progress_line(r, p, clone_now_ms(), 1);
}

void clone_callbacks(git_remote_callbacks *cb, clone_run *r)
{
	cb->credentials = cred_cb;
	cb->certificate_check = cert_cb;
	cb->transfer_progress = progress_cb;
	cb->sideband_progress = sideband_cb;
	cb->payload = r;
}

char *clone_fetch_options(clone_run *r, git_fetch_options *fo, char *hdrs[1])
{
	git_fetch_options_init(fo, GIT_FETCH_OPTIONS_VERSION);
	clone_callbacks(&fo->callbacks, r);
	fo->update_fetchhead = 0;
	char *hdr = NULL;
	if (r->token && r->cfg->token_bearer &&
	    asprintf(&hdr, "Authorization: Bearer %s", r->token) > 0) {
		hdrs[0] = hdr;
		fo->custom_headers.strings = hdrs;
		fo->custom_headers.count = 1;
	}
	r->cred_attempts = 0;
	r->http_status = 0;
	r->side_len = 0;
	r->side_line[0] = '\0';
	r->side_logged = 0;
	r->started_ms = r->last_log_ms = clone_now_ms();
	r->last_bytes = 0;
	return hdr;
}
