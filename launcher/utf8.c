/*
 * utf8.c - repairing text that may not be UTF-8: a sequence decoder and
 * the json string whose bad bytes are U+FFFD (see utf8.h).
 */
#include <string.h>

#include "utf8.h"
#include "util.h"

/* Decode one UTF-8 sequence; its length, or 0 when invalid. */
size_t kr_utf8_seq(const unsigned char *p, size_t left, unsigned *cp)
{
	unsigned c = p[0];
	size_t n;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, c &= 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

json_object *kr_json_str(const char *s)
{
	if (!s)
		s = "";
	size_t len = strlen(s);
	kr_buf b = {0};
	for (size_t i = 0; i < len;) {
		unsigned cp;
		size_t n = kr_utf8_seq((const unsigned char *)s + i, len - i, &cp);
		if (n) {
			kr_buf_add(&b, s + i, n);
			i += n;
		} else {
			kr_buf_adds(&b, "\xef\xbf\xbd");
			i++;
		}
	}
	json_object *o = json_object_new_string_len(b.data ? b.data : "", (int)b.len);
	kr_buf_free(&b);
	return o;
}
