/*
 * fuzz_http_text - text that comes from servers and settings: the
 * password of a URL (registered as a secret, then masked wherever the URL
 * is quoted) and a Content-Disposition header's file name.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "http.h"
#include "secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	kr_secret_reset();
	kr_secret_add_url_password(s);
	if (kr_secret_max_len()) {
		/* the password registered is gone from the URL once masked */
		const char *p = strstr(s, "://") + 3;
		size_t auth = strcspn(p, "/?#");
		const char *at = p;
		for (const char *q = p; q < p + auth; q++)
			if (*q == '@')
				at = q;
		const char *colon = memchr(p, ':', (size_t)(at - p));
		char *pw = strndup(colon + 1, (size_t)(at - colon - 1));
		kr_buf out = {0};
		kr_secret_mask(s, strlen(s), &out);
		if (strlen(pw) >= KR_SECRET_MIN_LEN && !strchr(pw, '*') && !strpbrk(pw, "\r\n") &&
		    strstr(out.data ? out.data : "", pw))
			abort();
		kr_buf_free(&out);
		free(pw);
	}
	kr_secret_reset();

	char *name = kr_http_disposition_filename(s);
	if (name && !*name)
		abort(); /* an empty name is no name */
	free(name);
	free(s);
	return 0;
}
