/*
 * fuzz_watch - the Kubernetes watch stream as the launcher reads it: the
 * bytes arrive in chunks of any size (here: chosen by the input's head),
 * are cut into lines and each line is an event.  kube.c is compiled into
 * the harness to reach its stream callback unchanged.
 */
#include <stdlib.h>

#include "fuzz.h"

#include "kube.c"

static void on_event(void *ctx, const char *type, json_object *obj)
{
	(void)obj;
	if (!type)
		abort(); /* a callback must never see a NULL type */
	++*(unsigned long *)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kr_fuzz_quiet();
	const uint8_t *seed, *body;
	size_t seed_len, body_len;
	kr_fuzz_split(data, size, &seed, &seed_len, &body, &body_len);
	unsigned long events = 0;
	kr_watch w;
	kr_watch_init(&w, NULL, "/apis/batch/v1/jobs", on_event, &events);
	w.status = 200;
	size_t off = 0;
	while (off < body_len) {
		size_t n = kr_fuzz_chunk(&seed, &seed_len, body_len - off);
		char *piece = malloc(n); /* its own block: an over-read shows */
		memcpy(piece, body + off, n);
		size_t took = on_stream(piece, 1, n, &w);
		free(piece);
		if (took != n)
			break; /* the stream is given up (an oversized event) */
		off += n;
	}
	kr_watch_fini(&w);
	return 0;
}
