/*
 * fuzz_masker - the invariant of the secret masker: no registered secret
 * appears in what the agent writes, whatever the set of secrets and
 * however the output is cut into reads.
 *
 * Input: "SECRET\nSECRET\n...\n--\nCHUNKING\n--\nTEXT".  The text is fed as
 * the process runner feeds a child's output: each read appended to what
 * was held, the safe prefix masked and written, the rest held.  Secrets
 * holding '*' are left out: the mask itself is made of '*', so such a
 * "secret" can be formed around a mask without any leak.
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

	kr_buf out = {0}, hold = {0};
	size_t off = 0;
	do {
		size_t n = kr_fuzz_chunk(&seed, &seed_len, text_len - off);
		kr_buf_add(&hold, (const char *)text + off, n);
		off += n;
		size_t safe = off == text_len ? hold.len : kr_secret_safe_prefix(hold.data, hold.len);
		if (safe > hold.len)
			abort();
		kr_secret_mask(hold.data, safe, &out);
		memmove(hold.data, hold.data + safe, hold.len - safe);
		hold.len -= safe;
	} while (off < text_len);
	if (hold.len)
		abort(); /* the end of the output flushes everything */

	for (size_t i = 0; i < nsec; i++)
		if (out.len && memmem(out.data, out.len, list[i], strlen(list[i])))
			abort();
	kr_buf_free(&out);
	kr_buf_free(&hold);
	free(secrets);
	kr_secret_reset();
	return 0;
}
