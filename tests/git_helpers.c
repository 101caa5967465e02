#include "git_helpers.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

char *gt_sh(const char *cwd, const char *fmt, ...)
{
	char *script = NULL;
	va_list ap;
	va_start(ap, fmt);
	cr_assert(vasprintf(&script, fmt, ap) >= 0);
	va_end(ap);
	const char *argv[] = {"sh", "-ec", script, NULL};
	const char *env[] = {"GIT_AUTHOR_NAME=t",      "GIT_AUTHOR_EMAIL=t@example.com",
	                     "GIT_COMMITTER_NAME=t",   "GIT_COMMITTER_EMAIL=t@example.com",
	                     "GIT_CONFIG_NOSYSTEM=1",  "GIT_TERMINAL_PROMPT=0",
	                     "GIT_CONFIG_GLOBAL=/dev/null", NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, env, cwd, NULL, 60), 0);
	cr_assert_eq(r.status, 0, "script failed (%d): %s\nstdout: %s\nstderr: %s", r.status,
	             script, r.out, r.err);
	char *out = strdup(r.out);
	size_t n = strlen(out);
	while (n && out[n - 1] == '\n')
		out[--n] = 0;
	kt_result_free(&r);
	free(script);
	return out;
}

static char *pool[256];
static size_t npool;

static char *keep(char *p)
{
	if (npool < sizeof pool / sizeof pool[0])
		pool[npool++] = p;
	return p;
}

char *gt_q(const char *cwd, const char *script)
{
	return keep(gt_sh(cwd, "%s", script));
}

char *gt_path(const char *dir, const char *name)
{
	return keep(kt_path(dir, name));
}

void gt_free_all(void)
{
	while (npool)
		free(pool[--npool]);
}

void gt_server_start(gt_server *s, const char *kind, const char *const *args)
{
	memset(s, 0, sizeof *s);
	s->dir = kt_tmpdir();
	char *port_file = kt_path(s->dir, "port");
	char *state = kt_path(s->dir, "state");
	char *script = kt_path(kt_srcdir(), "tests/gitserver/gitserve.py");
	const char *argv[32] = {"python3", script, kind, "--port-file", port_file};
	int n = 5;
	if (strcmp(kind, "cut") != 0) {
		argv[n++] = "--state";
		argv[n++] = state;
	}
	for (int i = 0; args && args[i] && n < 30; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		char *log = kt_path(s->dir, "server.log");
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	for (int i = 0; i < 300 && !s->port; i++) { /* up to 15 s */
		char *text = kt_read_file(port_file, NULL);
		if (text && atoi(text) > 0)
			s->port = atoi(text);
		free(text);
		if (!s->port) {
			cr_assert_neq(waitpid(pid, NULL, WNOHANG), pid, "gitserve.py %s exited early",
			              kind);
			usleep(50000);
		}
	}
	cr_assert_gt(s->port, 0, "gitserve.py %s did not start", kind);
	free(port_file);
	free(state);
	free(script);
}

void gt_server_stop(gt_server *s)
{
	if (s->pid > 0) {
		kill(-s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (s->dir) {
		kt_rmrf(s->dir);
		free(s->dir);
		s->dir = NULL;
	}
}

void gt_make_repo(const char *dir, int big)
{
	free(gt_sh(dir,
	           "git init -q -b main src && cd src\n"
	           "echo one > README && mkdir -p lib && echo 'int x;' > lib/a.c\n"
	           "%s"
	           "git add -A && git commit -qm first && git tag -a v1 -m v1\n"
	           "echo two >> README && git commit -qam second\n"
	           "git checkout -qb feature && echo feat > feature.txt && git add feature.txt\n"
	           "git commit -qm feature && git checkout -q main\n"
	           "cd .. && mkdir -p srv && git clone -q --bare src srv/repo.git\n"
	           "touch srv/repo.git/git-daemon-export-ok\n",
	           big ? "head -c 600000 /dev/urandom > blob.bin\n" : ""));
}

pid_t gt_agent_spawn(const char *cmd, const char *wd, const char *task_yaml,
                     const char *phase_list, const char *stages_yaml, const char *const *env,
                     int *out_fd, int *err_fd, char **dir_out)
{
	kf f;
	kf_init(&f, task_yaml);
	if (!task_yaml) {
		free(f.task);
		f.task = NULL;
	}
	free(f.work);
	f.work = strdup(wd);
	f.cwd = NULL;
	char *text = NULL;
	cr_assert(asprintf(&text,
	                   "version: 1\nphases:\n  %s: %s\nstages:\n%s\n", cmd, phase_list,
	                   stages_yaml) > 0);
	kf_pipeline(&f, text);
	free(text);
	const char *const args[] = {"--backend", "local", NULL};
	const char *envs[32] = {"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
	                        "KERUTA_REPOSITORY_URL", "KERUTA_REPOSITORY_REF",
	                        "KERUTA_GIT_TOKEN", "KERUTA_GIT_TOKEN_FILE", "KERUTA_CA_FILE"};
	int e = 7;
	for (int i = 0; env && env[i] && e < 31; i++)
		envs[e++] = env[i];
	envs[e] = NULL;
	pid_t pid = kf_spawn(&f, cmd, args, envs, out_fd, err_fd);
	/* the pipeline and task files stay until the caller removes dir */
	*dir_out = f.dir;
	f.dir = NULL;
	kf_free(&f);
	return pid;
}

int gt_agent(kt_result *r, const char *cmd, const char *wd, const char *task_yaml,
             const char *phase_list, const char *stages_yaml, const char *const *env)
{
	int out_fd, err_fd;
	char *dir = NULL;
	pid_t pid = gt_agent_spawn(cmd, wd, task_yaml, phase_list, stages_yaml, env, &out_fd,
	                           &err_fd, &dir);
	int rc = kt_wait(r, pid, out_fd, err_fd, 120);
	kt_rmrf(dir);
	free(dir);
	return rc;
}

char *gt_output(const kt_result *r)
{
	char *s = NULL;
	if (asprintf(&s, "%s\n%s", r->out ? r->out : "", r->err ? r->err : "") < 0)
		return NULL;
	return s;
}
