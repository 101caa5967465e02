/*
 * fuzz_masker - the invariant of the secret masker: no registered secret
 * appears in what the agent writes, whatever the set of secrets and
 * however the output is cut into reads.
 *
 * Input: "SECRET\nSECRET\n...\n--\nCHUNKING\n--\nTEXT".  The text is fed as
 * the process runner feeds a child's output (core/proc.c on_data): each
 * read appended to what was held, kr_secret_mask_stream over the whole,
 * its masked text (or the plain safe prefix, when it found no secret)
 * written, the rest held; the end of the output flushes what is held.
 * Beyond "no secret in the output", the streamed output must equal the
 * whole text masked at once: however the reads fall, the log says the
 * same.  Secrets holding '*' are left out: the mask itself is made of
 * '*', so such a "secret" can be formed around a mask without any leak.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdlib.h>

#include "fuzz.h"
#include "secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *head, *rest, *seed, *text;
	size_t head_len, rest_len, seed_len, text_len;
	kr_fuzz_split(data, size, &head, &head_len, &rest, &rest_len);
	kr_fuzz_split(rest, rest_len, &seed, &seed_len, &text, &text_len);

	kr_secret_reset();
	char *secrets = strndup((const char *)head, head_len); /* stops at a NUL */
	size_t nsec = 0;
	char *list[64];
	for (char *save = NULL, *s = strtok_r(secrets, "\n", &save); s && nsec < 64;
	     s = strtok_r(NULL, "\n", &save)) {
		if (strlen(s) < KR_SECRET_MIN_LEN || strchr(s, '*') || strchr(s, '\r'))
			continue;
		kr_secret_add(s);
		list[nsec++] = s;
	}

	kr_buf out = {0}, hold = {0}, masked = {0}, whole = {0};
	size_t off = 0;
	do {
		size_t n = kr_fuzz_chunk(&seed, &seed_len, text_len - off);
		kr_buf_add(&hold, (const char *)text + off, n);
		off += n;
		int final = off == text_len, found = 0;
		kr_buf_reset(&masked);
		size_t safe = kr_secret_mask_stream(hold.data, hold.len, final, &masked, &found);
		if (safe > hold.len || (final && safe != hold.len))
			abort();
		if (found)
			kr_buf_add(&out, masked.data, masked.len);
		else
			kr_buf_add(&out, hold.data, safe);
		memmove(hold.data, hold.data + safe, hold.len - safe);
		hold.len -= safe;
	} while (off < text_len);
	if (hold.len)
		abort(); /* the end of the output flushes everything */

	kr_secret_mask((const char *)text, text_len, &whole);
	if (whole.len != out.len || (out.len && memcmp(whole.data, out.data, out.len)))
		abort();
	for (size_t i = 0; i < nsec; i++)
		if (out.len && memmem(out.data, out.len, list[i], strlen(list[i])))
			abort();
	kr_buf_free(&out);
	kr_buf_free(&hold);
	kr_buf_free(&masked);
	kr_buf_free(&whole);
	free(secrets);
	kr_secret_reset();
	return 0;
}
