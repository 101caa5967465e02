/*
 * krtest.h - helpers for keruta-agent's Criterion tests: run a real
 * process with a timeout and capture its output, scratch directories,
 * files, and the reference keruta-api server (tests/refapi) on loopback.
 *
 * Ownership: every char * returned is the caller's (free()); kt_result
 * owns its buffers until kt_result_free().
 */
#ifndef KRTEST_H
#define KRTEST_H

#include <stddef.h>
#include <sys/types.h>

typedef struct kt_result {
	int status;      /* exit code, or 128 + signal; -1 if it could not run */
	int timed_out;   /* killed after the timeout                            */
	char *out;       /* stdout, NUL-terminated                              */
	size_t out_len;
	char *err;       /* stderr, NUL-terminated                              */
	size_t err_len;
} kt_result;

/*
 * Run argv (argv[0] searched in PATH) with env_extra ("NAME=VALUE"
 * entries added, "NAME" alone removes NAME; NULL-ended or NULL), stdin
 * from stdin_text (or /dev/null), in cwd (or the current directory).
 * Kills its process group after timeout_s seconds.  0 if it ran.
 */
int kt_run(kt_result *r, const char *const *argv, const char *const *env_extra,
           const char *cwd, const char *stdin_text, int timeout_s);
void kt_result_free(kt_result *r);

/* Start without waiting; kt_wait collects it (same semantics as kt_run). */
pid_t kt_spawn(const char *const *argv, const char *const *env_extra, const char *cwd,
               int *out_fd, int *err_fd);
int kt_wait(kt_result *r, pid_t pid, int out_fd, int err_fd, int timeout_s);

/* Paths of the build: the agent binary, source and build roots. */
const char *kt_agent(void);
const char *kt_srcdir(void);
const char *kt_builddir(void);

/* A fresh scratch directory (removed with kt_rmrf). */
char *kt_tmpdir(void);
void kt_rmrf(const char *path);
void kt_write_file(const char *path, const char *text);
/* Write DIR/split.py, a child that prints `first` on stdout (both texts
 * are Python string literals), waits until
 * its reader has taken every byte of it (FIONREAD on its own end of the
 * pipe), then prints `second`: the two arrive in separate reads, whatever
 * the machine's load.  Returns the script's path (caller frees). */
char *kt_split_child(const char *dir, const char *first, const char *second);
void kt_write_bytes(const char *path, const void *data, size_t len);
char *kt_read_file(const char *path, size_t *len); /* NULL if unreadable */
char *kt_path(const char *dir, const char *name);  /* dir/name           */
int kt_contains(const char *haystack, const char *needle);
size_t kt_count(const char *haystack, const char *needle);
/* Set (on) or clear the immutable attribute of a file or directory: the
 * one way to make a write, a mkdir or an unlink fail for root, whom modes
 * do not stop.  0 done; -1 not possible here (not root, or a file system
 * without the attribute): the caller skips. */
int kt_immutable(const char *path, int on);

/* The reference keruta-api server, on a free loopback port. */
typedef struct kt_api {
	pid_t pid;
	int port;
	char url[64];   /* http://127.0.0.1:PORT */
	char *dir;      /* its state directory   */
} kt_api;

/* extra_args: more server flags (e.g. "--token", "t"), NULL-ended. */
int kt_api_start(kt_api *api, const char *const *extra_args);
void kt_api_stop(kt_api *api);
/* A request to the server (control API or any path); the body is
 * returned (caller frees) and *status set.  NULL on transport error. */
char *kt_api_call(kt_api *api, const char *method, const char *path, const char *json_body,
                  int *status);

#endif
