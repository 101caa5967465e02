/* krtest.c - see krtest.h. */
#define _GNU_SOURCE
#include "krtest.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what)
{
	fprintf(stderr, "krtest: %s: %s\n", what, strerror(errno));
	abort();
}

const char *kt_builddir(void)
{
	const char *d = getenv("KR_BUILDDIR");
	return d ? d : ".";
}

const char *kt_srcdir(void)
{
	const char *d = getenv("KR_SRCDIR");
	return d ? d : ".";
}

const char *kt_agent(void)
{
	static char path[4096];
	if (!path[0])
		snprintf(path, sizeof(path), "%s/keruta-agent", kt_builddir());
	return path;
}

char *kt_path(const char *dir, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		die("asprintf");
	return p;
}

char *kt_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;
	if (asprintf(&p, "%s/kt.XXXXXX", base && *base ? base : "/tmp") < 0)
		die("asprintf");
	if (!mkdtemp(p))
		die("mkdtemp");
	return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		chmod(path, 0700), rmdir(path);
	else
		unlink(path);
	return 0;
}

void kt_rmrf(const char *path)
{
	if (path)
		nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

void kt_write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		die(path);
}

void kt_write_file(const char *path, const char *text)
{
	kt_write_bytes(path, text, strlen(text));
}

char *kt_split_child(const char *dir, const char *first, const char *second)
{
	char *path = kt_path(dir, "split.py");
	char *text = NULL;
	if (asprintf(&text,
	             "import fcntl, struct, sys, termios, time\n"
	             "out = sys.stdout.buffer\n"
	             "out.write(%s.encode()); out.flush()\n"
	             "while struct.unpack('i', fcntl.ioctl(1, termios.FIONREAD, b'0000'))[0]:\n"
	             "    time.sleep(0.01)\n"
	             "out.write(%s.encode()); out.flush()\n",
	             first, second) < 0)
		abort();
	kt_write_file(path, text);
	free(text);
	return path;
}

char *kt_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n - 1 == 0)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int kt_contains(const char *h, const char *n)
{
	return h && n && strstr(h, n) != NULL;
}

size_t kt_count(const char *h, const char *n)
{
	size_t c = 0, len = strlen(n);
	if (!h || !len)
		return 0;
	for (const char *p = h; (p = strstr(p, n)); p += len)
		c++;
	return c;
}

static char **build_env(const char *const *extra)
{
	size_t n = 0, m = 0;
	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	char **env = calloc(n + m + 1, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int drop = 0;
		for (size_t j = 0; j < m; j++) {
			const char *eq = strchr(extra[j], '=');
			size_t nl = eq ? (size_t)(eq - extra[j]) : strlen(extra[j]);
			if (strncmp(environ[i], extra[j], nl) == 0 && environ[i][nl] == '=')
				drop = 1;
		}
		if (!drop)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		if (strchr(extra[j], '='))
			env[k++] = (char *)extra[j];
	env[k] = NULL;
	return env;
}

pid_t kt_spawn(const char *const *argv, const char *const *env_extra, const char *cwd,
               int *out_fd, int *err_fd)
{
	int out[2], errp[2];
	if (pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC))
		die("pipe");
	char **env = build_env(env_extra);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		setpgid(0, 0);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(out[1], 1);
		dup2(errp[1], 2);
		if (cwd && chdir(cwd) != 0)
			_exit(126);
		environ = env;
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "krtest: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(env);
	close(out[1]);
	close(errp[1]);
	*out_fd = out[0];
	*err_fd = errp[0];
	return pid;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap = *cap ? *cap * 2 : 65536;
		*buf = realloc(*buf, *cap);
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

int kt_wait(kt_result *r, pid_t pid, int out_fd, int err_fd, int timeout_s)
{
	memset(r, 0, sizeof(*r));
	size_t out_cap = 0, err_cap = 0;
	append(&r->out, &r->out_len, &out_cap, "", 0);
	append(&r->err, &r->err_len, &err_cap, "", 0);
	double end = now_s() + timeout_s;
	struct pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
	int open_fds = 2;
	char buf[65536];
	while (open_fds > 0) {
		double left = end - now_s();
		if (left <= 0) {
			r->timed_out = 1;
			kill(-pid, SIGKILL);
			break;
		}
		int n = poll(fds, 2, (int)(left * 1000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t got = read(fds[i].fd, buf, sizeof(buf));
			if (got <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			} else if (i == 0) {
				append(&r->out, &r->out_len, &out_cap, buf, (size_t)got);
			} else {
				append(&r->err, &r->err_len, &err_cap, buf, (size_t)got);
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	int st;
	if (r->timed_out)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			r->status = -1;
			return -1;
		}
	}
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

int kt_run(kt_result *r, const char *const *argv, const char *const *env_extra,
           const char *cwd, const char *stdin_text, int timeout_s)
{
	int out_fd, err_fd;
	if (stdin_text) {
		/* through a file: simplest way to feed stdin without a writer thread */
		char *dir = kt_tmpdir();
		char *path = kt_path(dir, "stdin");
		kt_write_file(path, stdin_text);
		int fd = open(path, O_RDONLY);
		int saved = dup(0);
		dup2(fd, 0);
		close(fd);
		pid_t pid = kt_spawn(argv, env_extra, cwd, &out_fd, &err_fd);
		dup2(saved, 0);
		close(saved);
		kt_rmrf(dir);
		free(dir);
		free(path);
		return kt_wait(r, pid, out_fd, err_fd, timeout_s);
	}
	pid_t pid = kt_spawn(argv, env_extra, cwd, &out_fd, &err_fd);
	return kt_wait(r, pid, out_fd, err_fd, timeout_s);
}

void kt_result_free(kt_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

int kt_api_start(kt_api *api, const char *const *extra_args)
{
	memset(api, 0, sizeof(*api));
	api->dir = kt_tmpdir();
	char *port_file = kt_path(api->dir, "port");
	char *state = kt_path(api->dir, "state");
	char *server = kt_path(kt_srcdir(), "tests/refapi/keruta_api_server.py");
	char *openapi = getenv("KR_OPENAPI") ? strdup(getenv("KR_OPENAPI")) : NULL;
	const char *argv[32] = {"python3", server, "--port", "0", "--port-file", port_file,
	                        "--state-dir", state, "--idle-exit", "120"};
	int n = 10;
	if (openapi && access(openapi, R_OK) == 0) {
		argv[n++] = "--openapi";
		argv[n++] = openapi;
	}
	for (int i = 0; extra_args && extra_args[i] && n < 30; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	mkdir(state, 0700);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		setpgid(0, 0);
		char *log = kt_path(api->dir, "server.log");
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	api->pid = pid;
	int rc = -1;
	for (int i = 0; i < 200; i++) { /* up to 10 s for python to start */
		char *text = kt_read_file(port_file, NULL);
		if (text && atoi(text) > 0) {
			api->port = atoi(text);
			snprintf(api->url, sizeof(api->url), "http://127.0.0.1:%d", api->port);
			free(text);
			rc = 0;
			break;
		}
		free(text);
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		usleep(50000);
	}
	free(port_file);
	free(state);
	free(server);
	free(openapi);
	return rc;
}

void kt_api_stop(kt_api *api)
{
	if (api->pid > 0) {
		kill(-api->pid, SIGTERM);
		kill(api->pid, SIGTERM);
		waitpid(api->pid, NULL, 0);
	}
	kt_rmrf(api->dir);
	free(api->dir);
	memset(api, 0, sizeof(*api));
}

char *kt_api_call(kt_api *api, const char *method, const char *path, const char *json_body,
                  int *status)
{
	char url[512];
	snprintf(url, sizeof(url), "%s%s", api->url, path);
	const char *argv[16] = {"curl", "-sS", "-X", method, "-o", "-", "-w", "\n%{http_code}",
	                        url};
	int n = 9;
	if (json_body) {
		argv[n++] = "-H";
		argv[n++] = "Content-Type: application/json";
		argv[n++] = "--data-binary";
		argv[n++] = json_body;
	}
	argv[n] = NULL;
	kt_result r;
	if (kt_run(&r, argv, NULL, NULL, NULL, 30) != 0 || r.status != 0) {
		kt_result_free(&r);
		return NULL;
	}
	char *nl = strrchr(r.out, '\n');
	if (status)
		*status = nl ? atoi(nl + 1) : 0;
	if (nl)
		*nl = '\0';
	char *body = r.out;
	r.out = NULL;
	kt_result_free(&r);
	return body;
}

int kt_immutable(const char *path, int on)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int flags = 0, rc = ioctl(fd, FS_IOC_GETFLAGS, &flags);
	if (rc == 0) {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
	return rc == 0 ? 0 : -1;
}
