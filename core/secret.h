/*
 * secret.h - values that must never be printed (the API token, git
 * credentials, values listed in the pipeline file).  Process-wide, because
 * a secret is a secret for every line the process writes; the list only
 * grows.
 *
 * Owns the policy "no line and no message carries a secret": lines are
 * masked with kr_secret_mask / kr_secret_mask_stream before they leave the
 * agent, messages are made with kr_secret_vformat or kr_secret_error_set
 * (format, mask, then store), never formatted into a buffer and masked
 * after the cut.
 */
#ifndef KR_SECRET_H
#define KR_SECRET_H

#include <stdarg.h>
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
/*
 * A message from a format: formatted whole, then masked, so that a cut
 * made when it is stored (a kr_error's or a reason's fixed buffer) cannot
 * keep the start of a secret it ends in.  malloc'd, the caller's.
 */
char *kr_secret_vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* kr_error_set with the message masked: for errors whose text may quote
 * what a server or a child said. */
void kr_secret_error_set(kr_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void kr_secret_error_vset(kr_error *err, int code, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
void kr_secret_reset(void); /* tests only */

#endif
