/* run_common.c - see run_common.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "run_common.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

void rt_simple_pipeline(kf *r, const char *with, const char *extra)
{
	char *y = xasprintf("version: 1\n%s\nphases:\n  execute: [execute]\nstages:\n"
	                    "  execute:\n    plugin: execute\n    with:\n%s\n",
	                    extra ? extra : "", with);
	kt_write_file(r->pipeline, y);
	free(y);
}

static void put_utf8(char *out, size_t *n, unsigned cp)
{
	if (cp < 0x80) {
		out[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*n)++] = (char)(0xC0 | (cp >> 6));
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*n)++] = (char)(0xE0 | (cp >> 12));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*n)++] = (char)(0x80 | (cp & 0x3F));
	}
}

/* A JSON string starting at the opening quote; returns the position after
 * the closing quote, or NULL. */
static const char *json_str(const char *p, char **out, size_t *len)
{
	if (*p != '"')
		return NULL;
	p++;
	char *buf = malloc(strlen(p) * 3 + 1);
	size_t n = 0;
	while (*p && *p != '"') {
		if (*p != '\\') {
			buf[n++] = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': buf[n++] = '\n'; break;
		case 't': buf[n++] = '\t'; break;
		case 'r': buf[n++] = '\r'; break;
		case 'b': buf[n++] = '\b'; break;
		case 'f': buf[n++] = '\f'; break;
		case 'u': {
			unsigned cp = 0;
			if (sscanf(p + 1, "%4x", &cp) != 1) {
				free(buf);
				return NULL;
			}
			put_utf8(buf, &n, cp);
			p += 4;
			break;
		}
		default: buf[n++] = *p; break;
		}
		p++;
	}
	if (*p != '"') {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return p + 1;
}

/* The value of "key" in a flat JSON object of strings, or NULL. */
static char *field(const char *obj, const char *key, size_t *len)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(obj, pat);
	if (!p)
		return NULL;
	char *v = NULL;
	if (!json_str(p + strlen(pat) - 1, &v, len))
		return NULL;
	return v;
}

long rt_events_each(kf *r, void (*fn)(void *ctx, const rt_line *l), void *ctx)
{
	FILE *f = fopen(r->evpath, "r");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	long count = 0;
	while (getline(&line, &cap, f) > 0) {
		rt_line l;
		memset(&l, 0, sizeof(l));
		size_t tl = 0;
		char *type = field(line, "type", &tl);
		if (type && strcmp(type, "log") == 0) {
			size_t sl;
			char *stream = field(line, "stream", &sl);
			l.text = field(line, "line", &l.len);
			snprintf(l.stream, sizeof(l.stream), "%s", stream ? stream : "?");
			free(stream);
		} else if (type && strcmp(type, "status") == 0) {
			size_t sl, ml = 0;
			char *st = field(line, "status", &sl);
			char *msg = field(line, "message", &ml);
			snprintf(l.stream, sizeof(l.stream), "status");
			l.text = xasprintf("%s\t%s", st ? st : "", msg ? msg : "");
			l.len = strlen(l.text);
			free(st);
			free(msg);
		}
		free(type);
		if (l.text) {
			fn(ctx, &l);
			free(l.text);
			count++;
		}
	}
	free(line);
	fclose(f);
	return count;
}

typedef struct collect {
	const char *stream;
	rt_line *v;
	size_t n, cap;
} collect;

static void collect_fn(void *ctx, const rt_line *l)
{
	collect *c = ctx;
	if (strcmp(c->stream, l->stream) != 0)
		return;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
	}
	rt_line *d = &c->v[c->n++];
	*d = *l;
	d->text = malloc(l->len + 1);
	memcpy(d->text, l->text, l->len + 1);
}

size_t rt_lines(kf *r, const char *stream, rt_line **out)
{
	collect c = {stream, NULL, 0, 0};
	rt_events_each(r, collect_fn, &c);
	*out = c.v;
	return c.n;
}

void rt_lines_free(rt_line *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i].text);
	free(l);
}

char *rt_final_status(kf *r)
{
	rt_line *l;
	size_t n = rt_lines(r, "status", &l);
	char *s = n ? strdup(l[n - 1].text) : NULL;
	rt_lines_free(l, n);
	return s;
}

int rt_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

pid_t rt_read_pid(kf *r, const char *name)
{
	char *p = kt_path(r->work, name);
	char *s = kt_read_file(p, NULL);
	free(p);
	pid_t pid = s ? (pid_t)atoi(s) : 0;
	free(s);
	return pid;
}
