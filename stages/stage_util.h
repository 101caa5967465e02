/*
 * stage_util.h - small helpers the built-in stages share.  Header-only:
 * each stage stays one shared object that needs nothing but the plugin
 * interface.
 */
#ifndef KR_STAGE_UTIL_H
#define KR_STAGE_UTIL_H

#include <stdint.h>
#include <stdio.h>

/* A duration as an operator would write it in the pipeline: 2h, 90s, 250ms. */
static inline void kr_stage_format_ms(uint64_t ms, char *out, size_t n)
{
	if (ms % 3600000 == 0 && ms)
		snprintf(out, n, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms)
		snprintf(out, n, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(out, n, "%llums", (unsigned long long)ms);
}

#endif
