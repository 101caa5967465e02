/* util.c - see util.h. */
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

void kr_error_vset(kr_error *err, int code, const char *fmt, va_list ap)
{
	if (!err || err->code)
		return; /* keep the first, root-cause error */
	err->code = code ? code : KR_EXIT_INTERNAL;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

void kr_error_set(kr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kr_error_vset(err, code, fmt, ap);
	va_end(ap);
}

int kr_error_vwrap(kr_error *err, int code, const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	char context[sizeof(err->msg)], inner[sizeof(err->msg)];
	snprintf(inner, sizeof(inner), "%s", err->msg);
	vsnprintf(context, sizeof(context), fmt, ap);
	char *joined = kr_asprintf("%s: %s", context, inner);
	snprintf(err->msg, sizeof(err->msg), "%s", joined); /* cut at the size */
	free(joined);
	if (code)
		err->code = code;
	else if (!err->code)
		err->code = KR_EXIT_INTERNAL;
	return -1;
}

int kr_error_wrap(kr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = kr_error_vwrap(err, code, fmt, ap);
	va_end(ap);
	return rc;
}

void kr_error_clear(kr_error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}

static void oom(size_t n)
{
	fprintf(stderr, "keruta-agent: out of memory allocating %zu bytes\n", n);
	abort();
}

void *kr_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *kr_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *kr_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *kr_strdup(const char *s)
{
	return s ? kr_strndup(s, strlen(s)) : NULL;
}

char *kr_strndup(const char *s, size_t n)
{
	char *p = kr_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *kr_vasprintf(const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		n = 0;
	char *out = kr_malloc((size_t)n + 1);
	vsnprintf(out, (size_t)n + 1, fmt, ap);
	return out;
}

char *kr_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *out = kr_vasprintf(fmt, ap);
	va_end(ap);
	return out;
}

static void buf_grow(kr_buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = kr_realloc(b->data, cap);
	b->cap = cap;
}

void kr_buf_add(kr_buf *b, const void *data, size_t len)
{
	buf_grow(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void kr_buf_adds(kr_buf *b, const char *s)
{
	kr_buf_add(b, s, strlen(s));
}

void kr_buf_addc(kr_buf *b, char c)
{
	kr_buf_add(b, &c, 1);
}

void kr_buf_vaddf(kr_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n <= 0)
		return;
	buf_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void kr_buf_addf(kr_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kr_buf_vaddf(b, fmt, ap);
	va_end(ap);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned c = s[0];
	size_t n;
	unsigned min;
	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0) {
		n = 2;
		min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		n = 3;
		min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		n = 4;
		min = 0x10000;
	} else
		return 0;
	if (n > avail)
		return 0;
	unsigned cp = c & (0x3F >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* The end of the run of bytes from p[i] that JSON takes as they are
 * (printable ASCII but '"' and '\\').  Every shipped log byte passes
 * here, so it looks at 16 bytes at a time where it can. */
static size_t plain_run(const unsigned char *p, size_t i, size_t len)
{
#ifdef __SSE2__
	const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7F);
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	while (len - i >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(p + i));
		/* signed: bytes from 0x80 up are negative, so below 0x20 too */
		__m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(x, space), _mm_cmpeq_epi8(x, del)),
		                           _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)));
		unsigned m = (unsigned)_mm_movemask_epi8(bad);
		if (m)
			return i + (size_t)__builtin_ctz(m);
		i += 16;
	}
#endif
	while (i < len && p[i] >= 0x20 && p[i] < 0x7F && p[i] != '"' && p[i] != '\\')
		i++;
	return i;
}

void kr_buf_add_json_str(kr_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	buf_grow(b, len + 2);
	while (i < len) {
		/* copy the longest run of bytes that need no escaping at once:
		 * this is on the path of every shipped log line */
		size_t run = plain_run(p, i, len);
		if (run > i) {
			kr_buf_add(b, p + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			kr_buf_add(b, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7F) {
			switch (c) {
			case '\n': kr_buf_add(b, "\\n", 2); break;
			case '\r': kr_buf_add(b, "\\r", 2); break;
			case '\t': kr_buf_add(b, "\\t", 2); break;
			default: {
				char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				kr_buf_add(b, u, 6);
			}
			}
			i++;
		} else {
			size_t n = utf8_seq(p + i, len - i);
			if (n == 0) {
				kr_buf_add(b, "\\ufffd", 6);
				i++;
			} else {
				kr_buf_add(b, p + i, n);
				i += n;
			}
		}
	}
}

void kr_buf_reset(kr_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void kr_buf_free(kr_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/*
 * Parse "<number><unit>" with an unsigned decimal number: digits, an
 * optional fraction and exponent.  strtod alone also takes "nan", "inf"
 * and hex ("0x10"): NaN converted to an integer is undefined (in practice
 * 2^63: `timeout: nan` switched the timeout off), so the spelling is
 * checked first and the value must be finite.
 */
static int split_number(const char *s, double *num, const char **unit)
{
	if (!s)
		return -1;
	const char *p = s;
	size_t digits = 0;
	for (; isdigit((unsigned char)*p); p++)
		digits++;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			digits++;
	if (!digits)
		return -1;
	if (*p == 'e' || *p == 'E') {
		const char *q = p + 1;
		if (*q == '+' || *q == '-')
			q++;
		if (isdigit((unsigned char)*q)) {
			while (isdigit((unsigned char)*q))
				q++;
			p = q;
		}
	}
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end != p || errno || !isfinite(v) || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	*num = v;
	*unit = end;
	return 0;
}

/* A number with one of `units` after it, scaled, rounded, at most max. */
typedef struct unit_scale {
	const char *unit;
	double mult;
} unit_scale;

static int parse_scaled(const char *s, const unit_scale *units, size_t n, double max,
                        uint64_t *out)
{
	double v;
	const char *unit;
	if (split_number(s, &v, &unit))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			double x = v * units[i].mult;
			if (x > max)
				return -1;
			*out = (uint64_t)(x + 0.5);
			return 0;
		}
	}
	return -1;
}

int kr_parse_duration_ms(const char *s, uint64_t *out)
{
	/* a bare number is seconds */
	static const unit_scale units[] = {{"", 1000}, {"ms", 1},        {"s", 1000},
	                                   {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), 1e15, out);
}

int kr_parse_size(const char *s, uint64_t *out)
{
	static const unit_scale units[] = {
	        {"", 1},        {"B", 1},
	        {"k", 1e3},     {"kB", 1e3},          {"KB", 1e3},
	        {"MB", 1e6},    {"GB", 1e9},          {"TB", 1e12},
	        {"K", 1024.0},  {"Ki", 1024.0},       {"KiB", 1024.0},
	        {"M", 1048576.0},       {"Mi", 1048576.0},       {"MiB", 1048576.0},
	        {"G", 1073741824.0},    {"Gi", 1073741824.0},    {"GiB", 1073741824.0},
	        {"T", 1099511627776.0}, {"Ti", 1099511627776.0}, {"TiB", 1099511627776.0}};
	return parse_scaled(s, units, sizeof(units) / sizeof(units[0]), 9.2e18, out);
}

int kr_parse_int64(const char *s, int64_t *out)
{
	char *end;
	if (!s || !*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || errno)
		return -1;
	*out = v;
	return 0;
}

#define TEXT_OF(n) #n
#define ID_MAX_TEXT_OF(n) TEXT_OF(n)
#define ID_MAX_TEXT ID_MAX_TEXT_OF(KR_ID_MAX)

int kr_id_check(const char *what, const char *id, kr_error *err)
{
	const char *why = NULL;
	if (!id || !*id)
		why = "it is empty";
	else if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		why = "'.' and '..' name no task, repository or document";
	else if (strchr(id, '/'))
		why = "it contains '/'";
	else if (strlen(id) > KR_ID_MAX)
		why = "it is longer than " ID_MAX_TEXT " bytes";
	for (const char *p = id; !why && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			why = "it contains a control character";
	if (!why)
		return 0;
	kr_error_set(err, KR_EXIT_USAGE, "invalid %s '%s': %s; give the id keruta-api uses", what,
	             id ? id : "", why);
	return -1;
}

int kr_token_check(const char *what, const char *token, kr_error *err)
{
	for (const char *p = token; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s contains a control character (a line break?); it must be the "
			             "token alone, on one line",
			             what);
			return -1;
		}
	return 0;
}

/* "WHAT PATH: why", or only "why" when what is NULL (the caller names the
 * file in its own words). */
static void file_error(kr_error *err, int code, const char *what, const char *path,
                       const char *why)
{
	if (what)
		kr_error_set(err, code, "%s %s: %s", what, path, why);
	else
		kr_error_set(err, code, "%s", why);
}

static void too_large(kr_error *err, int code, const char *what, const char *path, uint64_t max)
{
	char why[64];
	snprintf(why, sizeof(why), "larger than the limit of %llu bytes", (unsigned long long)max);
	file_error(err, code, what, path, why);
}

int kr_open_regular(const char *path, uint64_t max, int code, const char *what, kr_error *err)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		file_error(err, code, what, path, strerror(e));
		errno = e;
		return -1;
	}
	struct stat st;
	const char *why = NULL;
	int e = 0;
	if (fstat(fd, &st) != 0) {
		e = errno;
		why = strerror(e);
	} else if (S_ISDIR(st.st_mode)) {
		e = EISDIR;
		why = "is a directory";
	} else if (!S_ISREG(st.st_mode)) {
		e = EINVAL;
		why = "is not a regular file (a FIFO, socket or device); give a file";
	} else if (max && (uint64_t)st.st_size > max) {
		e = EFBIG;
		too_large(err, code, what, path, max);
	}
	if (why)
		file_error(err, code, what, path, why);
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

char *kr_read_file(const char *path, uint64_t max, size_t *len, int code, const char *what,
                   kr_error *err)
{
	int fd = kr_open_regular(path, max, code, what, err);
	if (fd < 0)
		return NULL;
	kr_buf b = {0};
	char chunk[16384];
	ssize_t n;
	int e = 0;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (max && b.len + (size_t)n > max) { /* grew since fstat */
			too_large(err, code, what, path, max);
			e = EFBIG;
			n = -2;
			break;
		}
		kr_buf_add(&b, chunk, (size_t)n);
	}
	if (n == -1)
		file_error(err, code, what, path, strerror(e = errno));
	close(fd);
	if (n < 0) {
		kr_buf_free(&b);
		errno = e;
		return NULL;
	}
	if (!b.data)
		kr_buf_adds(&b, "");
	if (len)
		*len = b.len;
	return b.data;
}

char *kr_read_value_file(const char *path, uint64_t max, const char *what, kr_error *err)
{
	size_t n = 0;
	char *text = kr_read_file(path, max, &n, KR_EXIT_USAGE, what, err);
	if (!text)
		return NULL;
	/* strchr finds the terminator too: a trailing NUL is no white space */
	while (n && text[n - 1] && strchr("\r\n \t", text[n - 1]))
		text[--n] = '\0';
	if (n == 0 || strlen(text) != n) {
		kr_error_set(err, KR_EXIT_USAGE, "%s %s %s; write the value alone in it", what, path,
		             n == 0 ? "is empty" : "holds a NUL byte");
		free(text);
		return NULL;
	}
	return text;
}

int kr_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
	static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

size_t kr_edit_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return max + 1;
	if ((la > lb ? la - lb : lb - la) > max)
		return max + 1;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev + cost;
			if (row[j] + 1 < v)
				v = row[j] + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			prev = cur;
		}
	}
	return row[lb];
}

const char *kr_nearest(const char *word, const char *const *candidates, size_t n)
{
	size_t limit = strlen(word) <= 4 ? 1 : strlen(word) <= 8 ? 2 : 3;
	const char *best = NULL;
	size_t best_d = limit + 1;
	for (size_t i = 0; i < n; i++) {
		size_t d = kr_edit_distance(word, candidates[i], limit);
		if (d < best_d) {
			best_d = d;
			best = candidates[i];
		}
	}
	return best;
}

void kr_format_ms(uint64_t ms, char *out, size_t n)
{
	if (ms < 1000)
		snprintf(out, n, "%llums", (unsigned long long)ms);
	else if (ms < 60000)
		snprintf(out, n, "%.2fs", (double)ms / 1000.0);
	else
		snprintf(out, n, "%llum%02llus", (unsigned long long)(ms / 60000),
		         (unsigned long long)(ms / 1000 % 60));
}

uint64_t kr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int kr_mkdirs(const char *path, unsigned mode)
{
	char *p = kr_strdup(path);
	int rc = 0;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			rc = -1;
			break;
		}
		*s = '/';
	}
	if (rc == 0 && mkdir(p, mode) != 0 && errno != EEXIST)
		rc = -1;
	if (rc == 0) {
		struct stat st;
		if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			rc = -1;
		}
	}
	int saved = errno;
	free(p);
	errno = saved;
	return rc;
}

int kr_name_ok(const char *s)
{
	if (!*s || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}
