/* chan.c - the task channel; see chan.h. */
#define _GNU_SOURCE
#include "chan.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "area.h"
#include "log.h"
#include "node.h"
#include "secret.h"
#include "task.h"

#define REQ_MAX (64u << 10)  /* a log message or a name: small      */
#define REQ_WAIT_MS 2000     /* a client that connects and stalls   */

struct kr_chan {
	kr_agent *a;
	int fd;
	char *path;
	char *tmpdir; /* the /tmp fallback directory, removed at close */
};

kr_chan *kr_chan_open(kr_agent *a, const char *work_dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	kr_chan *c = kr_calloc(1, sizeof(*c));
	c->a = a;
	c->fd = -1;
	char *area = kr_asprintf("%s/.keruta", work_dir);
	struct stat st;
	if (mkdir(area, 0755) != 0 && errno != EEXIST)
		kr_log(KR_LOG_DEBUG, NULL, "cannot create %s: %s", area, strerror(errno));
	if (lstat(area, &st) == 0 && S_ISDIR(st.st_mode))
		c->path = kr_asprintf("%s/agent.sock", area);
	free(area);
	if (!c->path || strlen(c->path) >= sizeof(sa.sun_path)) {
		free(c->path);
		c->path = NULL;
		char tmpl[] = "/tmp/keruta-agent-XXXXXX";
		if (mkdtemp(tmpl)) {
			c->tmpdir = kr_strdup(tmpl);
			c->path = kr_asprintf("%s/agent.sock", tmpl);
		}
	}
	if (!c->path) {
		kr_log(KR_LOG_WARN, NULL,
		       "cannot make a place for the task channel: %s; `keruta-agent log/progress/"
		       "artifact` will not work in this task",
		       strerror(errno));
		kr_chan_close(c);
		return NULL;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	unlink(c->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0177); /* the socket is born 0600 */
	int ok = c->fd >= 0 && bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	umask(old);
	ok = ok && chmod(c->path, 0600) == 0 && listen(c->fd, 16) == 0;
	if (!ok) {
		kr_log(KR_LOG_WARN, NULL,
		       "cannot listen on %s: %s; `keruta-agent log/progress/artifact` will not work "
		       "in this task",
		       c->path, strerror(errno));
		kr_chan_close(c);
		return NULL;
	}
	return c;
}

void kr_chan_close(kr_chan *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		close(c->fd);
		unlink(c->path);
	}
	if (c->tmpdir)
		rmdir(c->tmpdir);
	free(c->tmpdir);
	free(c->path);
	free(c);
}

int kr_chan_fd(const kr_chan *c)
{
	return c ? c->fd : -1;
}

const char *kr_chan_path(const kr_chan *c)
{
	return c ? c->path : NULL;
}

void kr_chan_allow(kr_chan *c, uid_t uid, gid_t gid)
{
	if (c && lchown(c->path, uid, gid) != 0)
		kr_log(KR_LOG_WARN, NULL, "cannot hand %s to %d:%d: %s", c->path, (int)uid, (int)gid,
		       strerror(errno));
	if (c && c->tmpdir && chown(c->tmpdir, uid, gid) != 0)
		kr_log(KR_LOG_WARN, NULL, "cannot hand %s to %d:%d: %s", c->tmpdir, (int)uid,
		       (int)gid, strerror(errno));
}

/* ------------------------------------------------------------ serving */

static const char *field(const kr_node *req, const char *name)
{
	const kr_node *v = kr_node_get(req, name);
	return v && v->type == KR_NODE_SCALAR && strlen(v->value) == v->value_len ? v->value : NULL;
}

static void ship_line(kr_chan *c, const char *level, const char *msg, size_t len)
{
	kr_buf line = {0}, masked = {0};
	kr_buf_addf(&line, "[%s] ", level);
	kr_buf_add(&line, msg, len);
	kr_secret_mask(line.data, line.len, &masked);
	/* the pod log too, like the script's own output */
	fprintf(stdout, "%.*s\n", (int)masked.len, masked.data);
	fflush(stdout);
	if (c->a->backend)
		c->a->backend->ops->ship_log(c->a->backend, "script", masked.data, masked.len);
	kr_buf_free(&line);
	kr_buf_free(&masked);
}

static int do_log(kr_chan *c, const kr_node *req, kr_buf *why)
{
	static const char *const levels[] = {"DEBUG", "INFO", "WARN", "WARNING", "ERROR"};
	const char *level = field(req, "level"), *msg = field(req, "message");
	size_t i = 0;
	while (level && i < sizeof(levels) / sizeof(levels[0]) && strcasecmp(level, levels[i]) != 0)
		i++;
	if (!level || i == sizeof(levels) / sizeof(levels[0])) {
		kr_buf_addf(why, "LEVEL must be DEBUG, INFO, WARN or ERROR");
		return -1;
	}
	if (!msg) {
		kr_buf_addf(why, "no MESSAGE");
		return -1;
	}
	const char *name = i == 3 ? "WARN" : levels[i];
	for (const char *p = msg;;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len || !nl)
			ship_line(c, name, p, len);
		if (!nl || !nl[1])
			break;
		p = nl + 1;
	}
	return 0;
}

static int do_progress(kr_chan *c, const kr_node *req, kr_buf *why)
{
	const char *pct = field(req, "percent"), *msg = field(req, "message");
	int64_t n = -1;
	if (!pct || kr_parse_int64(pct, &n) || n < 0 || n > 100) {
		kr_buf_addf(why, "PERCENT must be a whole number from 0 to 100");
		return -1;
	}
	kr_agent *a = c->a;
	const char *id = kr_task_get(a->task, KR_TASK_ID);
	if (!a->backend || !id) {
		kr_buf_addf(why, "this task reports to no keruta-api");
		return -1;
	}
	const char *status = kr_settings_status_name(a->settings, "in_progress");
	char num[8];
	snprintf(num, sizeof(num), "%d", (int)n);
	kr_task_set(a->task, KR_TASK_STATUS_PROGRESS, num);
	kr_error err = {0};
	int rc = a->backend->ops->report_status(a->backend, a->task,
	                                        status,
	                                        msg && *msg ? msg : NULL, &err);
	kr_task_set(a->task, KR_TASK_STATUS_PROGRESS, NULL);
	if (rc < 0) {
		kr_buf_addf(why, "keruta-api did not take the progress: %s", err.msg);
		return -1;
	}
	kr_log(KR_LOG_INFO, kr_task_stage(a->task), "progress %d%%%s%s", (int)n,
	       msg && *msg ? ": " : "", msg && *msg ? msg : "");
	return 0;
}

static int do_artifact(kr_chan *c, const kr_node *req, int file, kr_buf *why)
{
	const char *given = field(req, "name");
	struct stat st;
	if (file < 0 || fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
		kr_buf_addf(why, "FILE must be a regular file the script can read");
		return -1;
	}
	char name[200];
	kr_safe_file_name(given ? given : "", "artifact", name, sizeof(name));
	const char *work = kr_task_get(c->a->task, KR_TASK_WORK_DIR);
	const char *id = kr_task_get(c->a->task, KR_TASK_ID);
	kr_error aerr = {0};
	/* the task's own doc/, which .keruta/doc points at */
	int dfd = kr_area_task_open(work, id && kr_area_id_ok(id) ? id : KR_AREA_NO_ID, "doc",
	                            KR_AREA_F_CREATE, &aerr);
	int out = -1;
	char final[240];
	for (int i = 0; dfd >= 0 && out < 0 && i < 1000; i++) {
		if (i)
			snprintf(final, sizeof(final), "%d-%s", i, name);
		else
			snprintf(final, sizeof(final), "%s", name);
		out = openat(dfd, final, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (out < 0 && errno != EEXIST)
			break;
	}
	int rc = out >= 0 ? 0 : -1;
	if (rc)
		kr_buf_addf(why, "cannot queue it in the task's doc/ under %s/.keruta: %s",
		            work ? work : "?", aerr.msg[0] ? aerr.msg : strerror(errno));
	char buf[65536];
	uint64_t total = 0, max = kr_settings_u64(c->a->settings, KR_S_MAX_DOWNLOAD);
	while (rc == 0) {
		ssize_t n = pread(file, buf, sizeof(buf), (off_t)total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0) {
				kr_buf_addf(why, "cannot read it: %s", strerror(errno));
				rc = -1;
			}
			break;
		}
		total += (uint64_t)n;
		if (max && total > max) {
			kr_buf_addf(why, "it is larger than max_download");
			rc = -1;
		} else if (write(out, buf, (size_t)n) != n) {
			kr_buf_addf(why, "cannot write it: %s", strerror(errno));
			rc = -1;
		}
	}
	if (out >= 0 && (close(out) != 0 || rc) && rc == 0)
		rc = -1;
	if (rc && out >= 0)
		unlinkat(dfd, final, 0);
	if (rc == 0)
		kr_log(KR_LOG_INFO, kr_task_stage(c->a->task),
		       "artifact %s queued as .keruta/doc/%s (%llu bytes); collect uploads it", name,
		       final, (unsigned long long)total);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* Read the request (and a passed descriptor) within REQ_WAIT_MS. */
static int read_request(int conn, kr_buf *req, int *file)
{
	uint64_t until = kr_now_ms() + REQ_WAIT_MS;
	*file = -1;
	for (;;) {
		uint64_t now = kr_now_ms();
		struct pollfd pf = {conn, POLLIN, 0};
		if (now >= until || poll(&pf, 1, (int)(until - now)) <= 0)
			return -1;
		char data[4096];
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} cm;
		struct iovec iov = {data, sizeof(data)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		if (*file < 0) {
			mh.msg_control = cm.buf;
			mh.msg_controllen = sizeof(cm.buf);
		}
		ssize_t n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		for (struct cmsghdr *h = mh.msg_controllen ? CMSG_FIRSTHDR(&mh) : NULL; h;
		     h = CMSG_NXTHDR(&mh, h))
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && *file < 0)
				memcpy(file, CMSG_DATA(h), sizeof(int));
		if (n == 0)
			return 0;
		if (req->len + (size_t)n > REQ_MAX)
			return -1;
		kr_buf_add(req, data, (size_t)n);
	}
}

static void serve_one(kr_chan *c, int conn)
{
	kr_buf req = {0}, why = {0};
	int file = -1, rc = -1;
	kr_node *n = NULL;
	kr_error err = {0};
	if (read_request(conn, &req, &file) != 0 || !req.len) {
		kr_buf_adds(&why, "the request did not arrive");
	} else if (kr_node_load_string("request", req.data, req.len, &n, &err) ||
	           n->type != KR_NODE_MAP || !field(n, "cmd")) {
		kr_buf_adds(&why, "the request is not a JSON object with \"cmd\"");
	} else if (strcmp(field(n, "cmd"), "log") == 0) {
		rc = do_log(c, n, &why);
	} else if (strcmp(field(n, "cmd"), "progress") == 0) {
		rc = do_progress(c, n, &why);
	} else if (strcmp(field(n, "cmd"), "artifact") == 0) {
		rc = do_artifact(c, n, file, &why);
	} else {
		kr_buf_addf(&why, "unknown request '%.40s'", field(n, "cmd"));
	}
	kr_buf answer = {0};
	if (rc == 0)
		kr_buf_adds(&answer, "ok\n");
	else
		kr_buf_addf(&answer, "error: %s\n", why.data ? why.data : "failed");
	ssize_t w = send(conn, answer.data, answer.len, MSG_NOSIGNAL);
	(void)w;
	kr_buf_free(&answer);
	kr_node_free(n);
	kr_buf_free(&req);
	kr_buf_free(&why);
	if (file >= 0)
		close(file);
}

void kr_chan_serve(kr_chan *c)
{
	if (!c)
		return;
	for (int i = 0; i < 64; i++) {
		int conn = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0)
			return;
		int fl = fcntl(conn, F_GETFL);
		if (fl >= 0)
			fcntl(conn, F_SETFL, fl & ~O_NONBLOCK);
		serve_one(c, conn);
		close(conn);
	}
}

/* ------------------------------------------------------------ client */

static int usage_error(const char *cmd)
{
	static const struct {
		const char *cmd, *usage;
	} u[] = {{"log", "log LEVEL MESSAGE    (LEVEL: DEBUG, INFO, WARN or ERROR)"},
	         {"progress", "progress PERCENT [MESSAGE]    (PERCENT: 0 to 100)"},
	         {"artifact", "artifact FILE"}};
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
		if (strcmp(cmd, u[i].cmd) == 0)
			fprintf(stderr, "Usage: keruta-agent %s\n", u[i].usage);
	return KR_EXIT_USAGE;
}

static void json_field(kr_buf *b, const char *name, const char *value)
{
	kr_buf_addf(b, ",\"%s\":\"", name);
	kr_buf_add_json_str(b, value, strlen(value));
	kr_buf_addc(b, '"');
}

int kr_chan_client(const char *cmd, int argc, char **argv)
{
	/* argv[0] is the command's first argument */
	kr_buf req = {0};
	int file = -1;
	kr_buf_addf(&req, "{\"cmd\":\"%s\"", cmd);
	int is_log = strcmp(cmd, "log") == 0;
	if ((is_log && argc >= 2) || (strcmp(cmd, "progress") == 0 && argc >= 1)) {
		json_field(&req, is_log ? "level" : "percent", argv[0]);
		/* the rest of the words, as echo would join them */
		kr_buf msg = {0};
		for (int i = 1; i < argc; i++) {
			if (i > 1)
				kr_buf_addc(&msg, ' ');
			kr_buf_adds(&msg, argv[i]);
		}
		if (msg.len || is_log)
			json_field(&req, "message", msg.data ? msg.data : "");
		kr_buf_free(&msg);
	} else if (strcmp(cmd, "artifact") == 0 && argc == 1) {
		file = open(argv[0], O_RDONLY | O_CLOEXEC);
		if (file < 0) {
			fprintf(stderr, "keruta-agent artifact: cannot open %s: %s\n", argv[0],
			        strerror(errno));
			kr_buf_free(&req);
			return KR_EXIT_TASK_FAILED;
		}
		json_field(&req, "name", argv[0]);
	} else {
		kr_buf_free(&req);
		return usage_error(cmd);
	}
	kr_buf_addc(&req, '}');
	if (req.len > REQ_MAX) {
		/* the agent stops reading there: say so instead of a broken pipe */
		fprintf(stderr,
		        "keruta-agent %s: the request is %zu bytes; the agent takes at most %u: send "
		        "a long message in parts, or as an artifact\n",
		        cmd, req.len, REQ_MAX);
		if (file >= 0)
			close(file);
		kr_buf_free(&req);
		return KR_EXIT_TASK_FAILED;
	}

	const char *path = getenv("KERUTA_AGENT_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int rc = KR_EXIT_API;
	int fd = -1;
	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "keruta-agent %s: KERUTA_AGENT_SOCKET is not set; run this from a task "
		                "script that keruta-agent started\n",
		        cmd);
		rc = KR_EXIT_USAGE;
		goto out;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "keruta-agent %s: cannot reach the agent at %s: %s\n", cmd, path,
		        strerror(errno));
		goto out;
	}
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = {req.data, req.len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (file >= 0) {
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &file, sizeof(int));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)req.len || shutdown(fd, SHUT_WR) != 0) {
		fprintf(stderr, "keruta-agent %s: cannot send to the agent: %s\n", cmd, strerror(errno));
		goto out;
	}
	char answer[4096];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, answer + got, sizeof(answer) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(answer) - 1)
			break;
	}
	answer[got] = '\0';
	if (strncmp(answer, "ok", 2) == 0) {
		rc = 0;
	} else {
		fprintf(stderr, "keruta-agent %s: %s%s", cmd, got ? answer : "the agent did not answer\n",
		        got && answer[got - 1] != '\n' ? "\n" : "");
		rc = got ? KR_EXIT_TASK_FAILED : KR_EXIT_API;
	}
out:
	if (fd >= 0)
		close(fd);
	if (file >= 0)
		close(file);
	kr_buf_free(&req);
	return rc;
}
