/*
 * k8s_names.c - what Kubernetes accepts as a name, a label or a quantity,
 * and the names the launcher gives its objects (see k8s_names.h).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_names.h"
#include "util.h"

#define NAME_MAX_LEN 63

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Shared by names and label values: keep(c) says what may stay, and
 * what is mapped; ends must be alphanumeric. */
static char *map_name(const char *prefix, const char *id, int lower, const char *extra)
{
	size_t plen = strlen(prefix), len = strlen(id);
	char *m = kr_malloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if (lower && c < 0x80)
			c = (unsigned char)tolower(c);
		int ok = c < 0x80 && (isdigit(c) || (lower ? islower(c) : isalpha(c)) ||
		                      (c && strchr(extra, c)));
		if (!ok)
			c = '-';
		if (c == '-' && n > 0 && m[n - 1] == '-')
			continue;
		m[n++] = (char)c;
	}
	m[n] = '\0';
	/* ends: alphanumeric only */
	size_t start = 0;
	while (start < n && !isalnum((unsigned char)m[start]))
		start++;
	while (n > start && !isalnum((unsigned char)m[n - 1]))
		m[--n] = '\0';
	const char *core = m + start;
	size_t avail = NAME_MAX_LEN - plen;
	char *out;
	if (strcmp(core, id) == 0 && strlen(core) <= avail && *core) {
		out = kr_asprintf("%s%s", prefix, core);
	} else {
		char hash[17];
		snprintf(hash, sizeof(hash), "%010llx",
		         (unsigned long long)(fnv1a(id) & 0xffffffffffull));
		size_t keep = strlen(core);
		if (keep > avail - 11)
			keep = avail - 11;
		while (keep > 0 && !isalnum((unsigned char)core[keep - 1]))
			keep--;
		out = kr_asprintf("%s%.*s%s%s", prefix, (int)keep, core, keep ? "-" : "", hash);
	}
	free(m);
	return out;
}

char *kr_k8s_name(const char *prefix, const char *id)
{
	return map_name(prefix, id, 1, "-");
}

char *kr_k8s_label_value(const char *id)
{
	return map_name("", id, 0, "-_.");
}

char *kr_render_job_name(const char *task_id)
{
	return kr_k8s_name("keruta-job-", task_id);
}

char *kr_render_cleanup_name(const char *task_id)
{
	return kr_k8s_name("cleanup-job-for-task-", task_id);
}

/* A DNS-1123 subdomain: what names a PVC or a storage class. */
int kr_k8s_is_dns_subdomain(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 253 || !isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!(isdigit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '.'))
			return 0;
		if (c == '.' && (!isalnum((unsigned char)v[i - 1]) || !isalnum((unsigned char)v[i + 1])))
			return 0;
	}
	return 1;
}

/* A Kubernetes resource quantity: 100m, 1.5, 2Gi, 1e3. */
int kr_k8s_is_quantity(const char *q)
{
	const char *p = q;
	if (*p == '+' || *p == '-')
		p++;
	int digits = 0;
	while (isdigit((unsigned char)*p))
		p++, digits++;
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p))
			p++, digits++;
	}
	if (!digits)
		return 0;
	static const char *const suffixes[] = {"", "m", "k", "M", "G", "T", "P", "E", "Ki",
	                                        "Mi", "Gi", "Ti", "Pi", "Ei"};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (strcmp(p, suffixes[i]) == 0)
			return 1;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
		return *p == '\0';
	}
	return 0;
}

/* A label key (prefix/name) or value, loosely: what the API accepts. */
int kr_k8s_is_label_part(const char *s, size_t n, int key)
{
	if (n == 0)
		return !key;
	if (n > (key ? 316u : 63u))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || strchr("-_.", s[i]) || (key && s[i] == '/')))
			return 0;
	return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[n - 1]);
}
