/*
 * proc_runas.c - the run_as setting: which user children become when the
 * agent runs as root, and handing the work dir over to that user.
 */
#define _GNU_SOURCE
#include "proc_runas.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "area.h"
#include "chan.h"
#include "log.h"

/* "name", "uid" or "uid:gid" into ids; -1 with *why set when unknown. */
static int resolve_run_as(const char *spec, kr_run_as *r, const char **why)
{
	memset(r, 0, sizeof(*r));
	char *end = NULL;
	errno = 0;
	unsigned long u = strtoul(spec, &end, 10);
	if (end != spec && (*end == '\0' || *end == ':') && !errno && spec[0] != '-') {
		r->uid = (uid_t)u;
		struct passwd *pw = getpwuid(r->uid);
		r->gid = pw ? pw->pw_gid : (gid_t)u;
		if (*end == ':') {
			char *gend = NULL;
			unsigned long g = strtoul(end + 1, &gend, 10);
			if (gend == end + 1 || *gend) {
				*why = "the group after ':' must be a number";
				return -1;
			}
			r->gid = (gid_t)g;
		}
		r->groups[0] = r->gid;
		r->ngroups = 1;
	} else {
		struct passwd *pw = getpwnam(spec);
		if (!pw) {
			*why = "no such user";
			return -1;
		}
		r->uid = pw->pw_uid;
		r->gid = pw->pw_gid;
		int n = (int)(sizeof(r->groups) / sizeof(r->groups[0]));
		if (getgrouplist(pw->pw_name, pw->pw_gid, r->groups, &n) < 0)
			n = 1, r->groups[0] = pw->pw_gid;
		r->ngroups = (size_t)n;
	}
	if (r->uid == 0) {
		*why = "that is root; name an unprivileged user";
		return -1;
	}
	r->active = 1;
	return 0;
}

/* The work dir handed to the run_as user, but .keruta/ itself and what
 * the agent keeps there (records, the log spool): a script may write its
 * artifacts, never the agent's own state. */
static const char *walk_root, *walk_task;
static uid_t walk_uid;
static gid_t walk_gid;

static int hand_over(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	static const char *const shared[] = {"doc", "script", "env", "documents", "execute.sh",
	                                     "install.sh", NULL};
	(void)st;
	(void)flag;
	size_t rl = strlen(walk_root);
	const char *rel = path + rl + (path[rl] == '/');
	const char *name = path + f->base;
	int in_area = strncmp(rel, ".keruta", 7) == 0 && (rel[7] == '/' || rel[7] == '\0');
	int in_tasks = in_area && strncmp(rel, ".keruta/tasks/", 14) == 0;
	if (in_area && (f->level == 1 || (f->level == 2 && strcmp(name, "tasks") == 0)))
		return FTW_CONTINUE; /* the agent's: traversed, not handed over */
	if (in_tasks && f->level == 3)
		return strcmp(name, walk_task) == 0 ? FTW_CONTINUE
		       : flag == FTW_D              ? FTW_SKIP_SUBTREE
		                                    : FTW_CONTINUE;
	if (in_area && (f->level == 2 || (in_tasks && f->level == 4))) {
		int ok = 0;
		for (const char *const *k = shared; *k; k++)
			ok |= strcmp(name, *k) == 0;
		if (!ok)
			return flag == FTW_D ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
	}
	if (lchown(path, walk_uid, walk_gid) != 0 && errno != ENOENT)
		kr_log(KR_LOG_DEBUG, NULL, "cannot hand %s over: %s", path, strerror(errno));
	return FTW_CONTINUE;
}

static void hand_over_work(const char *work, const char *task_id, const kr_run_as *r)
{
	kr_error err = {0};
	int doc = kr_area_task_open(work, task_id, "doc", KR_AREA_F_CREATE, &err);
	if (doc >= 0)
		close(doc);
	walk_task = task_id;
	walk_root = work;
	walk_uid = r->uid;
	walk_gid = r->gid;
	nftw(work, hand_over, 32, FTW_PHYS | FTW_ACTIONRETVAL);
}

int kr_proc_run_as_prepare(struct kr_agent *a, kr_task *t, kr_run_as *r, const char *work,
                           kr_error *err)
{
	memset(r, 0, sizeof(*r));
	const char *spec = a ? kr_settings_get(a->settings, KR_S_RUN_AS) : NULL;
	if (!spec || !*spec)
		return 0;
	static int warned;
	if (geteuid() != 0) {
		if (!warned++)
			kr_log(KR_LOG_WARN, kr_task_stage(t),
			       "run_as %s is not applied: the agent does not run as root (scripts run "
			       "as the agent's own user)",
			       spec);
		return 0;
	}
	const char *why = NULL;
	if (resolve_run_as(spec, r, &why) != 0) {
		kr_error_set(err, KR_EXIT_USAGE, "run_as '%s': %s; give a user name, a uid or uid:gid",
		             spec, why);
		return -1;
	}
	if (work) {
		const char *id = kr_task_get(t, KR_TASK_ID);
		hand_over_work(work, id && kr_area_id_ok(id) ? id : KR_AREA_NO_ID, r);
	}
	kr_chan_allow(a->chan, r->uid, r->gid);
	return 1;
}
