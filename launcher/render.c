/* render.c - see render.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "log.h"
#include "render.h"

#define WORK_MOUNT "/work"
#define VOLUME "work"
#define TOKEN_SECRET "keruta-api-token"
#define TOKEN_VOLUME "api-token"
#define TOKEN_DIR "/var/run/secrets/keruta"
#define TOKEN_FILE TOKEN_DIR "/token"
#define NAME_MAX_LEN 63

/* ------------------------------------------------------------ strings */

/* Decode one UTF-8 sequence; its length, or 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t left, unsigned *cp)
{
	unsigned c = p[0];
	size_t n;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, c &= 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

json_object *kr_json_str(const char *s)
{
	if (!s)
		s = "";
	size_t len = strlen(s);
	kr_buf b = {0};
	for (size_t i = 0; i < len;) {
		unsigned cp;
		size_t n = utf8_seq((const unsigned char *)s + i, len - i, &cp);
		if (n) {
			kr_buf_add(&b, s + i, n);
			i += n;
		} else {
			kr_buf_adds(&b, "\xef\xbf\xbd");
			i++;
		}
	}
	json_object *o = json_object_new_string_len(b.data ? b.data : "", (int)b.len);
	kr_buf_free(&b);
	return o;
}

/* An env value, cut (on a character boundary) when it is huge. */
static json_object *env_str(const char *s)
{
	size_t len = strlen(s);
	if (len <= KR_RENDER_MAX_ENV)
		return kr_json_str(s);
	size_t cut = KR_RENDER_MAX_ENV;
	while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	char *t = kr_asprintf("%.*s\n[... cut by keruta-agent: %zu bytes in all]", (int)cut, s, len);
	json_object *o = kr_json_str(t);
	free(t);
	return o;
}

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

/* -------------------------------------------------------------- tasks */

static int is_quantity(const char *q);

/* A DNS-1123 subdomain: what names a PVC or a storage class. */
static int is_dns_subdomain(const char *v)
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

static const struct {
	const char *field, *want;
} pvc_defs[KR_PVC_FIELDS] = {
        [KR_PVC_SIZE] = {"pvcStorageSize", "a Kubernetes quantity such as 1Gi, 500Mi or 20G"},
        [KR_PVC_ACCESS_MODE] = {"pvcAccessMode",
                                "ReadWriteOnce, ReadWriteMany or ReadWriteOncePod"},
        [KR_PVC_STORAGE_CLASS] = {"pvcStorageClass",
                                  "a storage class name (DNS-1123: lowercase letters, digits, "
                                  "'-' and '.')"},
        [KR_PVC_NAME] = {"pvcName", "the name of an existing PersistentVolumeClaim (DNS-1123: "
                                    "lowercase letters, digits, '-' and '.')"},
};

static int pvc_valid(int i, const char *v)
{
	switch (i) {
	case KR_PVC_SIZE: return is_quantity(v) && v[0] != '-';
	case KR_PVC_ACCESS_MODE:
		return !strcmp(v, "ReadWriteOnce") || !strcmp(v, "ReadWriteMany") ||
		       !strcmp(v, "ReadWriteOncePod");
	default: return is_dns_subdomain(v);
	}
}

/*
 * The volume fields of a record (the task's, then its repository's): the
 * first record that sets a field wins.  A child task mounts its parent's
 * claim, so its own task-level fields say nothing about that volume: they
 * are ignored (noted in t->ignored for the caller to say), and only its repository's (shared with the parent)
 * count.
 */
static int pvc_fields(kr_ltask *t, const kr_node *rec, const char *name, const char *where,
                      kr_error *err)
{
	int is_task = strcmp(where, "the task") == 0;
	kr_buf ignored = {0};
	for (int i = 0; i < KR_PVC_FIELDS; i++) {
		const char *field = pvc_defs[i].field;
		const kr_node *n = kr_node_get(rec, field);
		if (!n || kr_node_is_null(n) || t->pvc[i])
			continue;
		if (is_task && kr_ltask_parent(t)) {
			kr_buf_addf(&ignored, "%s%s", ignored.len ? ", " : "", field);
			continue;
		}
		if (n->type != KR_NODE_SCALAR || strlen(n->value) != n->value_len ||
		    !pvc_valid(i, n->value)) {
			/* the task's id first: a file name or a repository says little */
			kr_error_set(err, KR_EXIT_TASK_FAILED,
			             "task %s (%s): field '%s' of %s is '%s', not %s; fix the record or "
			             "remove the field (the launcher's setting then applies)",
			             kr_ltask_id(t), name, field, where,
			             n->type == KR_NODE_SCALAR ? n->value : "not a string", pvc_defs[i].want);
			kr_buf_free(&ignored);
			return -1;
		}
		t->pvc[i] = kr_strdup(n->value);
	}
	if (ignored.len)
		t->ignored = ignored.data; /* t owns it now */
	else
		kr_buf_free(&ignored);
	return 0;
}

void kr_ltask_warn_ignored(const kr_ltask *t)
{
	if (t->ignored)
		kr_log(KR_LOG_WARN, NULL,
		       "task %s mounts the volume of its parent task %s: its own %s %s ignored",
		       kr_ltask_id(t), kr_ltask_parent(t), t->ignored,
		       strchr(t->ignored, ',') ? "are" : "is");
}

int kr_ltask_load(kr_ltask *t, const kr_node *record, const char *name, kr_error *err)
{
	memset(t, 0, sizeof(*t));
	t->task = kr_task_new();
	if (kr_task_fill_from_node(t->task, record, name, err))
		return -1;
	const kr_node *img = kr_node_get(record, "image");
	if (img && !kr_node_is_null(img)) {
		if (img->type != KR_NODE_SCALAR || !*img->value) {
			kr_error_set(err, KR_EXIT_TASK_FAILED, "%s: field 'image' must be a string", name);
			return -1;
		}
		t->image = kr_strdup(img->value);
	}
	const kr_node *res = kr_node_get(record, "resources");
	if (res && !kr_node_is_null(res)) {
		if (res->type != KR_NODE_MAP)
			goto bad;
		t->resources = json_object_new_object();
		for (size_t i = 0; i < res->n; i++) {
			const char *k = res->keys[i]->value;
			const kr_node *m = res->items[i];
			if ((strcmp(k, "requests") && strcmp(k, "limits")) || m->type != KR_NODE_MAP)
				goto bad;
			json_object *o = json_object_new_object();
			json_object_object_add(t->resources, k, o);
			for (size_t j = 0; j < m->n; j++) {
				if (m->items[j]->type != KR_NODE_SCALAR)
					goto bad;
				json_object_object_add(o, m->keys[j]->value, kr_json_str(m->items[j]->value));
			}
		}
	}
	if (pvc_fields(t, record, name, "the task", err))
		return -1;
	const kr_node *repo = kr_node_get(record, "repository");
	if (repo && repo->type == KR_NODE_MAP && kr_ltask_load_repository(t, repo, name, err))
		return -1;
	return 0;
bad:
	kr_error_set(err, KR_EXIT_TASK_FAILED,
	             "%s: field 'resources' must be {requests: {cpu: Q, memory: Q}, limits: {...}}",
	             name);
	return -1;
}

int kr_ltask_load_repository(kr_ltask *t, const kr_node *repo, const char *name, kr_error *err)
{
	return pvc_fields(t, repo, name, "its repository record", err);
}

void kr_ltask_free(kr_ltask *t)
{
	kr_task_free(t->task);
	free(t->image);
	json_object_put(t->resources);
	for (size_t i = 0; i < KR_PVC_FIELDS; i++)
		free(t->pvc[i]);
	free(t->ignored);
	memset(t, 0, sizeof(*t));
}

const char *kr_ltask_pvc_size(const kr_settings *s, const kr_ltask *t)
{
	return t->pvc[KR_PVC_SIZE] ? t->pvc[KR_PVC_SIZE] : kr_settings_get(s, KR_S_K8S_PVC_SIZE);
}

const char *kr_ltask_pvc_access_mode(const kr_settings *s, const kr_ltask *t)
{
	return t->pvc[KR_PVC_ACCESS_MODE] ? t->pvc[KR_PVC_ACCESS_MODE]
	                                  : kr_settings_get(s, KR_S_K8S_PVC_ACCESS_MODE);
}

const char *kr_ltask_pvc_storage_class(const kr_settings *s, const kr_ltask *t)
{
	return t->pvc[KR_PVC_STORAGE_CLASS] ? t->pvc[KR_PVC_STORAGE_CLASS]
	                                    : kr_settings_get(s, KR_S_K8S_STORAGE_CLASS);
}

const char *kr_ltask_existing_claim(const kr_ltask *t)
{
	return t->pvc[KR_PVC_NAME];
}

int kr_ltask_rwo(const kr_settings *s, const kr_ltask *t)
{
	return strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") == 0 &&
	       strcmp(kr_ltask_pvc_access_mode(s, t), "ReadWriteMany") != 0;
}

const char *kr_ltask_id(const kr_ltask *t)
{
	return kr_task_get(t->task, KR_TASK_ID);
}

const char *kr_ltask_parent(const kr_ltask *t)
{
	const char *p = kr_task_get(t->task, KR_TASK_PARENT_ID);
	return p && *p ? p : NULL;
}

/* ----------------------------------------------------------- settings */

/* A Kubernetes resource quantity: 100m, 1.5, 2Gi, 1e3. */
static int is_quantity(const char *q)
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

static int set(const char *v)
{
	return v && *v && strcmp(v, "none") != 0;
}

static int one_of(const char *v, const char *a, const char *b, const char *c)
{
	return v && (!strcmp(v, a) || !strcmp(v, b) || (c && !strcmp(v, c)));
}

/* A label key (prefix/name) or value, loosely: what the API accepts. */
static int is_label_part(const char *s, size_t n, int key)
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

/* "key[=value][:Effect]" as in kubectl taint. */
static int parse_toleration(const char *t, json_object **out)
{
	const char *colon = strrchr(t, ':');
	const char *eq = strchr(t, '=');
	if (eq && colon && eq > colon)
		eq = NULL;
	const char *kend = eq ? eq : colon ? colon : t + strlen(t);
	if (!is_label_part(t, (size_t)(kend - t), 1))
		return -1;
	const char *effect = colon ? colon + 1 : NULL;
	if (effect && !one_of(effect, "NoSchedule", "PreferNoSchedule", "NoExecute"))
		return -1;
	const char *vstart = eq ? eq + 1 : NULL;
	size_t vlen = vstart ? (size_t)((colon ? colon : t + strlen(t)) - vstart) : 0;
	if (vstart && !is_label_part(vstart, vlen, 0))
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

/* ---- the repository cache volume (--git-cache-volume) ---- */

#define GIT_CACHE_VOLUME "git-cache"
#define GIT_CACHE_MOUNT "/var/cache/keruta-git"

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
	const char *why = set(v) ? git_cache_volume_bad(v) : NULL;
	if (why) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--git-cache-volume must be hostPath:/DIR or a ReadWriteMany claim's "
		             "name, not '%s': %s",
		             v, why);
		return -1;
	}
	if (set(v) && kr_settings_bool(s, KR_S_K8S_SINGLE_CONTAINER)) {
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
	if (set(v) && !one_of(v, "Always", "IfNotPresent", "Never")) {
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
		if (set(v) && !is_quantity(v)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s '%s' is not a Kubernetes quantity (e.g. 500m, 1.5, 256Mi, 2Gi)",
			             kr_setting_def_get(quantities[i])->flag, v);
			return -1;
		}
	}
	v = kr_settings_get(s, KR_S_K8S_STORAGE_CLASS);
	if (set(v) && !is_dns_subdomain(v)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "--storage-class '%s' is not a storage class name (DNS-1123: lowercase "
		             "letters, digits, '-' and '.')",
		             v);
		return -1;
	}
	if (!set(kr_settings_get(s, KR_S_K8S_PVC_SIZE))) {
		kr_error_set(err, KR_EXIT_USAGE, "--pvc-size must be given (e.g. 1Gi)");
		return -1;
	}
	for (size_t i = 0; i < kr_settings_list_count(s, KR_S_K8S_NODE_SELECTOR); i++) {
		const char *e = kr_settings_list_item(s, KR_S_K8S_NODE_SELECTOR, i);
		const char *eq = strchr(e, '=');
		if (!eq || !is_label_part(e, (size_t)(eq - e), 1) ||
		    !is_label_part(eq + 1, strlen(eq + 1), 0)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "node selector '%s' must be KEY=VALUE with a valid label key and value",
			             e);
			return -1;
		}
	}
	for (size_t i = 0; i < kr_settings_list_count(s, KR_S_K8S_TOLERATIONS); i++) {
		const char *e = kr_settings_list_item(s, KR_S_K8S_TOLERATIONS, i);
		if (parse_toleration(e, NULL)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "toleration '%s' must be KEY[=VALUE][:EFFECT], EFFECT one of "
			             "NoSchedule, PreferNoSchedule, NoExecute",
			             e);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ objects */

static json_object *str(const char *s)
{
	return json_object_new_string(s);
}

static void add(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static json_object *metadata(const kr_settings *s, const char *name, const kr_ltask *t,
                             const char *role)
{
	json_object *m = json_object_new_object();
	const char *id = kr_ltask_id(t);
	add(m, "name", str(name));
	const char *ns = kr_settings_get(s, KR_S_K8S_NAMESPACE);
	if (set(ns))
		add(m, "namespace", kr_json_str(ns));
	json_object *labels = json_object_new_object();
	add(labels, "app", str("keruta"));
	char *lv = kr_k8s_label_value(id);
	add(labels, "task-id", str(lv));
	free(lv);
	if (role)
		add(labels, "keruta.io/role", str(role));
	add(labels, "app.kubernetes.io/managed-by", str("keruta-agent"));
	add(m, "labels", labels);
	json_object *ann = json_object_new_object();
	add(ann, "keruta.io/task-id", kr_json_str(id));
	if (kr_ltask_parent(t))
		add(ann, "keruta.io/parent-task-id", kr_json_str(kr_ltask_parent(t)));
	add(m, "annotations", ann);
	return m;
}

char *kr_render_pvc_name(const kr_ltask *t)
{
	if (kr_ltask_existing_claim(t))
		return kr_strdup(kr_ltask_existing_claim(t));
	const char *parent = kr_ltask_parent(t);
	return kr_k8s_name("git-repo-pvc-", parent ? parent : kr_ltask_id(t));
}

json_object *kr_render_pvc(const kr_settings *s, const kr_ltask *t)
{
	if (strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") != 0 || kr_ltask_parent(t) ||
	    kr_ltask_existing_claim(t))
		return NULL;
	json_object *o = json_object_new_object();
	add(o, "apiVersion", str("v1"));
	add(o, "kind", str("PersistentVolumeClaim"));
	char *name = kr_render_pvc_name(t);
	add(o, "metadata", metadata(s, name, t, "work"));
	free(name);
	json_object *spec = json_object_new_object();
	json_object *modes = json_object_new_array();
	json_object_array_add(modes, kr_json_str(kr_ltask_pvc_access_mode(s, t)));
	add(spec, "accessModes", modes);
	json_object *res = json_object_new_object(), *req = json_object_new_object();
	add(req, "storage", kr_json_str(kr_ltask_pvc_size(s, t)));
	add(res, "requests", req);
	add(spec, "resources", res);
	const char *sc = kr_ltask_pvc_storage_class(s, t);
	if (set(sc))
		add(spec, "storageClassName", kr_json_str(sc));
	add(o, "spec", spec);
	return o;
}

static void env_value(json_object *env, const char *name, const char *value)
{
	if (!value)
		return;
	json_object *e = json_object_new_object();
	add(e, "name", str(name));
	add(e, "value", env_str(value));
	json_object_array_add(env, e);
}

static json_object *task_env(const kr_settings *s, const kr_ltask *t, const char *source_pod)
{
	json_object *env = json_object_new_array();
	static const struct {
		const char *env, *key;
	} fields[] = {
#define KR_ENV_FIELD(name, key) {name, key},
	        KR_TASK_ENV_FIELDS(KR_ENV_FIELD)
#undef KR_ENV_FIELD
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		env_value(env, fields[i].env, kr_task_get(t->task, fields[i].key));
	size_t nd = kr_task_list_count(t->task, KR_TASK_DOCUMENT_IDS);
	if (nd) {
		kr_buf b = {0};
		for (size_t i = 0; i < nd; i++) {
			if (i)
				kr_buf_addc(&b, ',');
			kr_buf_adds(&b, kr_task_list_item(t->task, KR_TASK_DOCUMENT_IDS, i));
		}
		env_value(env, "KERUTA_DOCUMENT_ID", b.data);
		kr_buf_free(&b);
	}
	const char *url = kr_settings_get(s, KR_S_API_URL);
	env_value(env, "KERUTA_API_URL", url ? url : "http://keruta-api:8080");
	env_value(env, "KERUTA_API_ENDPOINT", url ? url : "http://keruta-api:8080");
	env_value(env, "KERUTA_WORK_DIR", WORK_MOUNT);
	/* the pod's own name: the run records it on the work volume, the
	 * cleanup Job checks it against KERUTA_SOURCE_POD */
	json_object *pn = json_object_new_object(), *pfrom = json_object_new_object(),
	            *fref = json_object_new_object();
	add(fref, "fieldPath", str("metadata.name"));
	add(pfrom, "fieldRef", fref);
	add(pn, "name", str("KERUTA_POD_NAME"));
	add(pn, "valueFrom", pfrom);
	json_object_array_add(env, pn);
	if (source_pod)
		env_value(env, "KERUTA_SOURCE_POD", source_pod);
	return env;
}

static json_object *resources(const kr_settings *s, const kr_ltask *t)
{
	static const struct {
		const char *group, *name;
		kr_setting_id id;
	} defs[] = {{"requests", "cpu", KR_S_K8S_CPU_REQUEST},
	            {"requests", "memory", KR_S_K8S_MEMORY_REQUEST},
	            {"limits", "cpu", KR_S_K8S_CPU_LIMIT},
	            {"limits", "memory", KR_S_K8S_MEMORY_LIMIT}};
	json_object *r = json_object_new_object();
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
		const char *v = kr_settings_get(s, defs[i].id);
		json_object *tg, *tv;
		if (t->resources && json_object_object_get_ex(t->resources, defs[i].group, &tg) &&
		    json_object_object_get_ex(tg, defs[i].name, &tv))
			v = json_object_get_string(tv);
		if (!set(v))
			continue;
		json_object *g;
		if (!json_object_object_get_ex(r, defs[i].group, &g)) {
			g = json_object_new_object();
			add(r, defs[i].group, g);
		}
		add(g, defs[i].name, kr_json_str(v));
	}
	return r;
}

static json_object *container(const kr_settings *s, const kr_ltask *t, const char *name,
                              const char *const *args, json_object *env)
{
	json_object *c = json_object_new_object();
	add(c, "name", str(name));
	add(c, "image", kr_json_str(t->image ? t->image : kr_settings_get(s, KR_S_K8S_IMAGE)));
	const char *pp = kr_settings_get(s, KR_S_K8S_IMAGE_PULL_POLICY);
	if (set(pp))
		add(c, "imagePullPolicy", str(pp));
	add(c, "workingDir", str(WORK_MOUNT));
	json_object *cmd = json_object_new_array();
	json_object_array_add(cmd, kr_json_str(kr_settings_get(s, KR_S_K8S_AGENT_COMMAND)));
	for (size_t i = 0; args[i]; i++)
		json_object_array_add(cmd, str(args[i]));
	/* a file, not an env var: a child process inherits the environment */
	json_object_array_add(cmd, str("--api-token-file"));
	json_object_array_add(cmd, str(TOKEN_FILE));
	add(c, "command", cmd);
	add(c, "env", env);
	json_object *res = resources(s, t);
	if (json_object_object_length(res))
		add(c, "resources", res);
	else
		json_object_put(res);
	json_object *mounts = json_object_new_array(), *m = json_object_new_object();
	add(m, "name", str(VOLUME));
	add(m, "mountPath", str(WORK_MOUNT));
	json_object_array_add(mounts, m);
	m = json_object_new_object();
	add(m, "name", str(TOKEN_VOLUME));
	add(m, "mountPath", str(TOKEN_DIR));
	add(m, "readOnly", json_object_new_boolean(1));
	json_object_array_add(mounts, m);
	add(c, "volumeMounts", mounts);
	/* the agent writes its outcome there; the launcher reads it back */
	add(c, "terminationMessagePath", str("/dev/termination-log"));
	add(c, "terminationMessagePolicy", str("FallbackToLogsOnError"));
	return c;
}

static json_object *pod_spec(const kr_settings *s, const kr_ltask *t, json_object *containers,
                             json_object *init, const char *node)
{
	json_object *spec = json_object_new_object();
	add(spec, "restartPolicy", str("Never"));
	const char *sa = kr_settings_get(s, KR_S_K8S_SERVICE_ACCOUNT);
	if (set(sa))
		add(spec, "serviceAccountName", kr_json_str(sa));
	else /* the agent never talks to Kubernetes: no token in its pod */
		add(spec, "automountServiceAccountToken", json_object_new_boolean(0));
	size_t nsel = kr_settings_list_count(s, KR_S_K8S_NODE_SELECTOR);
	if (nsel) {
		json_object *sel = json_object_new_object();
		for (size_t i = 0; i < nsel; i++) {
			const char *e = kr_settings_list_item(s, KR_S_K8S_NODE_SELECTOR, i);
			const char *eq = strchr(e, '=');
			char *k = kr_strndup(e, (size_t)(eq - e));
			add(sel, k, kr_json_str(eq + 1));
			free(k);
		}
		add(spec, "nodeSelector", sel);
	}
	size_t ntol = kr_settings_list_count(s, KR_S_K8S_TOLERATIONS);
	if (ntol) {
		json_object *tols = json_object_new_array();
		for (size_t i = 0; i < ntol; i++) {
			json_object *o = NULL;
			if (parse_toleration(kr_settings_list_item(s, KR_S_K8S_TOLERATIONS, i), &o) == 0)
				json_object_array_add(tols, o);
		}
		add(spec, "tolerations", tols);
	}
	if (node && *node) {
		/* a ReadWriteOnce volume attaches to one node: go where it is */
		json_object *expr = json_object_new_object(), *vals = json_object_new_array();
		add(expr, "key", str("kubernetes.io/hostname"));
		add(expr, "operator", str("In"));
		json_object_array_add(vals, kr_json_str(node));
		add(expr, "values", vals);
		json_object *exprs = json_object_new_array(), *term = json_object_new_object(),
		            *terms = json_object_new_array(), *req = json_object_new_object(),
		            *na = json_object_new_object(), *aff = json_object_new_object();
		json_object_array_add(exprs, expr);
		add(term, "matchExpressions", exprs);
		json_object_array_add(terms, term);
		add(req, "nodeSelectorTerms", terms);
		add(na, "requiredDuringSchedulingIgnoredDuringExecution", req);
		add(aff, "nodeAffinity", na);
		add(spec, "affinity", aff);
	}
	if (init)
		add(spec, "initContainers", init);
	add(spec, "containers", containers);
	json_object *vols = json_object_new_array(), *v = json_object_new_object();
	add(v, "name", str(VOLUME));
	if (strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") == 0) {
		json_object *pvc = json_object_new_object();
		char *claim = kr_render_pvc_name(t);
		add(pvc, "claimName", str(claim));
		free(claim);
		add(v, "persistentVolumeClaim", pvc);
	} else {
		add(v, "emptyDir", json_object_new_object());
	}
	json_object_array_add(vols, v);
	/* readable by the agent (root, or the pod's fsGroup), by no other user */
	json_object *tv = json_object_new_object(), *sec = json_object_new_object(),
	            *items = json_object_new_array(), *item = json_object_new_object();
	add(tv, "name", str(TOKEN_VOLUME));
	add(sec, "secretName", str(TOKEN_SECRET));
	add(item, "key", str("token"));
	add(item, "path", str("token"));
	json_object_array_add(items, item);
	add(sec, "items", items);
	add(sec, "defaultMode", json_object_new_int(0440));
	add(tv, "secret", sec);
	json_object_array_add(vols, tv);
	add(spec, "volumes", vols);
	return spec;
}

static json_object *job(const kr_settings *s, const kr_ltask *t, const char *name,
                        const char *role, json_object *podspec, int64_t backoff)
{
	json_object *o = json_object_new_object();
	add(o, "apiVersion", str("batch/v1"));
	add(o, "kind", str("Job"));
	add(o, "metadata", metadata(s, name, t, role));
	json_object *spec = json_object_new_object();
	add(spec, "backoffLimit", json_object_new_int64(backoff));
	uint64_t ttl = kr_settings_u64(s, KR_S_K8S_TTL_AFTER_FINISHED) / 1000;
	add(spec, "ttlSecondsAfterFinished", json_object_new_int64((int64_t)(ttl > INT32_MAX ? INT32_MAX : ttl)));
	uint64_t dl = kr_settings_u64(s, KR_S_K8S_ACTIVE_DEADLINE) / 1000;
	if (dl)
		add(spec, "activeDeadlineSeconds", json_object_new_int64((int64_t)dl));
	json_object *tmpl = json_object_new_object();
	json_object *tm = metadata(s, name, t, role);
	json_object_object_del(tm, "name");
	json_object_object_del(tm, "namespace");
	add(tmpl, "metadata", tm);
	add(tmpl, "spec", podspec);
	add(spec, "template", tmpl);
	add(o, "spec", spec);
	return o;
}

/* Only the container that clones mounts the cache (writable: the agent
 * updates its mirrors there) and is told where it is; the task's own
 * containers never see it.  The clone takes no alternates from it, so
 * nothing on the work volume depends on the cache's path. */
static void git_cache_mount(const kr_settings *s, json_object *spec, json_object *c)
{
	const char *v = kr_settings_get(s, KR_S_K8S_GIT_CACHE_VOLUME);
	if (!set(v))
		return;
	json_object *vol = json_object_new_object(), *src = json_object_new_object(), *a;
	add(vol, "name", str(GIT_CACHE_VOLUME));
	if (strncmp(v, "hostPath:", 9) == 0) {
		add(src, "path", kr_json_str(v + 9));
		add(src, "type", str("DirectoryOrCreate"));
		add(vol, "hostPath", src);
	} else {
		add(src, "claimName", kr_json_str(v));
		add(vol, "persistentVolumeClaim", src);
	}
	if (json_object_object_get_ex(spec, "volumes", &a))
		json_object_array_add(a, vol);
	json_object *m = json_object_new_object();
	add(m, "name", str(GIT_CACHE_VOLUME));
	add(m, "mountPath", str(GIT_CACHE_MOUNT));
	if (json_object_object_get_ex(c, "volumeMounts", &a))
		json_object_array_add(a, m);
	json_object *e = json_object_new_object();
	add(e, "name", str("KERUTA_GIT_CACHE"));
	add(e, "value", str(GIT_CACHE_MOUNT));
	if (json_object_object_get_ex(c, "env", &a))
		json_object_array_add(a, e);
}

json_object *kr_render_job(const kr_settings *s, const kr_ltask *t, const char *node,
                           kr_error *err)
{
	(void)err;
	json_object *containers = json_object_new_array(), *init = NULL;
	if (kr_settings_bool(s, KR_S_K8S_SINGLE_CONTAINER)) {
		static const char *const exec_args[] = {"execute", "--task-id", "$(KERUTA_TASK_ID)",
		                                        "--api-url", "$(KERUTA_API_URL)", NULL};
		json_object_array_add(containers,
		                      container(s, t, "main", exec_args, task_env(s, t, NULL)));
	} else {
		/* a task without documents has no KERUTA_DOCUMENT_ID: the agent
		 * then reads the unexpanded $(KERUTA_DOCUMENT_ID) as not given */
		static const char *const init_args[] = {
		        "init", "--repository-id", "$(KERUTA_REPOSITORY_ID)", "--document-id",
		        "$(KERUTA_DOCUMENT_ID)", "--api-url", "$(KERUTA_API_ENDPOINT)", "--work-dir",
		        WORK_MOUNT, NULL};
		/* the cleanup Job uploads last and sends the final status */
		static const char *const run_args[] = {"run", "--task-id", "$(KERUTA_TASK_ID)",
		                                       "--api-url", "$(KERUTA_API_ENDPOINT)",
		                                       "--final-status", "no", NULL};
		/* an emptyDir dies with the pod: no cleanup Job can read it, so
		 * the main container is the one that collects and reports last */
		static const char *const final_args[] = {"run", "--task-id", "$(KERUTA_TASK_ID)",
		                                         "--api-url", "$(KERUTA_API_ENDPOINT)",
		                                         "--final-status", "yes", NULL};
		init = json_object_new_array();
		json_object_array_add(init, container(s, t, "keruta-agent-init", init_args,
		                                      task_env(s, t, NULL)));
		json_object_array_add(containers, container(s, t, "main",
		                                            kr_render_has_cleanup(s) ? run_args : final_args,
		                                            task_env(s, t, NULL)));
	}
	char *name = kr_render_job_name(kr_ltask_id(t));
	/* only a volume that may be attached already (the parent's, or an
	 * existing claim) needs the pod to go where it is */
	if (!(kr_ltask_parent(t) || kr_ltask_existing_claim(t)) || !kr_ltask_rwo(s, t))
		node = NULL;
	json_object *spec = pod_spec(s, t, containers, init, node);
	if (init) /* kr_render_check refuses the cache with a single container */
		git_cache_mount(s, spec, json_object_array_get_idx(init, 0));
	json_object *o = job(s, t, name, "main", spec,
	                     (int64_t)kr_settings_u64(s, KR_S_K8S_BACKOFF_LIMIT));
	free(name);
	return o;
}

int kr_render_has_cleanup(const kr_settings *s)
{
	return strcmp(kr_settings_get(s, KR_S_K8S_WORK_VOLUME), "pvc") == 0;
}

json_object *kr_render_cleanup_job(const kr_settings *s, const kr_ltask *t,
                                   const char *source_pod, const char *node, kr_error *err)
{
	(void)err;
	static const char *const args[] = {"cleanup", "--task-id", "$(KERUTA_TASK_ID)", "--api-url",
	                                   "$(KERUTA_API_URL)", "--source-pod", "$(KERUTA_SOURCE_POD)",
	                                   NULL};
	json_object *containers = json_object_new_array();
	json_object_array_add(containers,
	                      container(s, t, "cleanup-container", args,
	                                task_env(s, t, source_pod ? source_pod : "")));
	/* it mounts the volume the task's pod used: go to that pod's node */
	if (!kr_ltask_rwo(s, t))
		node = NULL;
	char *name = kr_render_cleanup_name(kr_ltask_id(t));
	json_object *o = job(s, t, name, "cleanup", pod_spec(s, t, containers, NULL, node), 2);
	free(name);
	return o;
}

/* --------------------------------------------------------------- YAML */

static void indent(kr_buf *b, int n)
{
	for (int i = 0; i < n; i++)
		kr_buf_addc(b, ' ');
}

/* Always double-quoted: no YAML reading of user text (null, yes, *x,
 * "- ", "#") can ever apply. */
static void yaml_string(kr_buf *b, const char *s, size_t len)
{
	kr_buf_addc(b, '"');
	for (size_t i = 0; i < len;) {
		unsigned cp;
		size_t n = utf8_seq((const unsigned char *)s + i, len - i, &cp);
		if (!n) {
			kr_buf_adds(b, "\\uFFFD");
			i++;
			continue;
		}
		switch (cp) {
		case '"': kr_buf_adds(b, "\\\""); break;
		case '\\': kr_buf_adds(b, "\\\\"); break;
		case '\n': kr_buf_adds(b, "\\n"); break;
		case '\t': kr_buf_adds(b, "\\t"); break;
		case '\r': kr_buf_adds(b, "\\r"); break;
		default:
			if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0x2028 ||
			    cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
				kr_buf_addf(b, "\\u%04X", cp);
			else
				kr_buf_add(b, s + i, n);
		}
		i += n;
	}
	kr_buf_addc(b, '"');
}

static void yaml_key(kr_buf *b, const char *k)
{
	static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false",
	                                    "null", "~", ""};
	int plain = isalpha((unsigned char)k[0]);
	for (const char *p = k; plain && *p; p++)
		plain = isalnum((unsigned char)*p) || strchr("-_./", *p);
	for (size_t i = 0; plain && i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(k, words[i]) == 0)
			plain = 0;
	if (plain)
		kr_buf_adds(b, k);
	else
		yaml_string(b, k, strlen(k));
}

static int is_scalar(json_object *v)
{
	return !json_object_is_type(v, json_type_object) &&
	       !json_object_is_type(v, json_type_array);
}

static void yaml_scalar(kr_buf *b, json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: kr_buf_adds(b, "null"); break;
	case json_type_boolean: kr_buf_adds(b, json_object_get_boolean(v) ? "true" : "false"); break;
	case json_type_int: kr_buf_addf(b, "%lld", (long long)json_object_get_int64(v)); break;
	case json_type_double: kr_buf_addf(b, "%.17g", json_object_get_double(v)); break;
	default: yaml_string(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
	}
}

static int is_empty(json_object *v)
{
	if (json_object_is_type(v, json_type_object))
		return json_object_object_length(v) == 0;
	if (json_object_is_type(v, json_type_array))
		return json_object_array_length(v) == 0;
	return 0;
}

static void emit_seq(kr_buf *b, json_object *a, int ind);

/* first_inline: the first key goes right after a "- ". */
static void emit_map(kr_buf *b, json_object *o, int ind, int first_inline)
{
	int first = 1;
	json_object_object_foreach(o, k, v)
	{
		if (!(first && first_inline))
			indent(b, ind);
		first = 0;
		yaml_key(b, k);
		kr_buf_addc(b, ':');
		if (is_scalar(v)) {
			kr_buf_addc(b, ' ');
			yaml_scalar(b, v);
			kr_buf_addc(b, '\n');
		} else if (is_empty(v)) {
			kr_buf_adds(b, json_object_is_type(v, json_type_object) ? " {}\n" : " []\n");
		} else if (json_object_is_type(v, json_type_object)) {
			kr_buf_addc(b, '\n');
			emit_map(b, v, ind + 2, 0);
		} else {
			kr_buf_addc(b, '\n');
			emit_seq(b, v, ind + 2);
		}
	}
}

static void emit_seq(kr_buf *b, json_object *a, int ind)
{
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *v = json_object_array_get_idx(a, i);
		indent(b, ind);
		kr_buf_adds(b, "- ");
		if (is_scalar(v)) {
			yaml_scalar(b, v);
			kr_buf_addc(b, '\n');
		} else if (is_empty(v)) {
			kr_buf_adds(b, json_object_is_type(v, json_type_object) ? "{}\n" : "[]\n");
		} else if (json_object_is_type(v, json_type_object)) {
			emit_map(b, v, ind + 2, 1);
		} else {
			kr_buf_addc(b, '\n');
			emit_seq(b, v, ind + 2);
		}
	}
}

void kr_yaml_emit(json_object *o, int separator, kr_buf *out)
{
	if (separator)
		kr_buf_adds(out, "---\n");
	emit_map(out, o, 0, 0);
}
