/* secret.c - see secret.h: the one owner of masking secrets in lines and
 * messages. */
#define _GNU_SOURCE /* memmem */
#include "secret.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char **secrets; /* owned; each a kr_strdup */
static size_t *lens;
static size_t count;
static size_t max_len;

void kr_secret_add(const char *value)
{
	if (!value)
		return;
	size_t len = strlen(value);
	/* a token file usually ends with a newline that is not part of it */
	while (len && (value[len - 1] == '\n' || value[len - 1] == '\r'))
		len--;
	if (len < KR_SECRET_MIN_LEN)
		return;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < count; i++) {
		if (lens[i] == len && memcmp(secrets[i], value, len) == 0) {
			pthread_mutex_unlock(&lock);
			return;
		}
	}
	secrets = kr_realloc(secrets, (count + 1) * sizeof(*secrets));
	lens = kr_realloc(lens, (count + 1) * sizeof(*lens));
	secrets[count] = kr_strndup(value, len);
	lens[count] = len;
	count++;
	if (len > max_len)
		max_len = len;
	pthread_mutex_unlock(&lock);
}

void kr_secret_add_url_password(const char *url)
{
	const char *p = url ? strstr(url, "://") : NULL;
	if (!p)
		return;
	p += 3;
	size_t auth_len = strcspn(p, "/?#");
	const char *at = NULL; /* the last '@' before the path: a password may hold one */
	for (const char *q = p; q < p + auth_len; q++)
		if (*q == '@')
			at = q;
	const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (!colon || colon + 1 == at)
		return;
	char *pw = kr_strndup(colon + 1, (size_t)(at - colon - 1));
	kr_secret_add(pw);
	free(pw);
}

size_t kr_secret_max_len(void)
{
	pthread_mutex_lock(&lock);
	size_t m = max_len;
	pthread_mutex_unlock(&lock);
	return m;
}

/*
 * One scan serves both masking and the stream cut.  It goes left to
 * right; at each position it visits, a secret longer than what is left
 * that would match what is left makes the position "open" (its outcome
 * depends on bytes not read yet), else the longest secret that matches
 * there is masked and the scan resumes after it.  Every decision before
 * the first open position is final, and no masked secret straddles it,
 * so masking the prefix now and the rest with the next read gives what
 * masking everything at once gives.  Cutting at the longest suffix that
 * begins a secret instead is wrong: a complete secret whose tail equals
 * its head, or one secret's tail that begins another, would be cut in
 * two and each half would pass.
 *
 * This runs over every byte of a task's output, so the positions where
 * a secret matches are found with memmem (one per secret, remembered
 * until the scan passes them), not by stopping at every byte that could
 * start one: a secret's first byte is often a common letter.  Open
 * positions can only lie in the last max_len - 1 bytes.
 */

/* The first position at or after `from` that is open (lock held); len
 * when there is none. */
static size_t first_open(const char *text, size_t len, size_t from)
{
	size_t p = len - (len < max_len ? len : max_len - 1);
	for (p = p > from ? p : from; p < len; p++) {
		size_t left = len - p;
		for (size_t s = 0; s < count; s++)
			if (lens[s] > left && text[p] == secrets[s][0] &&
			    memcmp(text + p, secrets[s], left) == 0)
				return p;
	}
	return len;
}

/* The scan over text[0..len) (lock held).  Returns where it stopped: the
 * first open position, or len when `final` (no more bytes will come) or
 * there is none.  The masked text before that point is appended to
 * out, but only when a secret occurs in it: *masked says whether it did;
 * if not, out is untouched and the text is its own masked form. */
static size_t scan(const char *text, size_t len, int final, kr_buf *out, int *masked)
{
	*masked = 0;
	if (count == 0)
		return len;
	const char *next[16], **at = count <= 16 ? next : kr_malloc(count * sizeof(*at));
	for (size_t s = 0; s < count; s++)
		at[s] = memmem(text, len, secrets[s], lens[s]);
	size_t i = 0, start = 0, open = final ? len : first_open(text, len, 0);
	for (;;) {
		/* the leftmost match at or after i, and the longest one there */
		const char *m = NULL;
		size_t hit = 0;
		for (size_t s = 0; s < count; s++) {
			if (at[s] && at[s] < text + i)
				at[s] = memmem(text + i, len - i, secrets[s], lens[s]);
			if (at[s] && (!m || at[s] < m || (at[s] == m && lens[s] > hit)))
				m = at[s], hit = lens[s];
		}
		if (!m || (size_t)(m - text) >= open)
			break;
		kr_buf_add(out, text + start, (size_t)(m - text) - start);
		kr_buf_adds(out, KR_SECRET_MASK);
		*masked = 1;
		i = start = (size_t)(m - text) + hit;
		if (open < i) /* inside the masked secret: not visited */
			open = first_open(text, len, i);
	}
	if (*masked)
		kr_buf_add(out, text + start, open - start);
	if (at != next)
		free(at);
	return open;
}

void kr_secret_mask(const char *text, size_t len, kr_buf *out)
{
	int masked;
	pthread_mutex_lock(&lock);
	scan(text, len, 1, out, &masked);
	pthread_mutex_unlock(&lock);
	if (!masked)
		kr_buf_add(out, text, len);
}

size_t kr_secret_mask_stream(const char *text, size_t len, int final, kr_buf *out, int *masked)
{
	pthread_mutex_lock(&lock);
	size_t safe = scan(text, len, final, out, masked);
	pthread_mutex_unlock(&lock);
	return safe;
}

void kr_secret_reset(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < count; i++)
		free(secrets[i]);
	free(secrets);
	free(lens);
	secrets = NULL;
	lens = NULL;
	count = max_len = 0;
	pthread_mutex_unlock(&lock);
}

char *kr_secret_vformat(const char *fmt, va_list ap)
{
	char *raw = kr_vasprintf(fmt, ap);
	kr_buf masked = {0};
	kr_secret_mask(raw, strlen(raw), &masked);
	free(raw);
	return masked.data ? masked.data : kr_strdup(""); /* the buffer's data is the caller's */
}

void kr_secret_error_vset(kr_error *err, int code, const char *fmt, va_list ap)
{
	if (!err || err->code)
		return; /* the first error stays; nothing to format */
	char *msg = kr_secret_vformat(fmt, ap);
	kr_error_set(err, code, "%s", msg);
	free(msg);
}

void kr_secret_error_set(kr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kr_secret_error_vset(err, code, fmt, ap);
	va_end(ap);
}
