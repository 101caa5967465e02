/*
 * document.c - the `document` stage: fetch each of the task's documents
 * into the task's own area, .keruta/tasks/<task id>/documents/, which
 * .keruta/documents shows to its scripts.
 *
 * A document's name comes from the backend and is not trusted.  It is
 * never joined onto a path as given: a file name is built from it byte by
 * byte (no '/', no control characters, no leading '.', at most
 * NAME_MAX_BYTES), so whatever the name, the file lands directly inside
 * the documents directory.  Content is first written to a hidden
 * temporary file (".fetch-XXXXXX.tmp", a name no sanitised document name
 * can take) and renamed into place only when complete, so a refused or
 * broken download leaves no partial file behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keruta/plugin.h"

#include "stage_util.h"

#define NAME_MAX_BYTES 200
#define EXT_MAX_BYTES 32

typedef struct document_state {
	uint64_t max_size;
} document_state;

static const kr_option document_options[] = {
        {.name = "max_size", .type = KR_OPT_SIZE, .default_value = "100MB",
         .help = "largest document accepted", KR_OPT_FIELD(document_state, max_size)},
        {0}};

static int document_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	document_state *s = kr_stage_new_state(svc, cfg, sizeof(*s), "document");
	if (!s)
		return KR_FAILED;
	*state = s;
	return KR_OK;
}

static void document_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
}

/* Length of the longest prefix of s[0..n) that does not end inside a
 * UTF-8 sequence, so a cut never leaves half a character. */
static size_t utf8_cut(const char *s, size_t n)
{
	size_t i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return n;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	return n - (i - 1) >= want ? n : i - 1;
}

/*
 * A file name for `raw` (which may be NULL): '/', '\\' and control bytes
 * become '_', leading dots and spaces go, and a name over NAME_MAX_BYTES
 * keeps its extension and loses the end of its stem.  "" when nothing is
 * left.  out must hold NAME_MAX_BYTES + 1 bytes.
 */
static void sanitise(const char *raw, char *out)
{
	out[0] = '\0';
	if (!raw)
		return;
	while (*raw == '.' || *raw == ' ')
		raw++;
	size_t len = strlen(raw);
	char *clean = malloc(len + 1);
	if (!clean)
		return;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];
		clean[i] = (c < 0x20 || c == 0x7f || c == '/' || c == '\\') ? '_' : (char)c;
	}
	clean[len] = '\0';
	while (len && clean[len - 1] == ' ')
		clean[--len] = '\0';
	if (len <= NAME_MAX_BYTES) {
		memcpy(out, clean, len + 1);
		free(clean);
		return;
	}
	const char *dot = strrchr(clean, '.');
	size_t ext = dot && dot != clean ? len - (size_t)(dot - clean) : 0;
	if (ext > EXT_MAX_BYTES)
		ext = 0;
	size_t stem = utf8_cut(clean, NAME_MAX_BYTES - ext);
	memcpy(out, clean, stem);
	memcpy(out + stem, clean + len - ext, ext);
	out[stem + ext] = '\0';
	free(clean);
}

/* "name.ext" -> "name-N.ext", within NAME_MAX_BYTES. */
static void with_suffix(const char *name, unsigned n, char *out)
{
	char sfx[16];
	int sl = snprintf(sfx, sizeof(sfx), "-%u", n);
	size_t len = strlen(name);
	const char *dot = strrchr(name, '.');
	size_t ext = dot && dot != name ? len - (size_t)(dot - name) : 0;
	size_t stem = len - ext;
	if (stem + (size_t)sl + ext > NAME_MAX_BYTES)
		stem = utf8_cut(name, NAME_MAX_BYTES - (size_t)sl - ext);
	memcpy(out, name, stem);
	memcpy(out + stem, sfx, (size_t)sl);
	memcpy(out + stem + sl, name + len - ext, ext);
	out[stem + (size_t)sl + ext] = '\0';
}

typedef struct names {
	char **v;
	size_t n, cap;
} names;

static int names_has(const names *u, const char *s)
{
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i], s) == 0)
			return 1;
	return 0;
}

static void names_add(names *u, const char *s)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 8;
		char **v = realloc(u->v, cap * sizeof(*v));
		if (!v)
			return;
		u->v = v;
		u->cap = cap;
	}
	char *c = strdup(s);
	if (c)
		u->v[u->n++] = c;
}

static void names_free(names *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->v[i]);
	free(u->v);
}

/* Move tmp (in dirfd) to a free final name derived from base; the chosen
 * name is written to out.  Names already taken in this run get -1, -2...;
 * a file left by an earlier run (a reused volume) is replaced. */
static int place(int dirfd, const char *tmp, const char *base, names *used, char *out)
{
	for (unsigned n = 0; n < 10000; n++) {
		if (n == 0)
			snprintf(out, NAME_MAX_BYTES + 1, "%s", base);
		else
			with_suffix(base, n, out);
		if (names_has(used, out))
			continue;
		struct stat st;
		if (fstatat(dirfd, out, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			continue;
		if (renameat(dirfd, tmp, dirfd, out) == 0) {
			names_add(used, out);
			return 0;
		}
		if (errno != EISDIR && errno != ENOTEMPTY && errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

static int fetch_one(const kr_services *svc, document_state *s, kr_task *t, const char *docdir,
                     int dirfd, const char *id, names *used)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s/.fetch-XXXXXX.tmp", docdir) < 0)
		return svc->fail(t, "document: out of memory");
	int fd = mkstemps(tmp, 4);
	if (fd < 0) {
		int e = errno;
		svc->fail(t, "cannot create a temporary file in %s: %s", docdir, strerror(e));
		free(tmp);
		return KR_FAILED;
	}
	close(fd);
	char *name = NULL;
	int rc = svc->fetch_document(t, id, tmp, s->max_size, &name);
	if (rc != KR_OK) {
		unlink(tmp);
		free(tmp);
		if (name)
			svc->free(name);
		if (rc == KR_NOT_FOUND)
			return svc->fail(t, "document '%s' does not exist; check the task's document ids",
			                 id);
		svc->log(t, KR_LOG_ERROR, "could not fetch document '%s'", id);
		return rc == KR_CANCELLED ? KR_CANCELLED : KR_FAILED;
	}
	char base[NAME_MAX_BYTES + 1], final[NAME_MAX_BYTES + 1];
	sanitise(name, base);
	if (!base[0])
		sanitise(id, base);
	if (!base[0])
		snprintf(base, sizeof(base), "document");
	const char *tmpname = strrchr(tmp, '/') + 1;
	fchmodat(dirfd, tmpname, 0644, 0); /* mkstemps made it 0600 */
	if (place(dirfd, tmpname, base, used, final) != 0) {
		int e = errno;
		unlink(tmp);
		svc->fail(t, "cannot move document '%s' into %s: %s", id, docdir, strerror(e));
		free(tmp);
		if (name)
			svc->free(name);
		return KR_FAILED;
	}
	char *path = NULL, *key = NULL;
	struct stat st;
	long long size = fstatat(dirfd, final, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (long long)st.st_size
	                                                                     : -1;
	if (asprintf(&path, "%s/%s", docdir, final) >= 0 &&
	    asprintf(&key, "document.%s.path", id) >= 0)
		svc->task_set(t, key, path);
	const char *note = !name || !*name       ? "; the backend gave no name"
	                   : strcmp(name, base) != 0 ? "; its name was made safe"
	                   : strcmp(base, final) != 0 ? "; its name was taken"
	                                              : "";
	svc->log(t, KR_LOG_INFO, "document '%s' -> %s (%lld bytes%s)", id, path ? path : final, size,
	         note);
	free(path);
	free(key);
	free(tmp);
	if (name)
		svc->free(name);
	return KR_OK;
}

static int document_run(const kr_services *svc, void *state, kr_task *t)
{
	document_state *s = state;
	size_t n = svc->task_list_count(t, KR_TASK_DOCUMENT_IDS);
	if (n == 0) {
		svc->log(t, KR_LOG_INFO, "the task has no documents; nothing to do");
		return KR_SKIPPED;
	}
	const char *work = kr_stage_work_dir(svc, t, "document");
	if (!work)
		return KR_FAILED;
	/* The task's own documents/ (.keruta/tasks/<id>/documents), shown to
	 * its scripts as .keruta/documents: another task's never mix in. */
	int rc = KR_OK;
	int dirfd = svc->area_open(t, "documents", KR_AREA_CREATE | KR_AREA_SHOW);
	char *docdir = dirfd >= 0 ? svc->area_path(t, "documents", KR_AREA_CREATE) : NULL;
	if (!docdir)
		rc = KR_FAILED;
	names used = {0}, seen = {0};
	size_t fetched = 0;
	for (size_t i = 0; rc == KR_OK && i < n; i++) {
		const char *id = svc->task_list_item(t, KR_TASK_DOCUMENT_IDS, i);
		if (!id || !*id) {
			svc->log(t, KR_LOG_WARN, "entry %zu of the document list is empty; skipped",
			         i + 1);
			continue;
		}
		if (names_has(&seen, id))
			continue; /* given twice, e.g. by --document-id and the task */
		names_add(&seen, id);
		if (svc->cancelled(t)) {
			rc = KR_CANCELLED;
			break;
		}
		rc = fetch_one(svc, s, t, docdir, dirfd, id, &used);
		if (rc == KR_OK)
			fetched++;
	}
	if (rc == KR_OK)
		svc->log(t, KR_LOG_INFO, "%zu document%s in %s", fetched, fetched == 1 ? "" : "s",
		         docdir);
	if (dirfd >= 0)
		close(dirfd);
	names_free(&used);
	names_free(&seen);
	svc->free(docdir);
	return rc;
}

KR_PLUGIN_DEFINE(.name = "document", .version = "1.0",
                 .description = "fetch the task's documents into .keruta/documents",
                 .options = document_options, .init = document_init, .run = document_run,
                 .fini = document_fini);
