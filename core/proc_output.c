/*
 * proc_output.c - a child's output: passed through to the agent's own
 * stdout and stderr (the pod log), secrets masked, cut into lines for the
 * backend within the log_max_line and log_max_total budgets (head shipped
 * live, tail kept in a ring and shipped at the end).
 *
 * Output path, per stream: read up to 1 MiB from the pipe, mask secrets
 * (holding back a tail that could be the start of a secret finished by
 * the next read), write the masked bytes to the agent's own fd 1 or 2 at
 * once, then cut them into lines for the backend.  A read in which no
 * secret occurs is not copied (masking scans it once, with memmem); lines
 * are only looked at with memchr; a line is copied only when it straddles
 * two reads.
 * Nothing here waits on the network: the backend's ship_log queues.
 */
#define _GNU_SOURCE
#include "proc_output.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "agent.h"
#include "chan.h"
#include "log.h"
#include "logline.h"
#include "secret.h"
#include "supervise.h"

#define READ_SIZE ((size_t)1 << 20)
/* Room before each read for what was held back as the possible start of
 * a secret, so the two are contiguous without copying the read. */
#define HOLD_ROOM ((size_t)4096)
/* Measured: a 1 MiB pipe moves 30-45 % more than the default 64 KiB. */
/* After the child is gone, how long stray writers may keep its pipes. */
#define DRAIN_MS 2000

static const char *const stream_names[] = {"stdout", "stderr"};

/*
 * ---- the tail ring ----
 *
 * Once the head budget is spent, output is kept as the chunks it was
 * read in, not as lines, so a child writing gigabytes costs one memcpy
 * per read here.  At the end the ring is replayed through the line
 * splitter.  Whole chunks are dropped from the front when it is full.
 * Each stream has its own ring, sharing one budget: a stream holding
 * more than half of it gives way first, so the last stderr lines (where
 * the error usually is) survive a flood on stdout, and the other way
 * round.  A sequence number puts the chunks back in read order.
 */

typedef struct ring {
	char *data;
	size_t cap, start, used;
} ring;

typedef struct rec_hdr {
	uint32_t len;
	uint32_t stream;
	uint64_t seq;
} rec_hdr;

static void ring_copy_in(ring *r, size_t at, const void *src, size_t n)
{
	at %= r->cap;
	size_t first = r->cap - at < n ? r->cap - at : n;
	memcpy(r->data + at, src, first);
	memcpy(r->data, (const char *)src + first, n - first);
}

static void ring_copy_out(const ring *r, size_t at, void *dst, size_t n)
{
	at %= r->cap;
	size_t first = r->cap - at < n ? r->cap - at : n;
	memcpy(dst, r->data + at, first);
	memcpy((char *)dst + first, r->data, n - first);
}

/* Newlines in p[0..n).  Every byte past the head budget goes through
 * here once (the cut lines are counted), so it counts 16 bytes at a time
 * rather than calling memchr per line. */
static size_t count_nl(const char *p, size_t n)
{
	size_t c = 0;
#ifdef __SSE2__
	const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
	while (n >= 16) {
		/* at most 255 rounds: each byte lane counts to 255 */
		size_t k = n / 16 < 255 ? n / 16 : 255;
		__m128i acc = zero;
		for (size_t j = 0; j < k; j++, p += 16)
			acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), nl));
		__m128i sum = _mm_sad_epu8(acc, zero);
		/* each half is at most 255 * 8: 32 bits hold it (and x86-32 has
		 * no 64-bit move out of an SSE register) */
		c += (size_t)_mm_cvtsi128_si32(sum) + (size_t)_mm_cvtsi128_si32(_mm_unpackhi_epi64(sum, sum));
		n -= k * 16;
	}
#endif
	for (const char *e = p + n; p < e && (p = memchr(p, '\n', (size_t)(e - p))); p++)
		c++;
	return c;
}

typedef struct stream {
	int fd;       /* read end; -1 once closed */
	int out_fd;   /* 1 or 2; -1 once writing failed */
	int id;       /* index into stream_names */
	kr_buf hold;  /* raw bytes that may begin a secret */
	kr_buf line;  /* masked start of a line not ended yet */
	kr_logline_cutter parts; /* log_max_line: the current line cut */
	int cut;      /* some of its tail was dropped */
	int resync;   /* its kept tail starts inside a line: skip to \n */
} stream;

typedef struct capture {
	stream s[2];
	kr_backend *b;
	uint64_t head_budget;
	uint64_t shipped; /* bytes of output shipped live */
	int tail_mode;
	ring tail[2];     /* per stream, indexed like s[] */
	size_t tail_cap;  /* budget of both rings together */
	uint64_t seq;     /* of the next chunk pushed */
	uint64_t cut_lines, cut_bytes;
	kr_buf masked;
	char *buf; /* HOLD_ROOM + READ_SIZE bytes: read() fills the second part */
} capture;

/* Where a part of a line goes. */
typedef struct capture_ctx {
	capture *c;
	stream *st;
} capture_ctx;

/* Bytes of a stream that will never be shipped. */
static void note_cut(capture *c, stream *st, size_t bytes, size_t lines, int ends_line)
{
	c->cut_bytes += bytes;
	c->cut_lines += lines;
	st->cut = 1;
	st->resync = !ends_line;
}

/* Drop the first k bytes of the front chunk (header h) of r. */
static void ring_drop_front(ring *r, rec_hdr *h, size_t k)
{
	if (k == h->len) {
		r->start = (r->start + sizeof(*h) + k) % r->cap;
		r->used -= sizeof(*h) + k;
	} else {
		/* the new header lands on bytes just dropped */
		r->start = (r->start + k) % r->cap;
		r->used -= k;
		h->len -= (uint32_t)k;
		ring_copy_in(r, r->start, h, sizeof(*h));
	}
}

/* Make room for `need` more bytes of stream `st`: drop the oldest chunks
 * (of the stream over half the budget, else of `st`), and cut the front
 * off the last one dropped into, so the newest output is kept. */
static void ring_free(capture *c, stream *st, size_t need)
{
	for (;;) {
		size_t used = c->tail[0].used + c->tail[1].used;
		if (used + need <= c->tail_cap)
			return;
		/* ring_push() left `st` at most what the other stream may not keep,
		 * so when the other holds half or less, `st` has chunks to drop */
		ring *other = &c->tail[!st->id];
		ring *r = other->used > c->tail_cap / 2 ? other : &c->tail[st->id];
		rec_hdr h;
		ring_copy_out(r, r->start, &h, sizeof(h));
		size_t short_by = used + need - c->tail_cap;
		/* the whole chunk when its bytes are not enough (its header goes
		 * too): a cut can take at most what it holds */
		size_t k = h.len <= short_by ? h.len : short_by;
		size_t at = (r->start + sizeof(h)) % r->cap;
		size_t first = r->cap - at < k ? r->cap - at : k;
		size_t lines = count_nl(r->data + at, first) + count_nl(r->data, k - first);
		int ends = k && r->data[(at + k - 1) % r->cap] == '\n';
		note_cut(c, &c->s[h.stream], k, lines, ends);
		ring_drop_front(r, &h, k);
	}
}

static void ring_push(capture *c, stream *st, const char *p, size_t n)
{
	ring *r = &c->tail[st->id];
	if (!n)
		return;
	/* what the other stream may keep (up to half) is not ours to take */
	size_t theirs = c->tail[!st->id].used, room = r->cap;
	room -= theirs < c->tail_cap / 2 ? theirs : c->tail_cap / 2;
	if (n + sizeof(rec_hdr) > room) {
		size_t drop = n + sizeof(rec_hdr) - room;
		note_cut(c, st, drop, count_nl(p, drop), p[drop - 1] == '\n');
		p += drop;
		n -= drop;
	}
	if (!r->data)
		r->data = kr_malloc(r->cap);
	ring_free(c, st, n + sizeof(rec_hdr));
	rec_hdr h = {(uint32_t)n, (uint32_t)st->id, c->seq++};
	ring_copy_in(r, r->start + r->used, &h, sizeof(h));
	ring_copy_in(r, r->start + r->used + sizeof(h), p, n);
	r->used += n + sizeof(h);
}

/* ---- lines ---- */

static void ship(capture *c, int id, const char *data, size_t len)
{
	if (c->b)
		c->b->ops->ship_log(c->b, stream_names[id], data, len);
}

static void ship_part(void *ctx, const char *data, size_t len)
{
	capture_ctx *x = ctx;
	ship(x->c, x->st->id, data, len);
}

/* The next bytes of the current line; `ends`: the line ends with them.
 * What is not shipped (the start of a last part) is left to the caller. */
static size_t cut_line(capture *c, stream *st, const char *data, size_t len, int ends)
{
	capture_ctx x = {c, st};
	return kr_logline_cut(&st->parts, data, len, ends, ship_part, &x);
}

/* A complete line (without its newline). */
static void emit_line(capture *c, stream *st, const char *data, size_t len)
{
	cut_line(c, st, data, len, 1);
}

/* The pending start of a line grew past the limit: ship whole parts. */
static void flush_long(capture *c, stream *st)
{
	size_t off = cut_line(c, st, st->line.data, st->line.len, 0);
	memmove(st->line.data, st->line.data + off, st->line.len - off);
	st->line.len -= off;
	st->line.data[st->line.len] = '\0';
}

static void feed_lines(capture *c, stream *st, const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		if (!nl) {
			kr_buf_add(&st->line, p, n);
			if (st->line.len > st->parts.max)
				flush_long(c, st);
			return;
		}
		size_t k = (size_t)(nl - p);
		if (st->line.len == 0) {
			emit_line(c, st, p, k);
		} else {
			kr_buf_add(&st->line, p, k);
			emit_line(c, st, st->line.data, st->line.len);
			kr_buf_reset(&st->line);
		}
		p += k + 1;
		n -= k + 1;
	}
}

static void pass_through(stream *st, const char *p, size_t n)
{
	while (n && st->out_fd >= 0) {
		ssize_t w = write(st->out_fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && errno == EAGAIN) {
			/* an inherited non-blocking fd: wait for room, briefly */
			struct pollfd pf = {st->out_fd, POLLOUT, 0};
			if (poll(&pf, 1, 1000) <= 0)
				st->out_fd = -1;
		} else {
			/* the pod log is gone; keep draining so the child is not blocked */
			st->out_fd = -1;
		}
	}
}

/* Masked output: to the agent's own fd, then lines (head) or the tail. */
static void emit_output(capture *c, stream *st, const char *out, size_t outn)
{
	pass_through(st, out, outn);
	uint64_t cost = c->tail_mode ? 0 : outn + (uint64_t)KR_LOGLINE_COST * count_nl(out, outn);
	if (!c->tail_mode && c->shipped + cost <= c->head_budget) {
		c->shipped += cost;
		feed_lines(c, st, out, outn);
		return;
	}
	if (!c->tail_mode) {
		/* ship the whole lines that still fit; keep the rest as tail */
		uint64_t room = c->head_budget - c->shipped;
		size_t live = 0;
		for (const char *p = out, *nl; (nl = memchr(p, '\n', outn - (size_t)(p - out)));
		     p = nl + 1) {
			uint64_t line = (uint64_t)(nl + 1 - p) + KR_LOGLINE_COST;
			if (line > room)
				break;
			room -= line;
			live = (size_t)(nl + 1 - out);
		}
		c->shipped = c->head_budget - room;
		feed_lines(c, st, out, live);
		out += live;
		outn -= live;
		c->tail_mode = 1;
	}
	ring_push(c, st, out, outn);
}

static void on_data(capture *c, stream *st, const char *data, size_t n, int eof)
{
	/* held bytes go in front of the read: in the room left for them
	 * before c->buf's read area, or (longer ones, the last call) by
	 * appending the read to them */
	const char *text = data;
	size_t len = n;
	if (st->hold.len && data == c->buf + HOLD_ROOM && st->hold.len <= HOLD_ROOM) {
		text = data - st->hold.len;
		memcpy(c->buf + HOLD_ROOM - st->hold.len, st->hold.data, st->hold.len);
		len += st->hold.len;
		kr_buf_reset(&st->hold);
	} else if (st->hold.len) {
		kr_buf_add(&st->hold, data, n);
		text = st->hold.data;
		len = st->hold.len;
	}
	int masked = 0;
	kr_buf_reset(&c->masked);
	size_t safe = kr_secret_mask_stream(text, len, eof, &c->masked, &masked);
	const char *out = masked ? c->masked.data : text;
	size_t outn = masked ? c->masked.len : safe;
	emit_output(c, st, out, outn);
	/* what may begin a secret waits for the next read */
	if (text == st->hold.data) {
		memmove(st->hold.data, text + safe, len - safe);
		st->hold.len = len - safe;
		if (st->hold.data)
			st->hold.data[st->hold.len] = '\0';
	} else if (safe < len) {
		kr_buf_add(&st->hold, text + safe, len - safe);
	}
}

static void finish_stream(capture *c, stream *st)
{
	if (st->fd >= 0) {
		close(st->fd);
		st->fd = -1;
	}
	if (st->hold.len)
		on_data(c, st, "", 0, 1);
	kr_buf_free(&st->hold);
}

/* The ring whose first chunk was read first; NULL when both are empty. */
static ring *oldest_chunk(capture *c)
{
	ring *a = &c->tail[0], *b = &c->tail[1];
	if (!a->used || !b->used)
		return a->used ? a : b->used ? b : NULL;
	rec_hdr ha, hb;
	ring_copy_out(a, a->start, &ha, sizeof(ha));
	ring_copy_out(b, b->start, &hb, sizeof(hb));
	return hb.seq < ha.seq ? b : a;
}

/* Lines and bytes of the chunk at the front of r. */
static void front_chunk(const ring *r, rec_hdr *h, size_t *lines)
{
	ring_copy_out(r, r->start, h, sizeof(*h));
	size_t at = (r->start + sizeof(*h)) % r->cap;
	size_t first = r->cap - at < h->len ? r->cap - at : h->len;
	*lines = count_nl(r->data + at, first) + count_nl(r->data, h->len - first);
}

/* The tail ring is bounded in bytes; its lines also cost KR_LOGLINE_COST each.
 * Drop whole lines from the oldest end until the tail's records fit in
 * the tail budget. */
static void tail_fit(capture *c)
{
	uint64_t cost[2] = {0, 0};
	for (int i = 0; i < 2; i++) {
		ring *r = &c->tail[i];
		for (size_t pos = r->start, left = r->used; left;) {
			ring tmp = *r;
			tmp.start = pos;
			rec_hdr h;
			size_t lines;
			front_chunk(&tmp, &h, &lines);
			cost[i] += h.len + (uint64_t)KR_LOGLINE_COST * lines;
			pos = (pos + sizeof(h) + h.len) % r->cap;
			left -= sizeof(h) + h.len;
		}
	}
	while (cost[0] + cost[1] > c->tail_cap) {
		/* as in ring_free: a stream over half the budget gives way first,
		 * so the last lines of the other survive a flood */
		int i = cost[0] > c->tail_cap / 2 && cost[0] >= cost[1]   ? 0
		        : cost[1] > c->tail_cap / 2                       ? 1
		        : oldest_chunk(c) == &c->tail[0]                  ? 0
		                                                          : 1;
		ring *r = &c->tail[i];
		if (!r->used)
			break;
		rec_hdr h;
		size_t lines;
		front_chunk(r, &h, &lines);
		size_t at = (r->start + sizeof(h)) % r->cap;
		size_t k = 0, dropped = 0;
		while (k < h.len && cost[0] + cost[1] > c->tail_cap) {
			size_t n = 0;
			while (k + n < h.len && r->data[(at + k + n) % r->cap] != '\n')
				n++;
			int whole = k + n < h.len;
			n += whole; /* with its newline */
			cost[i] -= n + (whole ? KR_LOGLINE_COST : 0);
			k += n;
			dropped += whole;
		}
		note_cut(c, &c->s[h.stream], k, dropped, r->data[(at + k - 1) % r->cap] == '\n');
		ring_drop_front(r, &h, k);
	}
}

/* After the last read: the tail (if any), then unfinished lines. */
static void capture_end(capture *c)
{
	if (c->tail_mode && c->b) {
		tail_fit(c);
		if (c->cut_bytes) {
			char msg[256];
			size_t n = kr_logline_notice(msg, sizeof(msg), c->cut_lines, c->cut_bytes,
			                             c->shipped, c->tail[0].used + c->tail[1].used);
			c->b->ops->ship_log(c->b, "agent", msg, n);
		}
		for (int i = 0; i < 2; i++) {
			if (c->s[i].cut) { /* what it held was continued in dropped output */
				kr_buf_reset(&c->s[i].line);
				kr_logline_forget(&c->s[i].parts);
			}
		}
		char *tmp = kr_malloc(c->tail[0].used > c->tail[1].used ? c->tail[0].used + 1
		                                                        : c->tail[1].used + 1);
		ring *r;
		while ((r = oldest_chunk(c)) != NULL) {
			rec_hdr h;
			ring_copy_out(r, r->start, &h, sizeof(h));
			ring_copy_out(r, r->start + sizeof(h), tmp, h.len);
			r->start = (r->start + sizeof(h) + h.len) % r->cap;
			r->used -= sizeof(h) + h.len;
			stream *st = &c->s[h.stream];
			const char *p = tmp;
			size_t n = h.len;
			if (st->resync) {
				const char *nl = memchr(p, '\n', n);
				size_t skip = nl ? (size_t)(nl - p) + 1 : n;
				p += skip;
				n -= skip;
				st->resync = nl == NULL;
			}
			feed_lines(c, st, p, n);
		}
		free(tmp);
	}
	for (int i = 0; i < 2; i++) {
		stream *st = &c->s[i];
		if (st->line.len || st->parts.split)
			emit_line(c, st, st->line.data ? st->line.data : "", st->line.len);
		kr_buf_free(&st->line);
		kr_logline_cutter_free(&st->parts);
	}
}

/* Read both pipes until they close.  Once the child is gone, strays that
 * still hold the pipes are killed and the rest is drained for a while. */
static void capture_run(capture *c, pid_t pid, kr_chan *chan)
{
	int child_done = 0;
	uint64_t drain_until = 0;
	for (;;) {
		struct pollfd pf[3];
		stream *map[3];
		nfds_t n = 0;
		/* stderr first: when both are ready, a stderr line usually came
		 * before the up to READ_SIZE bytes of stdout read in the same
		 * round, and it must not be ordered after them (and lost to the
		 * head budget they fill) */
		for (int i = 1; i >= 0; i--) {
			if (c->s[i].fd >= 0) {
				pf[n] = (struct pollfd){c->s[i].fd, POLLIN, 0};
				map[n++] = &c->s[i];
			}
		}
		if (n == 0)
			return;
		if (chan) {
			pf[n] = (struct pollfd){kr_chan_fd(chan), POLLIN, 0};
			map[n++] = NULL;
		}
		int timeout = KR_PROC_TICK_MS;
		if (child_done) {
			uint64_t now = kr_now_ms();
			if (now >= drain_until)
				break;
			timeout = (int)(drain_until - now < KR_PROC_TICK_MS ? drain_until - now : KR_PROC_TICK_MS);
		}
		int rc = poll(pf, n, timeout);
		if (rc < 0 && errno != EINTR)
			break;
		for (nfds_t i = 0; rc > 0 && i < n; i++) {
			if (!pf[i].revents)
				continue;
			if (!map[i]) {
				kr_chan_serve(chan);
				continue;
			}
			ssize_t got = read(pf[i].fd, c->buf + HOLD_ROOM, READ_SIZE);
			if (got > 0)
				on_data(c, map[i], c->buf + HOLD_ROOM, (size_t)got, 0);
			else if (got == 0 || (errno != EINTR && errno != EAGAIN))
				finish_stream(c, map[i]);
		}
		if (!child_done && kr_supervise_ended(pid) == 1) {
			child_done = 1;
			drain_until = kr_now_ms() + DRAIN_MS;
			kr_supervise_kill_strays(0);
		}
	}
	for (int i = 0; i < 2; i++)
		if (c->s[i].fd >= 0)
			finish_stream(c, &c->s[i]);
}

void kr_proc_capture(struct kr_agent *a, int out_fd, int err_fd, pid_t pid)
{
	capture c;
	memset(&c, 0, sizeof(c));
	c.s[0] = (stream){.fd = out_fd, .out_fd = 1, .id = 0};
	/* in JSON mode stderr holds only the agent's JSON lines: the
	 * task's stderr is echoed on stdout (its events keep the stream) */
	c.s[1] = (stream){.fd = err_fd, .out_fd = kr_log_is_json() ? 1 : 2, .id = 1};
	c.b = a ? a->backend : NULL;
	uint64_t max_line = a ? kr_settings_u64(a->settings, KR_S_LOG_MAX_LINE) : 16384;
	uint64_t max_total = a ? kr_settings_u64(a->settings, KR_S_LOG_MAX_TOTAL) : 64 << 20;
	if (max_line < KR_LOGLINE_MIN)
		max_line = KR_LOGLINE_MIN;
	if (max_line > READ_SIZE)
		max_line = READ_SIZE;
	uint64_t tail;
	kr_logline_budget(max_total, max_line, &c.head_budget, &tail);
	c.s[0].parts.max = c.s[1].parts.max = (size_t)max_line;
	c.tail_cap = c.tail[0].cap = c.tail[1].cap = (size_t)tail;
	c.buf = kr_malloc(HOLD_ROOM + READ_SIZE);
	capture_run(&c, pid, a ? a->chan : NULL);
	capture_end(&c);
	free(c.buf);
	free(c.tail[0].data);
	free(c.tail[1].data);
	kr_buf_free(&c.masked);
}
