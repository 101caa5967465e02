/* reason.h - a stage's failure reason, as the services' fail() and the
 * process runner record it and the runner reports it. */
#ifndef KR_REASON_H
#define KR_REASON_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

/* Why a stage (or an init callback) failed: fail()'s message, masked.
 * Plugin threads may call fail() at the same time, so it is written and
 * read under its lock; the last call wins.  A zeroed kr_reason needs
 * kr_reason_init (or KR_REASON_INIT) before use. */
typedef struct kr_reason {
	pthread_mutex_t lock;
	char text[2048];
	int set;
} kr_reason;
#define KR_REASON_INIT {.lock = PTHREAD_MUTEX_INITIALIZER}

void kr_reason_init(kr_reason *r);
/* Format, mask every registered secret, store. */
void kr_reason_vset(kr_reason *r, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Copy the reason out ("" when none) and clear it; non-zero if one was set. */
int kr_reason_take(kr_reason *r, char *out, size_t n);

#endif
