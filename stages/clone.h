/*
 * clone.h - what the clone stage's two files share: the per-run state the
 * libgit2 callbacks reach through their payload, and the transport helpers
 * in clone_net.c (socket stream, credentials, certificates, progress).
 */
#ifndef KR_STAGE_CLONE_H
#define KR_STAGE_CLONE_H

#include <git2.h>
#include <stdint.h>

#include <keruta/plugin.h>

typedef struct clone_cfg {
	const char *url, *ref;
	const char *ca_file;
	int insecure;
	const char *token_file, *username, *password_file;
	const char *ssh_key_file, *ssh_passphrase_file, *known_hosts;
	const char *git_cache;
	const char *token_type; /* "basic" or "bearer" (token_bearer) */
	int ssh_insecure_host;
	int64_t retries;
	uint64_t retry_delay_ms, io_timeout_ms;
	int submodules;
	int64_t depth;
	int nodelay;
	int token_bearer;
} clone_cfg;

/* One run of the stage: what every callback needs. */
typedef struct clone_run {
	const kr_services *svc;
	kr_task *task;
	const clone_cfg *cfg;
	/* Credentials, read once per run; never logged (registered as secrets). */
	char *token, *user, *password, *ssh_passphrase;
	int cred_attempts;
	int auth_failed, cert_failed, cert_checked, cancelled;
	int warned_insecure_ssh;
	/* Status of the last plain-HTTP response our stream saw (0: none or
	 * TLS), so a 404 is told from a 503 without reading libgit2's words. */
	int http_status;
	int ssh_port;
	/* Progress: rate-limited log lines. */
	uint64_t started_ms, last_log_ms;
	unsigned int last_objects, total_objects;
	size_t last_bytes;
	int progress_logged;
	/* The remote's own progress text (sideband), relayed by lines. */
	char side[256], side_line[256];
	size_t side_len;
	int side_logged;
} clone_run;

uint64_t clone_now_ms(void);

/* The URL without a user:password@ part, for logs (caller frees). */
char *clone_url_public(const char *url);
/* ... also without trailing slashes and ".git": the repository it names,
 * for comparisons and the cache's mirror name (caller frees). */
char *clone_url_key(const char *url);

/* Point libgit2 at our socket stream (TCP_NODELAY, I/O timeout, checks the
 * agent's cancellation while waiting).  The run is reached through a
 * process-wide pointer because stream constructors take no payload. */
int clone_stream_install(clone_run *r);
void clone_stream_remove(void);

/* Fill the callbacks of a fetch with ours (payload = r). */
void clone_callbacks(git_remote_callbacks *cb, clone_run *r);

/* Fetch options with our callbacks and the bearer header (if any), the
 * per-transfer state of r reset.  Returns the header text, which hdrs[0]
 * points at while the fetch runs; the caller frees it. */
char *clone_fetch_options(clone_run *r, git_fetch_options *fo, char *hdrs[1]);

/* ---- the repository cache (clone_cache.c) ---- */

/* Bring the cache's mirror of url up to date.  0 with *mirror (the caller
 * frees it) set; -1 when the cache cannot be used, already said in a
 * warning: the clone goes on without it. */
int clone_cache_update(clone_run *r, const char *dir, const char *url, char **mirror);

/* Hold the mirror's lock (waiting for its holder): a file descriptor to
 * give to clone_cache_unlock, or -1 (warned). */
int clone_cache_lock(clone_run *r, const char *mirror);
void clone_cache_unlock(int fd);

/* Read credentials from files/env and register them as secrets. */
int clone_load_credentials(clone_run *r);
void clone_free_credentials(clone_run *r);

/* ---- the check-out of a fresh clone (clone_checkout.c) ---- */

/* Write tree into the fresh work dir wd (nothing in it but .git and
 * .keruta) with several threads, and the index.  0 done; -1 failed
 * (r->svc->fail called; what was written is the caller's to remove);
 * CLONE_CHECKOUT_LIBGIT2: nothing written, the tree or the settings need
 * git_checkout_tree() (logged at debug level). */
#define CLONE_CHECKOUT_LIBGIT2 1
int clone_checkout_fresh(clone_run *r, git_repository *repo, git_tree *tree, const char *wd);

/* Log the final progress line of a transfer (if any was made). */
void clone_progress_done(clone_run *r, const git_indexer_progress *p);

#endif
