/*
 * secret.h - values that must never be printed (the API token, git
 * credentials, values listed in the pipeline file).  Process-wide, because
 * a secret is a secret for every line the process writes; the list only
 * grows.
 */
#ifndef KR_SECRET_H
#define KR_SECRET_H

#include <stddef.h>

#include "util.h"

#define KR_SECRET_MASK "***"
/* Values shorter than this are not registered: masking "a" would wreck
 * every line while protecting nothing. */
#define KR_SECRET_MIN_LEN 4

void kr_secret_add(const char *value);
/* The password of a URL's user info (scheme://user:PASSWORD@host/...), if
 * any: error messages quote URLs. */
void kr_secret_add_url_password(const char *url);
/* Longest registered secret, in bytes (0 if none). */
size_t kr_secret_max_len(void);
/* Append text to out with every secret replaced by the mask. */
void kr_secret_mask(const char *text, size_t len, kr_buf *out);
/*
 * Stream masking: returns the length of the safe prefix of text[0..len),
 * the part that can be written now because it ends before any suffix
 * which might be the start of a secret continued in the next read (all
 * of len when `final`, i.e. no more bytes follow).  The caller writes
 * that prefix, keeps the rest and prepends it to the next read.  When a
 * secret occurs in that prefix, its masked form is appended to out and
 * *masked is 1; else out is untouched, *masked is 0 and the prefix is
 * written as it is (the common case costs no copy).
 */
size_t kr_secret_mask_stream(const char *text, size_t len, int final, kr_buf *out, int *masked);
void kr_secret_reset(void); /* tests only */

#endif
