/*
 * upload.c - each artifact of a task uploaded exactly once.
 *
 * `collect` runs in the run phase and again in the cleanup Job, either may
 * be retried, and a script may hand a file over itself: all of them go
 * through kr_upload_once().  It keeps the task's upload record,
 * .keruta/tasks/<task id>/uploads, one line per confirmed upload:
 *
 *     <sha256 of the content> <size> <document id or -> <artifact name>
 *
 * A line is appended, in one write(), only after the backend confirmed the
 * upload; a line cut short by a crash has no newline and counts as no
 * record.  Lines are only ever added (the last one for a name wins), so
 * the record never has to be rewritten: a temporary copy renamed over it
 * per artifact would make a collect of n files cost n^2.  Before each
 * upload the record is consulted under flock on it (processes: the run
 * phase and the cleanup Job; threads: a mutex): the same name with the
 * same size and digest is not sent again; anything else (a new file,
 * changed content, an upload that broke off before it was recorded) is.
 * The record is not fsync'ed: after a machine crash an artifact may be
 * sent a second time, never lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "area.h"
#include "backend.h"
#include "log.h"
#include "task.h"
#include "upload.h"

#define RECORD "uploads"

/* ------------------------------------------------------------ SHA-256 */

typedef struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t fill;
} sha256;

static const uint32_t K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(sha256 *s, const unsigned char *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5],
	         g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] +
		              w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha_init(sha256 *s)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(s->h, iv, sizeof(iv));
	s->len = 0;
	s->fill = 0;
}

static void sha_add(sha256 *s, const unsigned char *p, size_t n)
{
	s->len += n;
	while (n) {
		size_t take = 64 - s->fill < n ? 64 - s->fill : n;
		memcpy(s->buf + s->fill, p, take);
		s->fill += take;
		p += take;
		n -= take;
		if (s->fill == 64) {
			sha_block(s, s->buf);
			s->fill = 0;
		}
	}
}

static void sha_hex(sha256 *s, char out[65])
{
	uint64_t bits = s->len * 8;
	unsigned char pad = 0x80;
	sha_add(s, &pad, 1);
	pad = 0;
	while (s->fill != 56)
		sha_add(s, &pad, 1);
	unsigned char l[8];
	for (int i = 0; i < 8; i++)
		l[i] = (unsigned char)(bits >> (56 - 8 * i));
	sha_add(s, l, 8);
	for (int i = 0; i < 8; i++)
		snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* Digest and size of the file the backend is about to send. */
static int digest_file(const char *path, char hex[65], uint64_t *size)
{
	/* No O_NOFOLLOW: collect hands over /proc/self/fd/N of a file it
	 * checked, and the backend opens the same path. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	sha256 s;
	sha_init(&s);
	unsigned char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		sha_add(&s, buf, (size_t)n);
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	*size = s.len;
	sha_hex(&s, hex);
	return 0;
}

/* ------------------------------------------------------------- record */

/* What this process has read of one task's record, so that each upload
 * reads only what other processes appended since (collect with 10,000
 * files stays linear). */
static struct {
	pthread_mutex_t lock;
	char *where;    /* work dir + task id the cache is of (owned) */
	kr_buf seen;    /* the record's first seen.len bytes           */
} cache = {PTHREAD_MUTEX_INITIALIZER, NULL, {0}};

/* Bring the cache up to the record at fd (locked). */
static void cache_sync(int fd, const char *where)
{
	if (!cache.where || strcmp(cache.where, where) != 0) {
		free(cache.where);
		cache.where = kr_strdup(where);
		kr_buf_reset(&cache.seen);
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < cache.seen.len) {
		kr_buf_reset(&cache.seen); /* replaced or cut: read it all again */
	}
	char chunk[65536];
	ssize_t n;
	while ((n = pread(fd, chunk, sizeof(chunk), (off_t)cache.seen.len)) > 0)
		kr_buf_add(&cache.seen, chunk, (size_t)n);
}

/* The complete line recorded for name, or NULL.  A line cut short by a
 * crash (no newline) never matches. */
static const char *cache_find(const char *name, size_t *len)
{
	const char *found = NULL;
	size_t nl = strlen(name);
	for (const char *l = cache.seen.data; l && l < cache.seen.data + cache.seen.len;) {
		const char *end = memchr(l, '\n', cache.seen.len - (size_t)(l - cache.seen.data));
		if (!end)
			break;
		/* digest, size, document id, then the name to the end of the line */
		const char *p = l;
		for (int field = 0; field < 3 && p; field++) {
			p = memchr(p, ' ', (size_t)(end - p));
			if (p)
				p++;
		}
		if (p && (size_t)(end - p) == nl && memcmp(p, name, nl) == 0) {
			found = l; /* the last line for a name wins */
			*len = (size_t)(end - l);
		}
		l = end + 1;
	}
	return found;
}

int kr_upload_once(kr_backend *b, kr_task *t, const char *path, const char *name,
                   kr_error *err)
{
	const char *work = kr_task_get(t, KR_TASK_WORK_DIR);
	const char *id = kr_task_get(t, KR_TASK_ID);
	if (!id || !*id)
		id = KR_AREA_NO_ID;
	char hex[65];
	uint64_t size = 0;
	if (digest_file(path, hex, &size) != 0) {
		kr_error_set(err, KR_EXIT_TASK_FAILED, "cannot read %s to upload it: %s", path,
		             strerror(errno));
		return KR_FAILED;
	}
	/* Without an area (no work dir) nothing can be recorded: upload. */
	kr_error aerr = {0};
	int dir = kr_area_task_open(work, id, NULL, KR_AREA_F_CREATE, &aerr);
	int fd = dir >= 0 ? kr_area_create_file(dir, RECORD, O_CREAT | O_APPEND, 0600) : -1;
	if (fd >= 0) {
		/* for reading too: the descriptor above is write-only */
		int rfd = openat(dir, RECORD, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = rfd;
	}
	if (fd < 0)
		kr_log(KR_LOG_WARN, NULL,
		       "%s%s; artifact %s is uploaded without an upload record, so a second collect "
		       "would send it again",
		       aerr.msg[0] ? aerr.msg : "cannot open the upload record: ",
		       aerr.msg[0] ? "" : strerror(errno), name);
	int recordable = fd >= 0 && *name && !strchr(name, '\n');
	char want[100];
	snprintf(want, sizeof(want), "%s %llu ", hex, (unsigned long long)size);
	char *where = kr_asprintf("%s\n%s", work ? work : "", id);
	pthread_mutex_lock(&cache.lock);
	if (fd >= 0)
		while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
			;
	size_t ll = 0;
	const char *line = NULL;
	if (recordable) {
		cache_sync(fd, where);
		line = cache_find(name, &ll);
	}
	size_t wl = strlen(want);
	int rc;
	if (line && ll > wl && strncmp(line, want, wl) == 0) {
		const char *docid = line + wl;
		kr_log(KR_LOG_DEBUG, NULL,
		       "artifact %s was already uploaded (document %.*s, same size and sha256); not "
		       "sent again",
		       name, (int)strcspn(docid, " "), docid);
		rc = KR_SKIPPED;
	} else {
		kr_task_set(t, "upload.document_id", NULL);
		rc = b->ops->upload_artifact(b, t, path, name, err);
		if (rc == KR_OK && recordable) {
			const char *doc = kr_task_get(t, "upload.document_id");
			char *rec = kr_asprintf("%s%s %s\n", want,
			                        doc && *doc && !strpbrk(doc, " \n") ? doc : "-", name);
			/* One write of one whole line, appended: a crash leaves the
			 * line complete or cut (ignored), never another's line torn. */
			int wfd = openat(dir, RECORD, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
			ssize_t n = wfd >= 0 ? write(wfd, rec, strlen(rec)) : -1;
			if (n != (ssize_t)strlen(rec))
				kr_log(KR_LOG_WARN, NULL,
				       "artifact %s was uploaded but cannot be recorded in "
				       "%s/%s/%s/%s/%s: %s; a second collect would send it again",
				       name, work, KR_AREA_DIR, KR_AREA_TASKS, id, RECORD,
				       n < 0 ? strerror(errno) : "short write");
			if (wfd >= 0)
				close(wfd);
			free(rec);
		}
	}
	if (fd >= 0)
		close(fd); /* releases the lock */
	pthread_mutex_unlock(&cache.lock);
	free(where);
	if (dir >= 0)
		close(dir);
	return rc;
}
