/*
 * utf8.h - text from outside (task records, ids, settings) may hold bytes
 * that are not UTF-8; what goes into a manifest or a request must not.
 */
#ifndef KR_LAUNCHER_UTF8_H
#define KR_LAUNCHER_UTF8_H

#include <json.h>
#include <stddef.h>

/* Decode one UTF-8 sequence of at most `left` bytes into *cp: its
 * length, or 0 when invalid (overlong forms and surrogates included). */
size_t kr_utf8_seq(const unsigned char *p, size_t left, unsigned *cp);

/* A json string from bytes that may not be UTF-8 (U+FFFD for bad bytes). */
json_object *kr_json_str(const char *s);

#endif
