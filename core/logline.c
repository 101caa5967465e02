/*
 * logline.c - see logline.h.  Owns the policies "a line longer than
 * log_max_line is cut into marked parts" and "past log_max_total only a
 * head and a tail of the log are kept, with a line saying what was cut".
 */
#include "logline.h"

#include <stdio.h>
#include <string.h>

/* A cut that does not land inside a UTF-8 sequence, when one is near. */
static size_t utf8_cut(const char *p, size_t max)
{
	size_t cut = max;
	for (int i = 0; i < 3 && cut > 1 && ((unsigned char)p[cut] & 0xC0) == 0x80; i++)
		cut--;
	return ((unsigned char)p[cut] & 0xC0) == 0x80 ? max : cut;
}

static void emit_part(kr_logline_cutter *c, const char *data, size_t len, int more,
                      kr_logline_emit *emit, void *ctx)
{
	if (!c->split && !more) {
		emit(ctx, data, len);
		return;
	}
	kr_buf *b = &c->part;
	kr_buf_reset(b);
	if (c->split)
		kr_buf_adds(b, KR_LOGLINE_CONT);
	kr_buf_add(b, data, len);
	if (more)
		kr_buf_adds(b, KR_LOGLINE_MORE);
	emit(ctx, b->data, b->len);
	c->split = more;
}

size_t kr_logline_cut(kr_logline_cutter *c, const char *data, size_t len, int ends,
                      kr_logline_emit *emit, void *ctx)
{
	const size_t cont = sizeof(KR_LOGLINE_CONT) - 1, more = sizeof(KR_LOGLINE_MORE) - 1;
	size_t max = c->max > KR_LOGLINE_MIN ? c->max : KR_LOGLINE_MIN;
	/* the text of a part that is not the last */
	size_t room = max - cont - more;
	size_t off = 0;
	/* what is left may be the last part once its lead mark fits */
	while (len - off + (c->split ? cont : 0) > max) {
		size_t cut = utf8_cut(data + off, room);
		emit_part(c, data + off, cut, 1, emit, ctx);
		off += cut;
	}
	if (!ends)
		return off;
	emit_part(c, data + off, len - off, 0, emit, ctx);
	return len;
}

void kr_logline_forget(kr_logline_cutter *c)
{
	c->split = 0;
}

void kr_logline_cutter_free(kr_logline_cutter *c)
{
	kr_buf_free(&c->part);
}

void kr_logline_budget(uint64_t max_total, uint64_t max_line, uint64_t *head, uint64_t *tail)
{
	uint64_t t = max_total / 4 > (8u << 20) ? (8u << 20) : max_total / 4;
	if (t < max_line + 1024)
		t = max_line + 1024;
	*tail = t;
	*head = max_total > t ? max_total - t : 0;
}

size_t kr_logline_notice(char *buf, size_t n, uint64_t lines, uint64_t bytes, uint64_t head,
                         uint64_t tail)
{
	int k = snprintf(buf, n,
	                 "[keruta-agent: %llu lines (%llu bytes) of output cut here: the log keeps "
	                 "the first %llu and the last %llu bytes (log_max_total)]",
	                 (unsigned long long)lines, (unsigned long long)bytes,
	                 (unsigned long long)head, (unsigned long long)tail);
	return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n ? n - 1 : 0;
}
