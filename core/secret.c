/* secret.c - see secret.h. */
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

/* The next byte at or after text[i] that can start a secret (lock held):
 * this runs over every byte of a task's output, hence memchr. */
static const char *next_start(const char *text, size_t i, size_t len)
{
	const char *next = NULL;
	for (size_t s = 0; s < count; s++) {
		const char *c = memchr(text + i, secrets[s][0], (size_t)((next ? next : text + len) - (text + i)));
		if (c)
			next = c;
	}
	return next;
}

void kr_secret_mask(const char *text, size_t len, kr_buf *out)
{
	pthread_mutex_lock(&lock);
	if (count == 0) {
		pthread_mutex_unlock(&lock);
		kr_buf_add(out, text, len);
		return;
	}
	size_t start = 0, i = 0;
	while (i < len) {
		const char *next = next_start(text, i, len);
		if (!next)
			break;
		i = (size_t)(next - text);
		size_t hit = 0;
		for (size_t s = 0; s < count; s++) {
			if (lens[s] <= len - i && text[i] == secrets[s][0] &&
			    memcmp(text + i, secrets[s], lens[s]) == 0 && lens[s] > hit)
				hit = lens[s];
		}
		if (hit) {
			kr_buf_add(out, text + start, i - start);
			kr_buf_adds(out, KR_SECRET_MASK);
			i += hit;
			start = i;
		} else {
			i++;
		}
	}
	kr_buf_add(out, text + start, len - start);
	pthread_mutex_unlock(&lock);
}

/*
 * The cut is where the masker's own left-to-right scan first reaches a
 * position whose outcome depends on bytes not read yet: some secret that
 * is longer than what is left would match what is left.  Every decision
 * before that point is final, and no secret found by the scan straddles
 * it (the scan resumes after a match), so masking the prefix now and the
 * rest with the next read gives what masking everything at once gives.
 * Cutting at the longest suffix that begins a secret instead is wrong: a
 * complete secret whose tail equals its head, or one secret's tail that
 * begins another, would be cut in two and each half would pass.
 */
size_t kr_secret_safe_prefix(const char *text, size_t len)
{
	pthread_mutex_lock(&lock);
	size_t i = 0, cut = len;
	while (i < len && count) {
		const char *next = next_start(text, i, len);
		if (!next)
			break;
		i = (size_t)(next - text);
		size_t hit = 0, left = len - i;
		int open = 0;
		for (size_t s = 0; s < count; s++) {
			if (lens[s] > left) {
				if (memcmp(text + i, secrets[s], left) == 0)
					open = 1;
			} else if (memcmp(text + i, secrets[s], lens[s]) == 0 && lens[s] > hit) {
				hit = lens[s];
			}
		}
		if (open) {
			cut = i;
			break;
		}
		i += hit ? hit : 1;
	}
	pthread_mutex_unlock(&lock);
	return cut;
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
