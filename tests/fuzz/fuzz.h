/*
 * fuzz.h - shared by the libFuzzer harnesses: the entry point's prototype
 * and a way to cut the input into a list of chunk lengths, so a harness
 * that feeds a stream tries every chunking the fuzzer can think of.
 */
#ifndef KR_FUZZ_H
#define KR_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Only errors on stderr: warnings about hostile input are expected. */
static inline void kr_fuzz_quiet(void)
{
	static int done;
	if (!done++)
		kr_log_setup(KR_LOG_FORMAT_TEXT, KR_LOG_ERROR, 2);
}

/* The next chunk length (1..max) from the first byte of *seed, consumed;
 * when the seed is used up, the rest in one piece. */
static inline size_t kr_fuzz_chunk(const uint8_t **seed, size_t *seed_len, size_t left)
{
	if (!*seed_len || !left)
		return left;
	size_t n = (size_t)(**seed % 16) + 1;
	(*seed)++;
	(*seed_len)--;
	return n < left ? n : left;
}

/* Split data at the first "\n--\n": head (the control part) and tail. */
static inline void kr_fuzz_split(const uint8_t *data, size_t size, const uint8_t **head,
                                 size_t *head_len, const uint8_t **tail, size_t *tail_len)
{
	const uint8_t *sep = NULL;
	for (size_t i = 0; i + 4 <= size; i++)
		if (memcmp(data + i, "\n--\n", 4) == 0) {
			sep = data + i;
			break;
		}
	*head = data;
	*head_len = sep ? (size_t)(sep - data) : 0;
	*tail = sep ? sep + 4 : data;
	*tail_len = sep ? size - (size_t)(sep + 4 - data) : size;
}

#endif
