/* fuzz_numbers - durations, sizes, integers, booleans, Retry-After: each
 * accepts a finite decimal or refuses, and never overflows. */
#include <stdlib.h>

#include "fuzz.h"
#include "http.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	uint64_t u;
	int64_t i;
	int b;
	if (kr_parse_duration_ms(s, &u) == 0 && u > (uint64_t)1e15)
		abort();
	if (kr_parse_size(s, &u) == 0 && strpbrk(s, "xXnNiI") && !strpbrk(s, "KMGTkB"))
		abort(); /* hex, nan or inf taken as a bare size */
	kr_parse_int64(s, &i);
	kr_parse_bool(s, &b);
	kr_http_retry_after_ms(s, 1700000000);
	free(s);
	return 0;
}
