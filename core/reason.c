/*
 * reason.c - a stage's failure reason (format, mask, store under a lock);
 * see reason.h.  Its own file because both the services (fail()) and the
 * process runner write it.
 */
#include "reason.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "util.h"

void kr_reason_init(kr_reason *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
}

void kr_reason_vset(kr_reason *r, const char *fmt, va_list ap)
{
	char *msg = kr_secret_vformat(fmt, ap);
	pthread_mutex_lock(&r->lock);
	snprintf(r->text, sizeof(r->text), "%s", msg);
	r->set = 1;
	pthread_mutex_unlock(&r->lock);
	free(msg);
}

int kr_reason_take(kr_reason *r, char *out, size_t n)
{
	pthread_mutex_lock(&r->lock);
	int had = r->set;
	if (n)
		snprintf(out, n, "%s", had ? r->text : "");
	r->text[0] = '\0';
	r->set = 0;
	pthread_mutex_unlock(&r->lock);
	return had;
}
