/*
 * clone.c - the clone stage: put the task's repository into the work dir
 * (the work dir is the repository root) at the task's ref.
 *
 * Where the URL and ref come from, first match wins:
 *   1. `with: url:` / `with: ref:` (the operator's explicit override);
 *   2. the task: repository_url / repository_ref, asking the backend for
 *      the repository record when only repository_id is known;
 *   3. the environment: KERUTA_REPOSITORY_URL / KERUTA_REPOSITORY_REF.
 * The ref comes from the same place as the URL, except that `with: ref:`
 * always wins.  No URL anywhere: the stage is skipped with a log line.
 *
 * The work dir may be
 *   - missing, empty, or holding only `.keruta/`: the repository is made
 *     in place (init, add origin, fetch, check out);
 *   - a clone of the same URL (a volume inherited from a parent task):
 *     fetch and check out; files the checkout does not touch stay;
 *   - anything else: the stage fails and deletes nothing.
 * A repository that commits a .keruta entry (the agent's own area) is
 * refused before anything is checked out.
 * A transfer that breaks off is retried from a clean state: a failed fresh
 * clone removes what it created (only that), a failed fetch leaves the
 * existing clone as it was.  A refusal (no such repository or path, 4xx,
 * authentication, certificate) is final at once.  A fresh clone of a local
 * path takes the source's object files and refs instead of a pack (a source
 * whose objects dir holds anything but files and directories is refused;
 * one that borrows objects through alternates is fetched).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clone.h"
#include "stage_util.h"

#define CLONE_FIELD(member) KR_OPT_FIELD(clone_cfg, member)

static const kr_option clone_options[] = {
        {.name = "url", .type = KR_OPT_STRING,
         .help = "repository URL; overrides the task's repository and KERUTA_REPOSITORY_URL",
         CLONE_FIELD(url)},
        {.name = "ref", .type = KR_OPT_STRING,
         .help = "branch, tag or commit to check out; overrides the task's (default: remote "
                 "HEAD)",
         CLONE_FIELD(ref)},
        {.name = "ca_file", .type = KR_OPT_STRING,
         .help = "CA certificates for https remotes (else env KERUTA_CA_FILE, else the "
                 "system's)",
         CLONE_FIELD(ca_file)},
        {.name = "insecure", .type = KR_OPT_BOOL, .default_value = "false",
         .help = "do not verify https certificates (warns on every run)", CLONE_FIELD(insecure)},
        {.name = "token_file", .type = KR_OPT_STRING,
         .help = "file holding an https token (else env KERUTA_GIT_TOKEN_FILE or "
                 "KERUTA_GIT_TOKEN); sent as the password of `username` (default "
                 "x-access-token)",
         CLONE_FIELD(token_file)},
        {.name = "token_type", .type = KR_OPT_STRING, .default_value = "basic",
         .help = "basic: token as a password; bearer: sent as 'Authorization: Bearer TOKEN'",
         CLONE_FIELD(token_type)},
        {.name = "username", .type = KR_OPT_STRING,
         .help = "user name for https or ssh (else env KERUTA_GIT_USERNAME, else the URL's)",
         CLONE_FIELD(username)},
        {.name = "password_file", .type = KR_OPT_STRING,
         .help = "file holding the https password (else env KERUTA_GIT_PASSWORD_FILE or "
                 "KERUTA_GIT_PASSWORD)",
         CLONE_FIELD(password_file)},
        {.name = "ssh_key_file", .type = KR_OPT_STRING,
         .help = "private key for ssh remotes (else env KERUTA_GIT_SSH_KEY_FILE)",
         CLONE_FIELD(ssh_key_file)},
        {.name = "ssh_passphrase_file", .type = KR_OPT_STRING,
         .help = "file holding the key's passphrase (else env KERUTA_GIT_SSH_PASSPHRASE_FILE)",
         CLONE_FIELD(ssh_passphrase_file)},
        {.name = "known_hosts", .type = KR_OPT_STRING,
         .help = "known_hosts file for ssh host keys, plain host names only (else env "
                 "KERUTA_GIT_KNOWN_HOSTS, else ~/.ssh/known_hosts)",
         CLONE_FIELD(known_hosts)},
        {.name = "ssh_insecure_host", .type = KR_OPT_BOOL, .default_value = "false",
         .help = "accept any ssh host key (warns on every run)", CLONE_FIELD(ssh_insecure_host)},
        {.name = "retries", .type = KR_OPT_INT, .default_value = "3",
         .help = "retries of a transfer that broke off", CLONE_FIELD(retries)},
        {.name = "retry_delay", .type = KR_OPT_DURATION, .default_value = "2s",
         .help = "wait before the first retry; doubles each time, at most 30s",
         CLONE_FIELD(retry_delay_ms)},
        {.name = "io_timeout", .type = KR_OPT_DURATION, .default_value = "60s",
         .help = "give up a connection that sends nothing for this long (http and git://)",
         CLONE_FIELD(io_timeout_ms)},
        {.name = "submodules", .type = KR_OPT_BOOL, .default_value = "false",
         .help = "also check out submodules, recursively", CLONE_FIELD(submodules)},
        {.name = "depth", .type = KR_OPT_INT, .default_value = "0",
         .help = "shallow clone depth; libgit2 1.5 cannot: a full clone is made, with a warning",
         CLONE_FIELD(depth)},
        {.name = "git_cache", .type = KR_OPT_STRING,
         .help = "repository cache dir shared by tasks (else the git_cache setting, "
                 "--git-cache or KERUTA_GIT_CACHE): a new clone takes what it has and fetches "
                 "only what is new",
         CLONE_FIELD(git_cache)},
        {.name = "nodelay", .type = KR_OPT_BOOL, .default_value = "true",
         .help = "use the stage's own sockets for http and git:// (TCP_NODELAY, io_timeout)",
         CLONE_FIELD(nodelay)},
        {0}};

static int lg2_users; /* git_libgit2_init calls not yet shut down */

static int clone_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	clone_cfg *c = kr_stage_new_state(svc, cfg, sizeof(*c), "clone");
	if (!c)
		return KR_FAILED;
	const char *tt = c->token_type;
	c->token_bearer = tt && strcmp(tt, "bearer") == 0;
	char why[160] = "";
	if (tt && !c->token_bearer && strcmp(tt, "basic") != 0)
		snprintf(why, sizeof(why), "token_type must be basic or bearer, not '%.64s'", tt);
	else if (c->retries < 0 || c->retries > 100)
		snprintf(why, sizeof(why), "retries must be between 0 and 100, not %lld",
		         (long long)c->retries);
	else if (c->depth < 0)
		snprintf(why, sizeof(why), "depth must be 0 (full) or more, not %lld",
		         (long long)c->depth);
	if (*why) {
		free(c);
		return svc->fail(NULL, "clone: %s", why);
	}
	*state = c;
	return KR_OK;
}

static void clone_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
	while (lg2_users > 0) {
		git_libgit2_shutdown();
		lg2_users--;
	}
}

/* ---- helpers ----------------------------------------------------------- */

static const char *lg2_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

/* Same repository?  Ignores credentials, trailing slashes and ".git". */
static int same_url(const char *a, const char *b)
{
	char *x = clone_url_key(a), *y = clone_url_key(b);
	int same = x && y && strcmp(x, y) == 0;
	free(x);
	free(y);
	return same;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Names in dir other than "." and ".."; NULL-ended; *n their count. */
static char **list_dir(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	char **names = calloc(1, sizeof *names);
	*n = 0;
	if (!d || !names) {
		if (d)
			closedir(d);
		return names;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char **grown = realloc(names, (*n + 2) * sizeof *names);
		if (!grown)
			break;
		names = grown;
		names[(*n)++] = strdup(e->d_name);
		names[*n] = NULL;
	}
	closedir(d);
	return names;
}

static void free_list(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

/* Remove every entry of dir not named in keep (what a failed attempt made). */
static int remove_created(const char *dir, char **keep)
{
	size_t n;
	char **now = list_dir(dir, &n);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		int kept = 0;
		for (size_t k = 0; keep && keep[k]; k++)
			kept |= strcmp(keep[k], now[i]) == 0;
		if (kept || !now[i])
			continue;
		char *p = NULL;
		if (asprintf(&p, "%s/%s", dir, now[i]) < 0)
			continue;
		if (nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
			rc = -1;
		free(p);
	}
	free_list(now);
	return rc;
}

/* A path (or file:// URL) rather than a remote, as git tells them apart:
 * no "://" and no ':' before the first '/' (that would be host:path). */
static const char *local_path(const char *url)
{
	if (strncmp(url, "file://", 7) == 0)
		return url + 7;
	if (strstr(url, "://"))
		return NULL;
	const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
	return !colon || (slash && slash < colon) ? url : NULL;
}

/* A local repository that is not there is a mistake in the task, found
 * before any attempt: libgit2 would call it an unsupported protocol. */
static int check_local(clone_run *r, const char *url)
{
	const char *path = local_path(url);
	if (!path)
		return 0;
	struct stat st;
	if (stat(path, &st) < 0)
		return r->svc->fail(r->task,
		                    "clone: repository %s does not exist (%s); check the task's "
		                    "repository URL or path",
		                    url, strerror(errno));
	if (!S_ISDIR(st.st_mode) ||
	    git_repository_open_ext(NULL, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return r->svc->fail(r->task,
		                    "clone: %s is not a git repository; check the task's repository "
		                    "URL or path (a local path must name a repository or a bare "
		                    "repository)",
		                    url);
	return 0;
}

/* ---- one attempt ----------------------------------------------------- */

typedef struct attempt {
	clone_run *r;
	const char *wd, *url, *ref;
	int fresh;
	git_repository *repo;
	char oid_hex[GIT_OID_HEXSZ + 1];
	char *branch; /* checked out as a local branch, else detached */
	char *head;   /* local source: its HEAD's branch ("refs/heads/x"), for resolve */
	int retryable;
	char why[512]; /* the last transfer error, for the retry line */
	const char *mirror; /* the cache's mirror of url, or NULL */
	int from_cache;     /* objects and refs taken from the mirror */
} attempt;

/* The HTTP status of the failed request: seen by our stream for plain
 * HTTP; behind TLS only libgit2's report of it is left. */
static int http_status(const clone_run *r)
{
	const git_error *e = git_error_last();
	int status = r->http_status;
	if (status < 400 && e && e->klass == GIT_ERROR_HTTP && e->message &&
	    sscanf(e->message, "unexpected http status code: %d", &status) != 1)
		status = r->http_status;
	return status;
}

/* Whether another attempt can help, from the kind of failure (libgit2's
 * error class and code, the HTTP status), not from its wording. */
static int retryable(const clone_run *r, int rc, int status)
{
	if (r->auth_failed || r->cert_failed || r->cancelled || rc == GIT_EAUTH ||
	    rc == GIT_ECERTIFICATE)
		return 0;
	if (status >= 400) /* the server answered: only "later" is worth a retry */
		return status == 408 || status == 429 || status >= 500;
	const git_error *e = git_error_last();
	if (!e)
		return 1;
	switch (e->klass) {
	case GIT_ERROR_NET:
		/* an ERR packet: the server refused (no such repository, not
		 * exported, access denied); libgit2 gives no other sign of it */
		return !(e->message && strncmp(e->message, "remote error:", 13) == 0);
	case GIT_ERROR_OS:
	case GIT_ERROR_SSL:
	case GIT_ERROR_SSH:
	case GIT_ERROR_ZLIB:
	case GIT_ERROR_INDEXER:
	case GIT_ERROR_HTTP:
	case GIT_ERROR_CALLBACK:
		return 1; /* the connection or the data broke off */
	default:
		return 0; /* a bad URL, ref, repository or configuration */
	}
}

static int fetch(attempt *a, git_remote *remote)
{
	clone_run *r = a->r;
	git_fetch_options fo;
	char *hdrs[1];
	char *hdr = clone_fetch_options(r, &fo, hdrs);
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
	/* A clone made from the cache holds the mirror's refs: whatever the
	 * remote no longer has goes, so the result is what a clone from the
	 * remote alone gives. */
	if (a->from_cache)
		fo.prune = GIT_FETCH_PRUNE;
	/* A ref outside heads and tags (refs/pull/1/head, ...) is fetched by name. */
	char *spec = NULL;
	char *specs[2] = {"+refs/heads/*:refs/remotes/origin/*", NULL};
	git_strarray refspecs = {specs, 1};
	if (a->ref && strncmp(a->ref, "refs/", 5) == 0 && strncmp(a->ref, "refs/heads/", 11) != 0 &&
	    strncmp(a->ref, "refs/tags/", 10) != 0 &&
	    asprintf(&spec, "+%s:refs/keruta/ref", a->ref) > 0) {
		specs[1] = spec;
		refspecs.count = 2;
	}
	int rc = git_remote_fetch(remote, &refspecs, &fo, "keruta: fetch");
	free(hdr);
	free(spec);
	if (rc == 0) {
		clone_progress_done(r, git_remote_stats(remote));
		return 0;
	}
	const char *m = lg2_msg();
	snprintf(a->why, sizeof a->why, "%s", m);
	int status = http_status(r);
	a->retryable = retryable(r, rc, status);
	char *pub = clone_url_public(a->url);
	if (r->auth_failed || rc == GIT_EAUTH || status == 401)
		r->svc->fail(r->task,
		             "clone: authentication to %s failed: %s; check the token or password "
		             "(token_file, password_file, KERUTA_GIT_TOKEN) or the SSH key",
		             pub, m);
	else if (r->cert_failed)
		r->svc->fail(r->task, "clone: fetching %s failed: %s", pub, m);
	else if (!a->retryable && !r->cancelled)
		r->svc->fail(r->task,
		             "clone: fetching %s failed: %s; check the URL and that the repository "
		             "exists and is readable",
		             pub, m);
	else
		r->svc->fail(r->task, "clone: fetching %s failed: %s", pub, m);
	free(pub);
	return -1;
}

static int peel_ref(git_repository *repo, const char *name, git_oid *oid)
{
	git_reference *ref = NULL;
	git_object *c = NULL;
	if (git_reference_lookup(&ref, repo, name) < 0)
		return -1;
	int rc = git_reference_peel(&c, ref, GIT_OBJECT_COMMIT);
	git_reference_free(ref);
	if (rc == 0)
		git_oid_cpy(oid, git_object_id(c));
	git_object_free(c);
	return rc < 0 ? -2 : 0;
}

/* The commit to check out, and the branch name when ref is a branch:
 * remote branch first, then tag, then a commit id (git's order). */
static int resolve(attempt *a, git_remote *remote, git_oid *oid)
{
	clone_run *r = a->r;
	const char *ref = a->ref;
	char name[1100];
	if ((!ref || !*ref) && a->head) {
		a->branch = strdup(a->head + 11);
		ref = a->branch;
	} else if (!ref || !*ref) {
		git_buf def = GIT_BUF_INIT;
		if (git_remote_default_branch(&def, remote) < 0 || strncmp(def.ptr, "refs/heads/", 11)) {
			git_buf_dispose(&def);
			return r->svc->fail(r->task,
			                    "clone: %s has no default branch (an empty repository?); "
			                    "set a ref",
			                    a->url);
		}
		a->branch = strdup(def.ptr + 11);
		git_buf_dispose(&def);
		ref = a->branch;
	} else if (strncmp(ref, "refs/heads/", 11) == 0) {
		a->branch = strdup(ref + 11);
	} else if (strncmp(ref, "refs/tags/", 10) == 0) {
		ref += 10;
	} else if (strncmp(ref, "refs/", 5) == 0) {
		if (peel_ref(a->repo, "refs/keruta/ref", oid) == 0)
			return 0;
		return r->svc->fail(r->task, "clone: %s has no ref '%s'", a->url, ref);
	}
	if (strlen(ref) > 1000)
		return r->svc->fail(r->task, "clone: the ref is too long");
	snprintf(name, sizeof name, "refs/remotes/origin/%s", a->branch ? a->branch : ref);
	int rc = peel_ref(a->repo, name, oid);
	if (rc == 0) {
		if (!a->branch)
			a->branch = strdup(ref);
		return 0;
	}
	if (a->branch)
		return r->svc->fail(r->task, "clone: %s has no branch '%s'", a->url, a->branch);
	snprintf(name, sizeof name, "refs/tags/%s", ref);
	if (peel_ref(a->repo, name, oid) == 0)
		return 0;
	size_t n = strlen(ref);
	int hex = n >= 4 && n <= GIT_OID_HEXSZ && strspn(ref, "0123456789abcdefABCDEF") == n;
	git_oid prefix;
	git_object *c = NULL;
	if (hex && git_oid_fromstrn(&prefix, ref, n) == 0 &&
	    git_object_lookup_prefix(&c, a->repo, &prefix, n, GIT_OBJECT_COMMIT) == 0) {
		git_oid_cpy(oid, git_object_id(c));
		git_object_free(c);
		return 0;
	}
	return r->svc->fail(r->task,
	                    "clone: '%s' is not a branch, tag or commit of %s (a commit must be "
	                    "reachable from a branch or tag)",
	                    a->ref, a->url);
}

static int notify_conflict(git_checkout_notify_t why, const char *path,
                           const git_diff_file *b, const git_diff_file *t,
                           const git_diff_file *w, void *payload)
{
	(void)why, (void)b, (void)t, (void)w;
	char **first = payload;
	if (!*first)
		*first = strdup(path);
	return 0;
}

static int checkout(attempt *a, const git_oid *oid)
{
	clone_run *r = a->r;
	git_commit *commit = NULL;
	if (git_commit_lookup(&commit, a->repo, oid) < 0)
		return r->svc->fail(r->task, "clone: cannot read commit: %s", lg2_msg());
	git_oid target = *oid;
	char local[1100];
	git_reference *lref = NULL;
	if (a->branch) {
		snprintf(local, sizeof local, "refs/heads/%s", a->branch);
		git_oid cur;
		if (git_reference_name_to_id(&cur, a->repo, local) == 0 && !git_oid_equal(&cur, oid)) {
			if (git_graph_descendant_of(a->repo, &cur, oid) == 1) {
				r->svc->log(r->task, KR_LOG_INFO,
				            "local branch %s has commits not on the remote; keeping them",
				            a->branch);
				target = cur;
			} else if (git_graph_descendant_of(a->repo, oid, &cur) != 1) {
				char h1[GIT_OID_HEXSZ + 1], h2[GIT_OID_HEXSZ + 1];
				git_oid_tostr(h1, sizeof h1, &cur);
				git_oid_tostr(h2, sizeof h2, oid);
				git_commit_free(commit);
				return r->svc->fail(r->task,
				                    "clone: local branch %s (%s) and origin/%s (%s) have "
				                    "diverged in %s; push or move the local commits, or "
				                    "set ref to a commit",
				                    a->branch, h1, a->branch, h2, a->wd);
			}
		}
	}
	if (!git_oid_equal(&target, oid)) {
		git_commit_free(commit);
		if (git_commit_lookup(&commit, a->repo, &target) < 0)
			return r->svc->fail(r->task, "clone: cannot read commit: %s", lg2_msg());
	}
	/* .keruta is the agent's own area (scripts, env files, the upload
	 * record, the log spool, the events): a repository that commits one
	 * could aim the agent's writes anywhere through links, or replace its
	 * files.  Refused before anything is checked out. */
	git_tree *tree = NULL;
	if (git_commit_tree(&tree, commit) < 0) {
		git_commit_free(commit);
		return r->svc->fail(r->task, "clone: cannot read the commit's tree: %s", lg2_msg());
	}
	int has_area = git_tree_entry_byname(tree, ".keruta") != NULL;
	if (has_area) {
		git_tree_free(tree);
		git_commit_free(commit);
		char *pub = clone_url_public(a->url);
		r->svc->fail(r->task,
		             "clone: %s at %s commits a .keruta entry, the agent's own area in the "
		             "work dir; remove .keruta from the repository (nothing was checked out)",
		             pub ? pub : "the repository", a->ref && *a->ref ? a->ref : "the default branch");
		free(pub);
		return -1;
	}
	git_checkout_options co;
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	char *conflict = NULL;
	co.checkout_strategy = a->fresh || git_repository_head_unborn(a->repo) == 1
	                               ? GIT_CHECKOUT_FORCE
	                               : GIT_CHECKOUT_SAFE;
	co.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT;
	co.notify_cb = notify_conflict;
	co.notify_payload = &conflict;
	int rc = a->fresh ? clone_checkout_fresh(r, a->repo, tree, a->wd) : CLONE_CHECKOUT_LIBGIT2;
	git_tree_free(tree);
	if (rc < 0) {
		git_commit_free(commit);
		return -1;
	}
	if (rc == CLONE_CHECKOUT_LIBGIT2)
		rc = git_checkout_tree(a->repo, (git_object *)commit, &co);
	git_commit_free(commit);
	if (rc < 0) {
		/* a forced checkout (a fresh clone) overwrites nothing: no local
		 * change can be the cause, so none is to be moved aside */
		r->svc->fail(r->task, "clone: cannot check out %s in %s: %s%s%s%s",
		             a->ref && *a->ref ? a->ref : "the default branch", a->wd, lg2_msg(),
		             conflict ? ", first conflict: " : "", conflict ? conflict : "",
		             co.checkout_strategy == GIT_CHECKOUT_SAFE
		                     ? "; commit, move or remove local changes (nothing was overwritten)"
		                     : "");
		free(conflict);
		return -1;
	}
	free(conflict);
	if (a->branch) {
		rc = git_reference_create(&lref, a->repo, local, &target, 1, "keruta: checkout");
		if (rc == 0) {
			char up[1100];
			snprintf(up, sizeof up, "origin/%s", a->branch);
			git_reference *b = NULL;
			if (git_branch_lookup(&b, a->repo, a->branch, GIT_BRANCH_LOCAL) == 0) {
				git_branch_set_upstream(b, up);
				git_reference_free(b);
			}
			git_reference_free(lref);
			rc = git_repository_set_head(a->repo, local);
		}
	} else {
		rc = git_repository_set_head_detached(a->repo, &target);
	}
	if (rc < 0)
		return r->svc->fail(r->task, "clone: cannot move HEAD in %s: %s", a->wd, lg2_msg());
	git_oid_tostr(a->oid_hex, sizeof a->oid_hex, &target);
	return 0;
}

typedef struct sub_ctx {
	attempt *a;
	int failed;
} sub_ctx;

static int submodule_cb(git_submodule *sm, const char *name, void *payload)
{
	sub_ctx *s = payload;
	clone_run *r = s->a->r;
	git_submodule_update_options uo;
	git_submodule_update_options_init(&uo, GIT_SUBMODULE_UPDATE_OPTIONS_VERSION);
	clone_callbacks(&uo.fetch_opts.callbacks, r);
	r->cred_attempts = 0;
	r->svc->log(r->task, KR_LOG_INFO, "submodule %s", name);
	git_repository *sub = NULL;
	if (git_submodule_update(sm, 1, &uo) < 0 || git_submodule_open(&sub, sm) < 0) {
		s->a->retryable = !r->auth_failed && !r->cert_failed && !r->cancelled;
		snprintf(s->a->why, sizeof s->a->why, "%s", lg2_msg());
		s->failed = 1;
		r->svc->fail(r->task, "clone: submodule %s: %s", name, lg2_msg());
		return -1;
	}
	git_repository *parent = s->a->repo;
	s->a->repo = sub;
	int rc = git_submodule_foreach(sub, submodule_cb, s);
	s->a->repo = parent;
	git_repository_free(sub);
	return rc;
}

/* ---- a local source: take its objects as they are ------------------- */

/* libgit2 1.5 fetches from a path by building a pack of the whole history
 * (delta search included: minutes for a large repository).  A fresh clone
 * of a local repository instead takes its object files as they are, hard
 * linked (copied across file systems), and its refs, as `git clone` does
 * for a path.  Object files are never modified in place, so sharing them
 * is safe. */
typedef struct linker {
	const char *from, *to;
	size_t from_len;
	int copy; /* copies only: the source is shared with other tasks */
	uint64_t files, bytes, copied;
	int failed;
	char why[300];
} linker;

static linker *g_linker; /* nftw() takes no payload */

/* Across file systems: a copy, read only from a regular file (the entry
 * may have been swapped since nftw looked) into a new one. */
static int copy_object(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (in < 0)
		return -1;
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(in);
		errno = EINVAL;
		return -1;
	}
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	char buf[1 << 16];
	ssize_t n = 0;
	int rc = out < 0 ? -1 : 0;
	while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || kr_stage_write_all_n(out, buf, (size_t)n) != 0)
			rc = -1;
	}
	int e = errno;
	close(in);
	if (out >= 0 && close(out) != 0)
		rc = -1;
	if (rc < 0)
		errno = e;
	return rc;
}

static int link_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	linker *l = g_linker;
	const char *rel = path + l->from_len;
	/* Only directories and regular files belong in objects/: a symlink
	 * could lend the clone any file on the machine, and a FIFO would
	 * block whoever reads it.  git clone refuses them as well. */
	if (flag == FTW_SL || flag == FTW_SLN || (flag == FTW_F && !S_ISREG(st->st_mode))) {
		snprintf(l->why, sizeof l->why, "objects%s is %s, not a regular file or directory", rel,
		         S_ISLNK(st->st_mode) ? "a symlink" : S_ISFIFO(st->st_mode) ? "a FIFO" : "special");
		l->failed = 1;
		return -1;
	}
	if (flag == FTW_DNR || flag == FTW_NS) {
		snprintf(l->why, sizeof l->why, "objects%s cannot be read", rel);
		l->failed = 1;
		return -1;
	}
	char *dest = NULL;
	if (asprintf(&dest, "%s%s", l->to, rel) < 0)
		return -1;
	int rc = 0;
	if (flag == FTW_D) {
		if (mkdir(dest, 0755) < 0 && errno != EEXIST)
			rc = -1;
	} else {
		/* A hard link shares the inode: a task's own code could then
		 * change the file under every other task that clones from the
		 * cache (a chown for run_as would even hand it over). */
		if (!l->copy && (link(path, dest) == 0 || errno == EEXIST)) {
			l->files++;
		} else if (copy_object(path, dest) == 0 || (l->copy && errno == EEXIST)) {
			l->files++;
			l->copied++;
		} else {
			rc = -1;
		}
		l->bytes += (uint64_t)st->st_size;
	}
	if (rc < 0) {
		snprintf(l->why, sizeof l->why, "%s: %s", dest, strerror(errno));
		l->failed = 1;
	}
	free(dest);
	return rc;
}

typedef struct ref_ctx {
	attempt *a;
	git_repository *src;
	int failed;
} ref_ctx;

/* A ref of the source as a fetch would leave it: branches under
 * refs/remotes/origin/, tags as they are, the task's other ref as
 * refs/keruta/ref. */
static int copy_ref(const char *name, void *payload)
{
	ref_ctx *c = payload;
	char dest[1100];
	if (strncmp(name, "refs/heads/", 11) == 0)
		snprintf(dest, sizeof dest, "refs/remotes/origin/%s", name + 11);
	else if (strncmp(name, "refs/tags/", 10) == 0)
		snprintf(dest, sizeof dest, "%s", name);
	else if (c->a->ref && strcmp(name, c->a->ref) == 0)
		snprintf(dest, sizeof dest, "refs/keruta/ref");
	else
		return 0;
	git_oid oid;
	if (git_reference_name_to_id(&oid, c->src, name) < 0)
		return 0; /* a dangling symbolic ref: git skips it too */
	git_reference *out = NULL;
	if (git_reference_create(&out, c->a->repo, dest, &oid, 1, "keruta: clone from a path") < 0) {
		c->failed = 1;
		return -1;
	}
	git_reference_free(out);
	return 0;
}

/* A failure to take a local source fails the stage; from the cache it
 * is only a warning (the clone is fetched instead). */
static int link_fail(attempt *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int link_fail(attempt *a, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!a->from_cache)
		return a->r->svc->fail(a->r->task, "%s", msg);
	a->r->svc->log(a->r->task, KR_LOG_WARN, "git cache: %s; fetching everything instead", msg);
	return -1;
}

/* 0: taken; 1: the source must be fetched instead; -1: failed (given to
 * link_fail()). */
static int link_local(attempt *a, const char *path)
{
	clone_run *r = a->r;
	git_repository *src = NULL;
	if (git_repository_open_ext(&src, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return link_fail(a, "clone: cannot open %s: %s", path, lg2_msg());
	char *from = NULL, *to = NULL;
	int rc = -1;
	if (asprintf(&from, "%sobjects", git_repository_commondir(src)) < 0 ||
	    asprintf(&to, "%sobjects", git_repository_commondir(a->repo)) < 0)
		goto out;
	/* A source that borrows objects (objects/info/alternates, often with
	 * paths relative to its own objects dir) cannot lend its files as
	 * they are: fetched instead, through the alternates. */
	struct stat alt;
	char *alt_path = NULL;
	if (asprintf(&alt_path, "%s/info/alternates", from) < 0)
		goto out;
	int has_alt = lstat(alt_path, &alt) == 0;
	free(alt_path);
	if (has_alt && S_ISREG(alt.st_mode)) {
		r->svc->log(r->task, KR_LOG_INFO,
		            "%s borrows objects from another repository (objects/info/alternates); "
		            "fetching instead of taking its object files",
		            path);
		rc = 1;
		goto out;
	}
	uint64_t start = clone_now_ms();
	linker l = {.from = from, .to = to, .from_len = strlen(from), .copy = a->from_cache};
	g_linker = &l;
	int walked = nftw(from, link_entry, 16, FTW_PHYS);
	g_linker = NULL;
	if (walked != 0 || l.failed) {
		link_fail(a, "clone: cannot take the objects of %s: %s", path,
		             l.failed ? l.why : strerror(errno));
		goto out;
	}
	ref_ctx c = {a, src, 0};
	if (git_reference_foreach_name(src, copy_ref, &c) < 0 || c.failed) {
		link_fail(a, "clone: cannot copy the refs of %s: %s", path, lg2_msg());
		goto out;
	}
	git_reference *head = NULL;
	free(a->head);
	a->head = NULL;
	if (git_reference_lookup(&head, src, "HEAD") == 0 &&
	    git_reference_type(head) == GIT_REFERENCE_SYMBOLIC &&
	    strncmp(git_reference_symbolic_target(head), "refs/heads/", 11) == 0)
		a->head = strdup(git_reference_symbolic_target(head));
	git_reference_free(head);
	r->svc->log(r->task, KR_LOG_INFO,
	            "took %llu object files (%.1f MiB%s) from %s in %.1f s",
	            (unsigned long long)l.files, (double)l.bytes / (1024.0 * 1024.0),
	            l.copied == l.files ? ", copied" : l.copied ? ", some copied" : ", hard-linked",
	            path, (double)(clone_now_ms() - start) / 1000.0);
	rc = 0;
out:
	free(from);
	free(to);
	git_repository_free(src);
	return rc;
}

static int run_attempt(attempt *a)
{
	clone_run *r = a->r;
	git_remote *remote = NULL;
	git_oid oid;
	int rc = -1;
	a->retryable = 0;
	free(a->branch);
	a->branch = NULL;
	if (a->fresh) {
		git_repository_init_options io;
		git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
		io.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
		if (git_repository_init_ext(&a->repo, a->wd, &io) < 0 ||
		    git_remote_create(&remote, a->repo, "origin", a->url) < 0) {
			r->svc->fail(r->task, "clone: cannot create a repository in %s: %s", a->wd,
			             lg2_msg());
			goto out;
		}
	} else if (git_remote_lookup(&remote, a->repo, "origin") < 0) {
		r->svc->fail(r->task, "clone: %s: %s", a->wd, lg2_msg());
		goto out;
	}
	const char *src = a->fresh ? local_path(a->url) : NULL;
	int linked = src ? link_local(a, src) : 1; /* 1: not taken, fetch */
	a->from_cache = 0; /* a retry decides again */
	if (a->fresh && a->mirror && !src) {
		/* under the mirror's lock: no update moves its refs meanwhile */
		int fd = clone_cache_lock(r, a->mirror);
		if (fd >= 0) {
			a->from_cache = 1;
			link_local(a, a->mirror);
			clone_cache_unlock(fd);
		}
		/* the default branch is the remote's, not the mirror's HEAD */
		free(a->head);
		a->head = NULL;
	}
	if (linked < 0 || (linked > 0 && fetch(a, remote) < 0) || resolve(a, remote, &oid) < 0 ||
	    checkout(a, &oid) < 0)
		goto out;
	if (r->cfg->submodules) {
		sub_ctx s = {a, 0};
		if (git_submodule_foreach(a->repo, submodule_cb, &s) < 0) {
			if (!s.failed)
				r->svc->fail(r->task, "clone: submodules: %s", lg2_msg());
			goto out;
		}
	}
	rc = 0;
out:
	git_remote_free(remote);
	return rc;
}

/* ---- the stage ------------------------------------------------------- */

/* Is the work dir fresh (1), the same repository (0), or neither (-1)? */
static int inspect_wd(clone_run *r, attempt *a, char ***keep)
{
	char *dotgit = NULL;
	struct stat st;
	if (asprintf(&dotgit, "%s/.git", a->wd) < 0)
		return r->svc->fail(r->task, "out of memory");
	int has_git = lstat(dotgit, &st) == 0;
	free(dotgit);
	if (has_git) {
		if (git_repository_open_ext(&a->repo, a->wd, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
			return r->svc->fail(r->task,
			                    "clone: work dir %s has a .git that cannot be opened (%s); "
			                    "use an empty work dir (nothing was deleted)",
			                    a->wd, lg2_msg());
		git_remote *o = NULL;
		int same = git_remote_lookup(&o, a->repo, "origin") == 0 && git_remote_url(o) &&
		           same_url(git_remote_url(o), a->url);
		char *theirs = o && git_remote_url(o) ? clone_url_public(git_remote_url(o)) : NULL;
		git_remote_free(o);
		if (!same) {
			char *ours = clone_url_public(a->url);
			r->svc->fail(r->task,
			             "clone: work dir %s holds a clone of %s, not of %s; use another "
			             "work dir (nothing was deleted)",
			             a->wd, theirs ? theirs : "(no origin remote)", ours);
			free(ours);
			free(theirs);
			return -1;
		}
		free(theirs);
		return 0;
	}
	size_t n;
	*keep = list_dir(a->wd, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp((*keep)[i], ".keruta") != 0)
			return r->svc->fail(r->task,
			                    "clone: work dir %s is not empty (it holds '%s') and is not a "
			                    "git clone; use an empty work dir (nothing was deleted)",
			                    a->wd, (*keep)[i]);
	return 1;
}

static int pause_ms(clone_run *r, uint64_t ms)
{
	uint64_t end = clone_now_ms() + ms;
	while (clone_now_ms() < end) {
		if (r->svc->cancelled(r->task))
			return -1;
		usleep(50000);
	}
	return 0;
}

static const char *env_or(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* URL and ref by the precedence at the top of this file. */
static int pick_source(clone_run *r, const char **url, const char **ref)
{
	const kr_services *svc = r->svc;
	kr_task *t = r->task;
	*url = NULL;
	*ref = NULL;
	if (r->cfg->url && *r->cfg->url) {
		*url = r->cfg->url;
	} else {
		if (!svc->task_get(t, KR_TASK_REPOSITORY_URL) && svc->task_get(t, KR_TASK_REPOSITORY_ID)) {
			int rc = svc->fetch_repository(t);
			if (rc == KR_NOT_FOUND)
				return svc->fail(t, "clone: the task names repository '%s' but no URL for it "
				                    "could be found; give the repository's url (in a task "
				                    "file: repository: {id: ..., url: ...})",
				                 svc->task_get(t, KR_TASK_REPOSITORY_ID));
			if (rc != KR_OK)
				return KR_FAILED;
		}
		*url = svc->task_get(t, KR_TASK_REPOSITORY_URL);
		if (*url && **url) {
			*ref = svc->task_get(t, KR_TASK_REPOSITORY_REF);
		} else {
			*url = env_or("KERUTA_REPOSITORY_URL");
			*ref = env_or("KERUTA_REPOSITORY_REF");
		}
	}
	if (r->cfg->ref && *r->cfg->ref)
		*ref = r->cfg->ref;
	return KR_OK;
}

static int clone_run_stage(const kr_services *svc, void *state, kr_task *task)
{
	clone_cfg *cfg = state;
	clone_run r = {.svc = svc, .task = task, .cfg = cfg};
	const char *url, *ref;
	if (pick_source(&r, &url, &ref) != KR_OK)
		return KR_FAILED;
	if (!url || !*url) {
		svc->log(task, KR_LOG_INFO,
		         "no repository for this task (no url in with:, the task, or "
		         "KERUTA_REPOSITORY_URL); nothing to clone");
		return KR_SKIPPED;
	}
	const char *wd = kr_stage_work_dir(svc, task, "clone");
	if (!wd)
		return KR_FAILED;
	if (strlen(url) > 4096 || strchr(url, '\n'))
		return svc->fail(task, "clone: the repository URL is too long or holds a newline");

	/* A password inside the URL is a secret too. */
	const char *at = strstr(url, "://") ? strchr(strstr(url, "://") + 3, '@') : NULL;
	const char *colon = at ? memchr(strstr(url, "://") + 3, ':', (size_t)(at - strstr(url, "://") - 3)) : NULL;
	if (colon && at > colon + 1) {
		char *pw = strndup(colon + 1, (size_t)(at - colon - 1));
		svc->add_secret(task, pw);
		free(pw);
	}
	if (strncmp(url, "ssh://", 6) == 0) {
		const char *h = strchr(url + 6, '@');
		const char *slash = strchr(url + 6, '/');
		const char *hp = h && (!slash || h < slash) ? h + 1 : url + 6;
		const char *pc = hp[0] == '[' ? strstr(hp, "]:") : strchr(hp, ':');
		if (pc && (!slash || pc < slash))
			r.ssh_port = atoi(pc + (hp[0] == '[' ? 2 : 1));
	}

	if (git_libgit2_init() < 0)
		return svc->fail(task, "clone: libgit2 failed to start: %s", lg2_msg());
	lg2_users++;
	/* The work dir may belong to another uid (a volume written by another
	 * image); it is ours by configuration. */
	git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
	const char *ca = cfg->ca_file && *cfg->ca_file ? cfg->ca_file : env_or("KERUTA_CA_FILE");
	if (ca) {
		/* OpenSSL reads it blocking: a FIFO there would hang the stage */
		char why[256];
		char *pem = svc->read_file(task, ca, 64u << 20, NULL, why, sizeof(why));
		if (!pem)
			return svc->fail(task, "clone: cannot read CA file %s: %s", ca, why);
		svc->free(pem);
		if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca, NULL) < 0)
			return svc->fail(task, "clone: cannot use CA file %s: %s", ca, lg2_msg());
	}
	if (cfg->insecure)
		svc->log(task, KR_LOG_WARN,
		         "TLS certificates of git hosts are not verified (insecure: true)");
	if (cfg->depth > 0)
		svc->log(task, KR_LOG_WARN,
		         "shallow clone (depth %lld) is not supported by libgit2 %d.%d; making a full "
		         "clone instead",
		         (long long)cfg->depth, LIBGIT2_VER_MAJOR, LIBGIT2_VER_MINOR);
	if (clone_load_credentials(&r) < 0 || check_local(&r, url) < 0) {
		clone_free_credentials(&r); /* those loaded before the one that failed */
		return KR_FAILED;
	}
	char *pub = clone_url_public(url);
	int nodelay = cfg->nodelay && (strncmp(url, "http://", 7) == 0 ||
	                               strncmp(url, "https://", 8) == 0 ||
	                               strncmp(url, "git://", 6) == 0);
	if (nodelay)
		clone_stream_install(&r);

	attempt a = {.r = &r, .wd = wd, .url = url, .ref = ref};
	char **keep = NULL;
	char *mirror = NULL; /* the cache's mirror of url (owned) */
	int rc = KR_FAILED;
	int kind = inspect_wd(&r, &a, &keep);
	if (kind < 0)
		goto done;
	a.fresh = kind == 1;
	const char *cache = cfg->git_cache && *cfg->git_cache ? cfg->git_cache
	                                                        : env_or("KERUTA_GIT_CACHE");
	if (a.fresh && cache && !local_path(url) && clone_cache_update(&r, cache, url, &mirror) == 0)
		a.mirror = mirror;
	svc->log(task, KR_LOG_INFO, "%s %s%s%s in %s", a.fresh ? "cloning" : "fetching", pub,
	         ref && *ref ? " at " : "", ref && *ref ? ref : "",
	         a.fresh ? wd : "(existing clone)");
	uint64_t delay = cfg->retry_delay_ms;
	for (int64_t n = 0;; n++) {
		if (run_attempt(&a) == 0) {
			rc = KR_OK;
			break;
		}
		if (a.fresh) {
			git_repository_free(a.repo);
			a.repo = NULL;
			if (remove_created(wd, keep) < 0) {
				svc->fail(task,
				          "clone: could not remove the partial clone in %s: %s; clean the "
				          "work dir before the next run",
				          wd, strerror(errno));
				break;
			}
		}
		if (r.cancelled || svc->cancelled(task)) {
			rc = KR_CANCELLED;
			break;
		}
		if (!a.retryable || n >= cfg->retries)
			break;
		svc->log(task, KR_LOG_WARN, "transfer failed (attempt %lld of %lld: %s); retrying in %.1f s",
		         (long long)n + 1, (long long)cfg->retries + 1, a.why, (double)delay / 1000.0);
		if (pause_ms(&r, delay) < 0) {
			rc = KR_CANCELLED;
			break;
		}
		delay = delay * 2 > 30000 ? 30000 : delay * 2;
	}
	if (rc == KR_OK) {
		svc->task_set(task, KR_TASK_COMMIT, a.oid_hex);
		if (a.branch)
			svc->task_set(task, "clone.branch", a.branch);
		svc->log(task, KR_LOG_INFO, "checked out %s%s%s", a.oid_hex,
		         a.branch ? " on branch " : " (detached)", a.branch ? a.branch : "");
	}
done:
	if (nodelay)
		clone_stream_remove();
	git_repository_free(a.repo);
	free(a.branch);
	free(a.head);
	free(mirror);
	free_list(keep);
	clone_free_credentials(&r);
	free(pub);
	return rc;
}

KR_PLUGIN_DEFINE(.name = "clone", .version = "1.0",
                 .description = "clone or update the task's repository in the work dir",
                 .options = clone_options, .init = clone_init, .run = clone_run_stage,
                 .fini = clone_fini);
