/*
 * settings_check.c - checking the launcher's settings before anything is
 * rendered or started: volume kind, quantities, selectors, tolerations,
 * the repository cache volume (see settings_check.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_names.h"
#include "launcher_settings.h"
#include "settings_check.h"
#include "utf8.h"

int kr_launcher_given(const char *v)
{
	return v && *v && strcmp(v, "none") != 0;
}

static int one_of(const char *v, const char *a, const char *b, const char *c)
{
	return v && (!strcmp(v, a) || !strcmp(v, b) || (c && !strcmp(v, c)));
}

/* "key[=value][:Effect]" as in kubectl taint. */
int kr_k8s_toleration(const char *t, json_object **out)
{
	const char *colon = strrchr(t, ':');
	const char *eq = strchr(t, '=');
	if (eq && colon && eq > colon)
		eq = NULL;
	const char *kend = eq ? eq : colon ? colon : t + strlen(t);
	if (!kr_k8s_is_label_part(t, (size_t)(kend - t), 1))
		return -1;
	const char *effect = colon ? colon + 1 : NULL;
	if (effect && !one_of(effect, "NoSchedule", "PreferNoSchedule", "NoExecute"))
		return -1;
	const char *vstart = eq ? eq + 1 : NULL;
	size_t vlen = vstart ? (size_t)((colon ? colon : t + strlen(t)) - vstart) : 0;
	if (vstart && !kr_k8s_is_label_part(vstart, vlen, 0))
		return -1;
	if (!out)
		return 0;
	json_object *o = json_object_new_object();
	char *key = kr_strndup(t, (size_t)(kend - t));
	json_object_object_add(o, "key", kr_json_str(key));
	free(key);
	json_object_object_add(o, "operator", json_object_new_string(vstart ? "Equal" : "Exists"));
	if (vstart) {
		char *v = kr_strndup(vstart, vlen);
		json_object_object_add(o, "value", kr_json_str(v));
		free(v);
	}
	if (effect)
		json_object_object_add(o, "effect", json_object_new_string(effect));
	*out = o;
	return 0;
}

/* hostPath:/ABS/DIR, or a claim name (DNS-1123 subdomain); NULL if fine. */
static const char *git_cache_volume_bad(const char *v)
{
	if (strncmp(v, "hostPath:", 9) == 0)
		return v[9] == '/' && !strstr(v, "/../") && strcmp(v + strlen(v) - 3, "/..")
		               ? NULL
		               : "hostPath: needs an absolute directory";
	size_t n = strlen(v);
	if (n == 0 || n > 253 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-.") != n ||
	    !isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[n - 1]))
		return "a claim name is lower-case letters, digits, '-' and '.'";
	return NULL;
}

int kr_render_check(const kr_settings *s, kr_error *err)
{
	const char *v = kr_settings_get(s, KR_S_K8S_GIT_CACHE_VOLUME);
	const char *why = kr_launcher_given(v) ? git_cache_volume_bad(v) : NULL;
	if (why) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--git-cache-volume must be hostPath:/DIR or a ReadWriteMany claim's "
		             "name, not '%s': %s",
		             v, why);
		return -1;
	}
	if (kr_launcher_given(v) && kr_settings_bool(s, KR_S_K8S_SINGLE_CONTAINER)) {
		/* the one container would clone and run the task's scripts: a
		 * script could change the mirrors every other task clones from */
		kr_error_set(err, KR_EXIT_USAGE,
		             "--git-cache-volume needs the init container, where the clone runs apart "
		             "from the task's scripts; drop --single-container or the cache");
		return -1;
	}
	v = kr_settings_get(s, KR_S_K8S_WORK_VOLUME);
	if (!one_of(v, "pvc", "emptydir", NULL)) {
		kr_error_set(err, KR_EXIT_USAGE, "--work-volume must be pvc or emptydir, not '%s'", v);
		return -1;
	}
	v = kr_settings_get(s, KR_S_K8S_PVC_ACCESS_MODE);
	if (!one_of(v, "ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod")) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--pvc-access-mode must be ReadWriteOnce, ReadWriteMany or "
		             "ReadWriteOncePod, not '%s'",
		             v);
		return -1;
	}
	v = kr_settings_get(s, KR_S_K8S_IMAGE_PULL_POLICY);
	if (kr_launcher_given(v) && !one_of(v, "Always", "IfNotPresent", "Never")) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--image-pull-policy must be Always, IfNotPresent or Never, not '%s'", v);
		return -1;
	}
	v = kr_settings_get(s, KR_S_K8S_OBJECTS);
	if (v && !one_of(v, "job", "cleanup", "all")) {
		kr_error_set(err, KR_EXIT_USAGE, "--objects must be job, cleanup or all, not '%s'", v);
		return -1;
	}
	static const kr_setting_id quantities[] = {KR_S_K8S_PVC_SIZE, KR_S_K8S_CPU_REQUEST,
	                                           KR_S_K8S_MEMORY_REQUEST, KR_S_K8S_CPU_LIMIT,
	                                           KR_S_K8S_MEMORY_LIMIT};
	for (size_t i = 0; i < sizeof(quantities) / sizeof(quantities[0]); i++) {
		v = kr_settings_get(s, quantities[i]);
		if (kr_launcher_given(v) && !kr_k8s_is_quantity(v)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s '%s' is not a Kubernetes quantity (e.g. 500m, 1.5, 256Mi, 2Gi)",
			             kr_launcher_setting_rows[quantities[i] - KR_S_CORE_COUNT].flag, v);
			return -1;
		}
	}
	v = kr_settings_get(s, KR_S_K8S_STORAGE_CLASS);
	if (kr_launcher_given(v) && !kr_k8s_is_dns_subdomain(v)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--storage-class '%s' is not a storage class name (DNS-1123: lowercase "
		             "letters, digits, '-' and '.')",
		             v);
		return -1;
	}
	if (!kr_launcher_given(kr_settings_get(s, KR_S_K8S_PVC_SIZE))) {
		kr_error_set(err, KR_EXIT_USAGE, "--pvc-size must be given (e.g. 1Gi)");
		return -1;
	}
	for (size_t i = 0; i < kr_settings_list_count(s, KR_S_K8S_NODE_SELECTOR); i++) {
		const char *e = kr_settings_list_item(s, KR_S_K8S_NODE_SELECTOR, i);
		const char *eq = strchr(e, '=');
		if (!eq || !kr_k8s_is_label_part(e, (size_t)(eq - e), 1) ||
		    !kr_k8s_is_label_part(eq + 1, strlen(eq + 1), 0)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "node selector '%s' must be KEY=VALUE with a valid label key and value",
			             e);
			return -1;
		}
	}
	for (size_t i = 0; i < kr_settings_list_count(s, KR_S_K8S_TOLERATIONS); i++) {
		const char *e = kr_settings_list_item(s, KR_S_K8S_TOLERATIONS, i);
		if (kr_k8s_toleration(e, NULL)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "toleration '%s' must be KEY[=VALUE][:EFFECT], EFFECT one of "
			             "NoSchedule, PreferNoSchedule, NoExecute",
			             e);
			return -1;
		}
	}
	return 0;
}
