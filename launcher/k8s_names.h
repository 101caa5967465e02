/*
 * k8s_names.h - the names the launcher gives its Kubernetes objects, and
 * what the Kubernetes API accepts as a name, a label or a quantity.
 */
#ifndef KR_LAUNCHER_K8S_NAMES_H
#define KR_LAUNCHER_K8S_NAMES_H

#include <stddef.h>

/*
 * A valid DNS-1123 label `prefix` + the id mapped (lowercase, other
 * characters to '-'), at most 63 characters.  When the mapping changed or
 * cut the id, a hash of the original is appended, so two ids never get
 * one name.  kr_k8s_label_value does the same for a label value.
 */
char *kr_k8s_name(const char *prefix, const char *id);
char *kr_k8s_label_value(const char *id);

char *kr_render_job_name(const char *task_id);
char *kr_render_cleanup_name(const char *task_id);

/* A DNS-1123 subdomain: what names a PVC or a storage class. */
int kr_k8s_is_dns_subdomain(const char *v);
/* A Kubernetes resource quantity: 100m, 1.5, 2Gi, 1e3. */
int kr_k8s_is_quantity(const char *q);
/* A label key (key: prefix/name) or value of n bytes, loosely: what the
 * API accepts. */
int kr_k8s_is_label_part(const char *s, size_t n, int key);

#endif
