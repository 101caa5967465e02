/*
 * log.h - the agent's own log: readable text on a terminal, JSON lines
 * otherwise, levels DEBUG/INFO/WARN/ERROR.  Every line passes through the
 * secret mask before it is written or handed to the sink (the backend's
 * log shipper).  Safe to call from any thread.
 */
#ifndef KR_LOG_H
#define KR_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "keruta/plugin.h"

typedef enum kr_log_format { KR_LOG_FORMAT_AUTO, KR_LOG_FORMAT_TEXT, KR_LOG_FORMAT_JSON } kr_log_format;

/* Where log lines also go, already masked (e.g. shipped to keruta-api). */
typedef void (*kr_log_sink)(void *ctx, kr_log_level level, const char *stage, const char *msg);

void kr_log_setup(kr_log_format format, kr_log_level level, int fd);
void kr_log_set_sink(kr_log_sink sink, void *ctx);
kr_log_level kr_log_get_level(void);
/* Whether lines go out as JSON (the chosen format, or auto off a tty). */
int kr_log_is_json(void);
int kr_log_parse_level(const char *s, kr_log_level *out);
int kr_log_parse_format(const char *s, kr_log_format *out);

void kr_log(kr_log_level level, const char *stage, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void kr_logv(kr_log_level level, const char *stage, const char *fmt, va_list ap);

#endif
