/*
 * git_exclude.c - the git-exclude stage: make `info/exclude` of the
 * repository in the work dir hold `/.keruta` (and the `patterns:` given)
 * exactly once, so `git status` never shows the agent's own files.
 *
 * Plain file work, no libgit2: `.git` may be a directory or a file
 * ("gitdir: PATH", worktrees and submodules); a worktree's gitdir names
 * the shared repository in its `commondir` file, and info/exclude lives
 * there.  The file is rewritten through a temporary file and rename(), so
 * a reader never sees half of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <keruta/plugin.h>

#include "stage_util.h"

#define MAX_FILE (1024 * 1024)

typedef struct ex_state {
	const char *const *patterns; /* with: patterns (NULL-ended), or NULL */
} ex_state;

static const kr_option exclude_options[] = {
        {.name = "patterns", .type = KR_OPT_LIST,
         .help = "more lines for info/exclude, besides /.keruta (gitignore syntax)",
         KR_OPT_FIELD(ex_state, patterns)},
        {0}};

static int exclude_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	ex_state *s = kr_stage_new_state(svc, cfg, sizeof(*s), "git-exclude");
	if (!s)
		return KR_FAILED;
	for (size_t i = 0; s->patterns && s->patterns[i]; i++)
		if (!*s->patterns[i] || strpbrk(s->patterns[i], "\r\n")) {
			svc->fail(NULL,
			          "git-exclude: pattern %zu is empty or holds a line break; give one "
			          "pattern per list item",
			          i + 1);
			free(s);
			return KR_FAILED;
		}
	*state = s;
	return KR_OK;
}

static void exclude_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
}

/* The first line of a file ("gitdir: X", a commondir), made absolute
 * against base.  NULL with a reason in why.  Read through svc->read_file:
 * a FIFO left there (which a plain open would wait on forever), a device
 * or a directory is refused unread. */
static char *read_pointer(const kr_services *svc, kr_task *t, const char *file,
                          const char *base, const char *prefix, char *why, size_t why_size)
{
	size_t len;
	char *text = svc->read_file(t, file, MAX_FILE, &len, why, why_size);
	if (!text)
		return NULL;
	char *line = text;
	const char *bad = NULL;
	if (memchr(text, 0, len))
		bad = "it holds a NUL byte";
	line[strcspn(line, "\r\n")] = 0;
	if (!bad && prefix) {
		if (strncmp(line, prefix, strlen(prefix)) != 0)
			bad = "it does not start with 'gitdir: '";
		else
			line += strlen(prefix);
	}
	if (!bad && !*line)
		bad = "it names no directory";
	char *out = NULL;
	if (bad)
		snprintf(why, why_size, "%s", bad);
	else if (line[0] == '/')
		out = strdup(line);
	else if (asprintf(&out, "%s/%s", base, line) < 0)
		out = NULL;
	svc->free(text);
	return out;
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory that holds info/exclude for the repository at wd:
 * 1 found, 0 no repository, -1 failed (reason given). */
static int find_common_dir(const kr_services *svc, kr_task *t, const char *wd, char **out)
{
	char *dotgit = NULL, *gitdir = NULL, *commondir_file = NULL;
	char why[256] = "no such directory";
	struct stat st;
	*out = NULL;
	if (asprintf(&dotgit, "%s/.git", wd) < 0)
		return svc->fail(t, "out of memory");
	if (lstat(dotgit, &st) < 0) {
		free(dotgit);
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		gitdir = dotgit;
		dotgit = NULL;
	} else if (S_ISREG(st.st_mode)) {
		gitdir = read_pointer(svc, t, dotgit, wd, "gitdir: ", why, sizeof(why));
		if (!gitdir || !is_dir(gitdir)) {
			svc->fail(t, "git-exclude: %s does not point to a git directory (%s); repair it or "
			             "use a fresh work dir",
			          dotgit, why);
			free(dotgit);
			free(gitdir);
			return -1;
		}
	} else {
		svc->fail(t, "git-exclude: %s is neither a directory nor a gitdir file", dotgit);
		free(dotgit);
		return -1;
	}
	free(dotgit);
	if (asprintf(&commondir_file, "%s/commondir", gitdir) < 0) {
		free(gitdir);
		return svc->fail(t, "out of memory");
	}
	if (access(commondir_file, F_OK) == 0) {
		char *common = read_pointer(svc, t, commondir_file, gitdir, NULL, why, sizeof(why));
		if (!common || !is_dir(common)) {
			svc->fail(t, "git-exclude: %s does not name a directory (%s)", commondir_file,
			          why);
			free(common);
			free(commondir_file);
			free(gitdir);
			return -1;
		}
		free(gitdir);
		gitdir = common;
	}
	free(commondir_file);
	*out = gitdir;
	return 1;
}

static int line_eq(const char *line, size_t len, const char *want)
{
	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	return strlen(want) == len && memcmp(line, want, len) == 0;
}

static int exclude_run(const kr_services *svc, void *state, kr_task *t)
{
	ex_state *s = state;
	const char *wd = kr_stage_work_dir(svc, t, "git-exclude");
	if (!wd)
		return KR_FAILED;
	char *common = NULL;
	int found = find_common_dir(svc, t, wd, &common);
	if (found < 0)
		return KR_FAILED;
	if (found == 0) {
		svc->log(t, KR_LOG_INFO, "no git repository in %s; nothing to exclude", wd);
		return KR_SKIPPED;
	}

	size_t npat = 0;
	while (s->patterns && s->patterns[npat])
		npat++;
	const char **want = calloc(npat + 2, sizeof *want);
	int *seen = calloc(npat + 1, sizeof *seen);
	char *info = NULL, *path = NULL, *tmp = NULL, *old = NULL;
	int rc = KR_FAILED;
	if (!want || !seen || asprintf(&info, "%s/info", common) < 0 ||
	    asprintf(&path, "%s/exclude", info) < 0 ||
	    asprintf(&tmp, "%s/.exclude.keruta.XXXXXX", info) < 0) {
		svc->fail(t, "out of memory");
		goto out;
	}
	want[0] = "/.keruta";
	for (size_t i = 0; i < npat; i++)
		want[i + 1] = s->patterns[i];

	if (mkdir(info, 0755) < 0 && errno != EEXIST) {
		svc->fail(t, "git-exclude: cannot create %s: %s", info, strerror(errno));
		goto out;
	}
	size_t len = 0;
	char why[256];
	old = svc->read_file(t, path, MAX_FILE, &len, why, sizeof(why));
	if (!old && errno != ENOENT) {
		svc->fail(t, "git-exclude: cannot read %s: %s; remove it or use a fresh work dir", path,
		          why);
		goto out;
	}

	/* Keep every line but later copies of ours; add ours that are missing. */
	FILE *f = NULL;
	/* a fresh name, made with O_EXCL: never a file (or symlink) someone
	 * left at a name known in advance */
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd >= 0 && fchmod(fd, 0644) != 0) {
		close(fd);
		unlink(tmp);
		fd = -1;
	}
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		svc->fail(t, "git-exclude: cannot write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	size_t added = 0, dropped = 0;
	for (size_t pos = 0; old && pos < len;) {
		const char *nl = memchr(old + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (old + pos)) : len - pos;
		int dup = 0;
		for (size_t i = 0; want[i]; i++)
			if (line_eq(old + pos, l, want[i])) {
				dup = seen[i]++ > 0;
				break;
			}
		if (dup)
			dropped++;
		else {
			fwrite(old + pos, 1, l, f);
			fputc('\n', f);
		}
		pos += l + (nl ? 1 : 0);
	}
	for (size_t i = 0; want[i]; i++) {
		for (size_t j = 0; j < i && !seen[i]; j++)
			seen[i] = strcmp(want[j], want[i]) == 0;
		if (!seen[i]) {
			fprintf(f, "%s\n", want[i]);
			seen[i] = 1;
			added++;
		}
	}
	int werr = ferror(f);
	werr |= fflush(f) != 0 || fsync(fileno(f)) != 0;
	werr |= fclose(f) != 0;
	if (werr) {
		svc->fail(t, "git-exclude: cannot write %s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (!added && !dropped) {
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		svc->fail(t, "git-exclude: cannot replace %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	svc->log(t, KR_LOG_INFO, "%s: %zu pattern(s) added, %zu duplicate(s) removed", path, added,
	         dropped);
	rc = KR_OK;
out:
	free(want);
	free(seen);
	free(info);
	free(path);
	free(tmp);
	svc->free(old);
	free(common);
	return rc;
}

KR_PLUGIN_DEFINE(.name = "git-exclude", .version = "1.0",
                 .description = "keep the .keruta area out of git status (info/exclude)",
                 .options = exclude_options, .init = exclude_init, .run = exclude_run,
                 .fini = exclude_fini);
