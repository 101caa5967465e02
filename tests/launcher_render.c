/*
 * launcher_render.c - `keruta-agent render`: every variant is read back by
 * a YAML 1.1 loader, checked for valid names, and kept for
 * tests/launcher_schema.sh, which validates them against the strict
 * Kubernetes v1.32 JSON schemas and kubernetes-models; hostile task
 * ids and texts still give valid manifests whose env values equal the
 * task's text exactly.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launcher_util.h"

static char *dir;

static void setup(void)
{
	dir = kt_tmpdir();
}

static void teardown(void)
{
	kt_rmrf(dir);
	free(dir);
}

TestSuite(render, .init = setup, .fini = teardown, .timeout = 120);

/* JSON string body (no quotes) of s. */
static void json_escape(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		/* what a YAML reader refuses raw (DEL, a BOM inside the text)
		 * or reads as a line break (NEL, U+2028, U+2029) goes in
		 * escaped */
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else if (p[0] == 0xc2 && p[1] == 0x85)
			fprintf(f, "\\u0085"), p += 1;
		else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
			fprintf(f, "\\u%04x", p[2] == 0xa8 ? 0x2028 : 0x2029), p += 2;
		else if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
			fprintf(f, "\\ufeff"), p += 2;
		else
			fputc(*p, f);
	}
}

/* A task file (JSON is YAML) with these fields; NULL fields left out. */
static char *task_file(const char *name, const char *id, const char *title, const char *desc,
                       const char *parent, const char *extra)
{
	char *path = kt_path(dir, name);
	FILE *f = fopen(path, "w");
	fprintf(f, "{\"id\": \"");
	json_escape(f, id);
	fprintf(f, "\", \"priority\": 2, \"status\": \"PENDING\", \"createdAt\": "
	           "\"2026-01-01T00:00:00Z\", \"repositoryId\": \"repo-1\"");
	if (title) {
		fprintf(f, ", \"title\": \"");
		json_escape(f, title);
		fprintf(f, "\"");
	}
	if (desc) {
		fprintf(f, ", \"description\": \"");
		json_escape(f, desc);
		fprintf(f, "\"");
	}
	if (parent) {
		fprintf(f, ", \"parentTaskId\": \"");
		json_escape(f, parent);
		fprintf(f, "\"");
	}
	if (extra)
		fprintf(f, ", %s", extra);
	fprintf(f, "}\n");
	fclose(f);
	return path;
}

/* Render with args into NAME.yaml; return the process result. */
static void render(kt_result *r, const char *name, const char *task, const char *const *more)
{
	const char *args[40] = {"render", "--task-file", task, "--api-url", "http://keruta-api:8080"};
	size_t n = 5;
	for (size_t i = 0; more && more[i]; i++)
		args[n++] = more[i];
	args[n] = NULL;
	cr_assert_eq(kt_agent_run(r, args, NULL, 30), 0);
	char *out = kt_path(dir, name);
	kt_write_file(out, r->out ? r->out : "");
	free(out);
}

static char *json_name(const char *yaml)
{
	size_t n = strlen(yaml);
	char *j = malloc(n + 2);
	memcpy(j, yaml, n - 5);
	strcpy(j + n - 5, ".json");
	return j;
}

/* check_render.py on NAME.yaml -> NAME.json; 0 when it holds. */
static int check(const char *name, const char *expect_json, char **output)
{
	char *yaml = kt_path(dir, name);
	char *json = json_name(yaml);
	char *script = kt_path(kt_srcdir(), "tests/schema/check_render.py");
	char *expect = NULL;
	const char *argv[6] = {"python3", script, yaml, json, NULL, NULL};
	if (expect_json) {
		expect = kt_path(dir, "expect.json");
		kt_write_file(expect, expect_json);
		argv[4] = expect;
	}
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 60), 0);
	int rc = r.status;
	if (rc)
		cr_log_error("%s: %s%s", name, r.out, r.err);
	if (output)
		*output = strdup(r.out ? r.out : "");
	kt_result_free(&r);
	free(yaml);
	free(json);
	free(script);
	free(expect);
	return rc;
}

/* The manifests go to BUILDDIR/tests/launcher_render.manifests/SET/ for
 * tests/launcher_schema.sh, which validates them against the Kubernetes
 * schemas (or says SKIP with its reason when it cannot): a separate test,
 * so a skipped validation is never counted as a pass here. */
static void keep_for_schema(const char *set, const char *const *names)
{
	char *sub = NULL;
	cr_assert(asprintf(&sub, "tests/launcher_render.manifests/%s", set) > 0);
	char *out = kt_path(kt_builddir(), sub);
	kt_rmrf(out);
	const char *mk[] = {"mkdir", "-p", out, NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, mk, NULL, NULL, NULL, 30), 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	for (size_t i = 0; names[i]; i++) {
		char *y = kt_path(dir, names[i]);
		char *j = json_name(y);
		const char *cp[] = {"cp", j, out, NULL};
		cr_assert_eq(kt_run(&r, cp, NULL, NULL, NULL, 30), 0);
		cr_expect_eq(r.status, 0, "%s", r.err);
		kt_result_free(&r);
		free(y);
		free(j);
	}
	free(out);
	free(sub);
}

static json_object *load_json(const char *name)
{
	char *y = kt_path(dir, name);
	char *j = json_name(y);
	json_object *o = json_object_from_file(j);
	free(y);
	free(j);
	cr_assert_not_null(o, "%s: no JSON written", name);
	return o;
}

static json_object *doc_of_kind(json_object *docs, const char *kind)
{
	for (size_t i = 0; i < json_object_array_length(docs); i++)
		if (strcmp(kt_jstr(json_object_array_get_idx(docs, i), "kind"), kind) == 0)
			return json_object_array_get_idx(docs, i);
	return NULL;
}

/* The API token reaches every container as a read-only file from the
 * Secret keruta-api-token (key token), never as an environment variable. */
static void token_as_file(json_object *job, const char *what)
{
	json_object *vols = kt_jpath(job, "spec.template.spec.volumes");
	const char *vname = NULL;
	for (size_t i = 0; vols && i < json_object_array_length(vols); i++) {
		json_object *v = json_object_array_get_idx(vols, i);
		if (kt_jpath(v, "secret") && !strcmp(kt_jstr(v, "secret.secretName"), "keruta-api-token") &&
		    !strcmp(kt_jstr(v, "secret.items[0].key"), "token"))
			vname = kt_jstr(v, "name");
	}
	cr_assert_not_null(vname, "%s: a volume from Secret keruta-api-token", what);
	static const char *const lists[] = {"initContainers", "containers"};
	int seen = 0;
	for (int l = 0; l < 2; l++) {
		char p[64];
		snprintf(p, sizeof(p), "spec.template.spec.%s", lists[l]);
		json_object *cs = kt_jpath(job, p);
		for (size_t i = 0; cs && i < json_object_array_length(cs); i++) {
			json_object *c = json_object_array_get_idx(cs, i);
			const char *cmd = json_object_to_json_string_ext(
			        kt_jpath(c, "command"), JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
			const char *mount = NULL;
			json_object *ms = kt_jpath(c, "volumeMounts");
			for (size_t m = 0; ms && m < json_object_array_length(ms); m++) {
				json_object *mo = json_object_array_get_idx(ms, m);
				if (!strcmp(kt_jstr(mo, "name"), vname) &&
				    json_object_get_boolean(kt_jpath(mo, "readOnly")))
					mount = kt_jstr(mo, "mountPath");
			}
			cr_expect_not_null(mount, "%s: container %s mounts the token read-only", what,
			                   kt_jstr(c, "name"));
			cr_expect(kt_contains(cmd, "\"--api-token-file\""), "%s: %s", what, cmd);
			cr_expect(mount && kt_contains(cmd, mount), "%s: the file is under the mount: %s",
			          what, cmd);
			cr_expect(!kt_contains(json_object_to_json_string(kt_jpath(c, "env")),
			                       "KERUTA_API_TOKEN"),
			          "%s: no token in the environment", what);
			seen++;
		}
	}
	cr_expect_gt(seen, 0);
}

Test(render, every_variant_is_valid_kubernetes)
{
	char *task = task_file("task.json", "task123", "Count lines", "Say \"hi\"", NULL,
	                       "\"documents\": [\"doc-1\", \"doc-2\"]");
	char *child = task_file("child.json", "task124", "Child", NULL, "task123", NULL);
	char *own = task_file("t-own.json", "task125", "Own resources", NULL, NULL,
	                      "\"image\": \"registry.example/agent:v2\", \"resources\": "
	                      "{\"requests\": {\"cpu\": \"2\", \"memory\": \"1Gi\"}, "
	                      "\"limits\": {\"memory\": \"4Gi\"}}");
	static const char *const none[] = {NULL};
	static const char *const emptydir[] = {"--work-volume", "emptydir", "--objects", "all", NULL};
	static const char *const childargs[] = {"--node-name", "node-7", NULL};
	static const char *const cleanup[] = {"--objects", "cleanup", "--source-pod", "keruta-job-task123-abcde", NULL};
	static const char *const single[] = {"--single-container", NULL};
	static const char *const nores[] = {"--cpu-request", "none", "--memory-request", "none",
	                                    "--memory-limit", "none", NULL};
	static const char *const full[] = {"--toleration", "dedicated=keruta:NoSchedule", "--toleration",
	                                   "gpu", "--node-selector", "disktype=ssd", "--service-account",
	                                   "keruta-task", "--storage-class", "fast", "--image-pull-policy",
	                                   "IfNotPresent", "--active-deadline", "2h", "--cpu-limit", "4",
	                                   "--namespace", "keruta", "--objects", "all", NULL};
	struct {
		const char *name, *task;
		const char *const *args;
	} v[] = {{"pvc.yaml", task, none},          {"emptydir.yaml", task, emptydir},
	         {"child.yaml", child, childargs},  {"cleanup.yaml", task, cleanup},
	         {"single.yaml", task, single},     {"noresources.yaml", task, nores},
	         {"full.yaml", own, full}};
	const char *names[16];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		kt_result r;
		render(&r, v[i].name, v[i].task, v[i].args);
		cr_expect_eq(r.status, 0, "%s: render failed: %s", v[i].name, r.err);
		kt_result_free(&r);
		cr_expect_eq(check(v[i].name, NULL, NULL), 0, "%s does not read back cleanly", v[i].name);
		names[n++] = v[i].name;
	}
	names[n] = NULL;
	keep_for_schema("variants", names);

	/* what each variant must hold */
	json_object *d = load_json("pvc.yaml");
	json_object *pvc = doc_of_kind(d, "PersistentVolumeClaim"), *job = doc_of_kind(d, "Job");
	cr_assert(pvc && job);
	cr_expect_str_eq(kt_jstr(pvc, "metadata.name"), "git-repo-pvc-task123");
	cr_expect_str_eq(kt_jstr(pvc, "spec.accessModes[0]"), "ReadWriteOnce");
	cr_expect_str_eq(kt_jstr(pvc, "spec.resources.requests.storage"), "1Gi");
	cr_expect_str_eq(kt_jstr(job, "metadata.name"), "keruta-job-task123");
	cr_expect_str_eq(kt_jstr(job, "metadata.labels.app"), "keruta");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.restartPolicy"), "Never");
	cr_expect_eq(json_object_get_int(kt_jpath(job, "spec.backoffLimit")), 0);
	cr_expect_gt(json_object_get_int(kt_jpath(job, "spec.ttlSecondsAfterFinished")), 3600);
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.initContainers[0].command[1]"), "init");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.initContainers[0].command[4]"), "--document-id");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.initContainers[0].command[5]"),
	                 "$(KERUTA_DOCUMENT_ID)", "seed 004's init command");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].command[1]"), "run");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].volumeMounts[0].mountPath"), "/work");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.initContainers[0].volumeMounts[0].mountPath"), "/work");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[0].persistentVolumeClaim.claimName"),
	                 "git-repo-pvc-task123");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].terminationMessagePolicy"),
	                 "FallbackToLogsOnError");
	json_object *env = kt_jpath(job, "spec.template.spec.containers[0].env");
	int docs = 0;
	for (size_t i = 0; i < json_object_array_length(env); i++) {
		json_object *e = json_object_array_get_idx(env, i);
		if (!strcmp(kt_jstr(e, "name"), "KERUTA_DOCUMENT_ID"))
			docs = !strcmp(kt_jstr(e, "value"), "doc-1,doc-2");
	}
	cr_expect(docs, "KERUTA_DOCUMENT_ID lists the task's documents");
	token_as_file(job, "init and main");
	json_object_put(d);

	d = load_json("emptydir.yaml");
	cr_expect_null(doc_of_kind(d, "PersistentVolumeClaim"), "emptyDir: no PVC");
	cr_expect_eq(json_object_array_length(d), 1, "--objects all, emptyDir: no cleanup Job");
	job = doc_of_kind(d, "Job");
	cr_expect_not_null(kt_jpath(job, "spec.template.spec.volumes[0].emptyDir"));
	cr_expect(kt_contains(json_object_to_json_string(kt_jpath(job, "spec.template.spec.containers[0].command")),
	                      "\"--final-status\", \"yes\""),
	          "emptyDir: the main container is the final reporter");
	json_object_put(d);
	d = load_json("pvc.yaml");
	cr_expect(kt_contains(json_object_to_json_string(kt_jpath(doc_of_kind(d, "Job"),
	                                                          "spec.template.spec.containers[0].command")),
	                      "\"--final-status\", \"no\""),
	          "a PVC: the cleanup Job reports last");
	json_object_put(d);

	d = load_json("child.yaml");
	job = doc_of_kind(d, "Job");
	cr_expect_null(doc_of_kind(d, "PersistentVolumeClaim"), "a child creates no PVC");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[0].persistentVolumeClaim.claimName"),
	                 "git-repo-pvc-task123");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.affinity.nodeAffinity."
	                              "requiredDuringSchedulingIgnoredDuringExecution."
	                              "nodeSelectorTerms[0].matchExpressions[0].values[0]"),
	                 "node-7");
	json_object_put(d);

	d = load_json("cleanup.yaml");
	cr_assert_eq(json_object_array_length(d), 1);
	job = doc_of_kind(d, "Job");
	cr_expect_str_eq(kt_jstr(job, "metadata.name"), "cleanup-job-for-task-task123");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].command[1]"), "cleanup");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[0].persistentVolumeClaim.claimName"),
	                 "git-repo-pvc-task123");
	env = kt_jpath(job, "spec.template.spec.containers[0].env");
	int pod = 0;
	for (size_t i = 0; i < json_object_array_length(env); i++) {
		json_object *e = json_object_array_get_idx(env, i);
		if (!strcmp(kt_jstr(e, "name"), "KERUTA_SOURCE_POD"))
			pod = !strcmp(kt_jstr(e, "value"), "keruta-job-task123-abcde");
	}
	cr_expect(pod, "the cleanup Job gets KERUTA_SOURCE_POD");
	token_as_file(job, "cleanup");
	json_object_put(d);

	d = load_json("single.yaml");
	job = doc_of_kind(d, "Job");
	cr_expect_null(kt_jpath(job, "spec.template.spec.initContainers"));
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].command[1]"), "execute");
	token_as_file(job, "single container");
	json_object_put(d);

	d = load_json("noresources.yaml");
	cr_expect_null(kt_jpath(doc_of_kind(d, "Job"), "spec.template.spec.containers[0].resources"));
	json_object_put(d);

	d = load_json("full.yaml");
	job = doc_of_kind(d, "Job");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].image"), "registry.example/agent:v2");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].resources.requests.cpu"), "2");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].resources.limits.memory"), "4Gi");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.containers[0].resources.limits.cpu"), "4");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.tolerations[0].effect"), "NoSchedule");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.tolerations[1].operator"), "Exists");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.nodeSelector.disktype"), "ssd");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.serviceAccountName"), "keruta-task");
	cr_expect_eq(json_object_get_int(kt_jpath(job, "spec.activeDeadlineSeconds")), 7200);
	cr_expect_str_eq(kt_jstr(doc_of_kind(d, "PersistentVolumeClaim"), "spec.storageClassName"), "fast");
	cr_expect_str_eq(kt_jstr(job, "metadata.namespace"), "keruta");
	cr_expect_eq(json_object_array_length(d), 3, "--objects all: PVC, Job, cleanup Job");
	json_object_put(d);
	free(task);
	free(child);
	free(own);
}

/* Ids and texts that break naive YAML or naive names. */
static const char *const hostile[] = {
        "UPPER_Case.ID",
        "../../etc/passwd",
        "id with spaces and \"quotes\" and 'single'",
        "line1\nline2\r\n\ttab",
        "*alias &anchor",
        "key: value # comment",
        "{flow: [seq]}",
        "- leading dash",
        "null",
        "yes",
        "~",
        "0x1F",
        "1e3",
        "%TAG !",
        "@at `back`",
        "日本語のタスク ✓",
        "\\backslash\\",
        "controls: del \x7f, next line \xc2\x85, line sep \xe2\x80\xa8, para sep \xe2\x80\xa9, bom "
        "\xef\xbb\xbf end",
        "---",
        "...",
        "",
        NULL};

Test(render, hostile_ids_and_texts_give_valid_safe_manifests)
{
	char long_id[301];
	memset(long_id, 'A', 300);
	long_id[300] = '\0';
	const char *names[64];
	size_t n = 0;
	char *jobnames[64];
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		const char *text = hostile[i] ? hostile[i] : long_id;
		const char *id = *text ? text : "empty-text";
		char fname[64], yname[64];
		snprintf(fname, sizeof(fname), "h%zu.json", i);
		snprintf(yname, sizeof(yname), "h%zu.yaml", i);
		char *task = task_file(fname, id, text, text, NULL, NULL);
		static const char *const all[] = {"--objects", "all", NULL};
		kt_result r;
		render(&r, yname, task, all);
		cr_expect_eq(r.status, 0, "render of %s failed: %s", yname, r.err);
		kt_result_free(&r);
		/* the env values come back exactly */
		char *epath = kt_path(dir, "e.json");
		FILE *f = fopen(epath, "w");
		fprintf(f, "{\"env\": {\"KERUTA_TASK_ID\": \"");
		json_escape(f, id);
		fprintf(f, "\", \"KERUTA_TASK_TITLE\": \"");
		json_escape(f, text);
		fprintf(f, "\", \"KERUTA_TASK_DESCRIPTION\": \"");
		json_escape(f, text);
		fprintf(f, "\"}}");
		fclose(f);
		char *expect = kt_read_file(epath, NULL);
		free(epath);
		cr_expect_eq(check(yname, expect, NULL), 0, "hostile text %zu: not read back exactly", i);
		free(expect);
		json_object *d = load_json(yname);
		jobnames[n] = strdup(kt_jstr(doc_of_kind(d, "Job"), "metadata.name"));
		cr_expect_leq(strlen(jobnames[n]), 63);
		json_object_put(d);
		names[n++] = strdup(yname);
		free(task);
	}
	names[n] = NULL;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			cr_expect_str_neq(jobnames[i], jobnames[j], "two ids got one Job name");
	keep_for_schema("hostile", names);
	for (size_t i = 0; i < n; i++) {
		free((char *)names[i]);
		free(jobnames[i]);
	}
}

Test(render, ids_that_map_alike_get_distinct_names)
{
	static const char *const ids[] = {"Task_1", "task-1", "TASK-1", "task.1", "task 1", "task--1"};
	char *seen[6];
	for (size_t i = 0; i < 6; i++) {
		char fname[32], yname[32];
		snprintf(fname, sizeof(fname), "s%zu.json", i);
		snprintf(yname, sizeof(yname), "s%zu.yaml", i);
		char *task = task_file(fname, ids[i], "t", NULL, NULL, NULL);
		kt_result r;
		render(&r, yname, task, NULL);
		cr_assert_eq(r.status, 0);
		kt_result_free(&r);
		cr_assert_eq(check(yname, NULL, NULL), 0);
		json_object *d = load_json(yname);
		seen[i] = strdup(kt_jstr(doc_of_kind(d, "Job"), "metadata.name"));
		json_object_put(d);
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(seen[i], seen[j], "%s and %s collide", ids[i], ids[j]);
		free(task);
	}
	cr_expect_str_eq(seen[1], "keruta-job-task-1", "a valid id is kept as it is");
	for (size_t i = 0; i < 6; i++)
		free(seen[i]);
}

Test(render, bad_settings_are_usage_errors)
{
	char *task = task_file("t.json", "t1", "t", NULL, NULL, NULL);
	struct {
		const char *a, *b, *want;
	} cases[] = {{"--work-volume", "nfs", "--work-volume"},
	             {"--cpu-request", "lots", "quantity"},
	             {"--pvc-access-mode", "ReadWriteSometimes", "--pvc-access-mode"},
	             {"--toleration", "bad key:Never", "toleration"},
	             {"--toleration", "dedicated=not ok:NoSchedule", "toleration"},
	             {"--node-selector", "novalue", "node selector"},
	             {"--objects", "everything", "--objects"},
	             {"--objects", "cleanup", "emptydir"},
	             {"--storage-class", "Fast_SSD", "--storage-class"},
	             {"--ttl-after-finished", "soon", "duration"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* the emptydir case needs the volume kind too */
		const char *more[] = {cases[i].a, cases[i].b,
		                      strcmp(cases[i].want, "emptydir") ? NULL : "--work-volume", "emptydir",
		                      NULL};
		kt_result r;
		render(&r, "bad.yaml", task, more);
		cr_expect_eq(r.status, 2, "%s %s: exit %d", cases[i].a, cases[i].b, r.status);
		cr_expect(kt_contains(r.err, cases[i].want), "%s: message '%s'", cases[i].a, r.err);
		cr_expect_eq(r.out_len, 0, "nothing printed on error");
		kt_result_free(&r);
	}
	free(task);
}

Test(render, huge_description_is_cut_and_marked)
{
	size_t n = 200000;
	char *big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	char *task = task_file("big.json", "big", "t", big, NULL, NULL);
	kt_result r;
	render(&r, "big.yaml", task, NULL);
	cr_assert_eq(r.status, 0);
	cr_expect(kt_contains(r.out, "cut by keruta-agent"));
	cr_expect_lt(r.out_len, 4 * 70000);
	/* what is kept is the text's start, not nothing */
	char run[4097];
	memset(run, 'x', 4096);
	run[4096] = '\0';
	cr_expect(kt_contains(r.out, run), "the description's start is gone");
	kt_result_free(&r);
	cr_expect_eq(check("big.yaml", NULL, NULL), 0);
	free(big);
	free(task);
}

Test(render, task_from_the_api)
{
	kt_api api;
	cr_assert_eq(kt_api_start(&api, NULL), 0);
	kt_seed(&api, "{\"tasks\": [{\"id\": \"api-1\", \"title\": \"From the API\", "
	        "\"status\": \"PENDING\", \"parentTaskId\": \"api-0\"}]}");
	const char *args[] = {"render", "--task-id", "api-1", "--api-url", api.url, "--node-name", "n1", NULL};
	kt_result r;
	cr_assert_eq(kt_agent_run(&r, args, NULL, 30), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.out, "\"From the API\""));
	cr_expect(kt_contains(r.out, "claimName: \"git-repo-pvc-api-0\""));
	cr_expect(!kt_contains(r.out, "PersistentVolumeClaim"), "a child creates no PVC");
	kt_result_free(&r);
	const char *args2[] = {"render", "--task-id", "nope", "--api-url", api.url, "--api-retries", "0", NULL};
	cr_assert_eq(kt_agent_run(&r, args2, NULL, 30), 0);
	cr_expect_neq(r.status, 0);
	cr_expect(kt_contains(r.err, "nope"), "%s", r.err);
	kt_result_free(&r);
	kt_api_stop(&api);
}

/* The claim a rendered Job (document `kind`) mounts. */
static const char *claim_of(json_object *job)
{
	return kt_jstr(job, "spec.template.spec.volumes[0].persistentVolumeClaim.claimName");
}

static const char *pinned_node(json_object *job)
{
	return kt_jstr(job, "spec.template.spec.affinity.nodeAffinity."
	                    "requiredDuringSchedulingIgnoredDuringExecution."
	                    "nodeSelectorTerms[0].matchExpressions[0].values[0]");
}

Test(render, pvc_fields_come_from_the_task_then_its_repository_then_the_settings)
{
	char *own = task_file("t-own.json", "own-1", "t", NULL, NULL,
	                      "\"pvcStorageSize\": \"20Gi\", \"pvcAccessMode\": \"ReadWriteMany\", "
	                      "\"pvcStorageClass\": \"fast-ssd\", \"repository\": {\"id\": \"repo-1\", "
	                      "\"pvcStorageSize\": \"5Gi\", \"pvcStorageClass\": \"repo-class\"}");
	char *repo = task_file("t-repo.json", "repo-1t", "t", NULL, NULL,
	                       "\"repository\": {\"id\": \"repo-1\", \"pvcStorageSize\": \"5Gi\", "
	                       "\"pvcAccessMode\": \"ReadWriteOncePod\", \"pvcStorageClass\": "
	                       "\"repo-class\"}");
	char *mixed = task_file("t-mixed.json", "mixed-1", "t", NULL, NULL,
	                        "\"pvcStorageSize\": \"30Gi\", \"repository\": {\"id\": \"repo-1\", "
	                        "\"pvcStorageClass\": \"repo-class\"}");
	char *none = task_file("t-none.json", "none-1", "t", NULL, NULL, NULL);
	static const char *const no_args[] = {NULL};
	static const char *const settings[] = {"--pvc-size", "3Gi", "--storage-class", "launcher-class",
	                                       "--pvc-access-mode", "ReadWriteMany", NULL};
	struct {
		const char *yaml, *task;
		const char *const *args;
		const char *size, *mode, *cls; /* cls NULL: none */
	} v[] = {
	        {"own.yaml", own, settings, "20Gi", "ReadWriteMany", "fast-ssd"},
	        {"repo.yaml", repo, settings, "5Gi", "ReadWriteOncePod", "repo-class"},
	        {"mixed.yaml", mixed, settings, "30Gi", "ReadWriteMany", "repo-class"},
	        {"none.yaml", none, settings, "3Gi", "ReadWriteMany", "launcher-class"},
	        {"defaults.yaml", none, no_args, "1Gi", "ReadWriteOnce", NULL},
	};
	const char *names[8];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		kt_result r;
		render(&r, v[i].yaml, v[i].task, v[i].args);
		cr_expect_eq(r.status, 0, "%s: %s", v[i].yaml, r.err);
		kt_result_free(&r);
		cr_assert_eq(check(v[i].yaml, NULL, NULL), 0);
		json_object *d = load_json(v[i].yaml);
		json_object *pvc = doc_of_kind(d, "PersistentVolumeClaim");
		cr_assert_not_null(pvc, "%s: a PVC", v[i].yaml);
		cr_expect_str_eq(kt_jstr(pvc, "spec.resources.requests.storage"), v[i].size, "%s", v[i].yaml);
		cr_expect_str_eq(kt_jstr(pvc, "spec.accessModes[0]"), v[i].mode, "%s", v[i].yaml);
		if (v[i].cls)
			cr_expect_str_eq(kt_jstr(pvc, "spec.storageClassName"), v[i].cls, "%s", v[i].yaml);
		else
			cr_expect_null(kt_jpath(pvc, "spec.storageClassName"), "%s", v[i].yaml);
		json_object_put(d);
		names[n++] = v[i].yaml;
	}
	names[n] = NULL;
	keep_for_schema("pvc-fields", names);
	free(own);
	free(repo);
	free(mixed);
	free(none);
}

Test(render, a_child_ignores_its_own_pvc_fields_and_says_so)
{
	char *child = task_file("t-child.json", "kid-1", "t", NULL, "dad-1",
	                        "\"pvcStorageSize\": \"50Gi\", \"pvcStorageClass\": \"other\"");
	static const char *const args[] = {"--node-name", "node-3", "--objects", "all", NULL};
	kt_result r;
	render(&r, "child.yaml", child, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(kt_contains(r.err, "kid-1") && kt_contains(r.err, "dad-1") &&
	                  kt_contains(r.err, "pvcStorageSize, pvcStorageClass are ignored"),
	          "a log line names what is ignored: %s", r.err);
	kt_result_free(&r);
	cr_assert_eq(check("child.yaml", NULL, NULL), 0);
	json_object *d = load_json("child.yaml");
	cr_expect_null(doc_of_kind(d, "PersistentVolumeClaim"));
	cr_expect_not(kt_contains(json_object_to_json_string(d), "50Gi"));
	cr_expect_str_eq(claim_of(doc_of_kind(d, "Job")), "git-repo-pvc-dad-1");
	json_object_put(d);
	static const char *const names[] = {"child.yaml", NULL};
	keep_for_schema("pvc-child", names);
	free(child);
}

Test(render, an_existing_claim_is_mounted_not_created_and_pinned_when_rwo)
{
	char *own = task_file("t-own.json", "ex-1", "t", NULL, NULL,
	                      "\"pvcName\": \"shared-cache\", \"pvcStorageSize\": \"9Gi\"");
	char *repo = task_file("t-repo.json", "ex-2", "t", NULL, NULL,
	                       "\"repository\": {\"id\": \"r\", \"pvcName\": \"repo-volume\", "
	                       "\"pvcAccessMode\": \"ReadWriteMany\"}");
	static const char *const pin[] = {"--node-name", "node-5", "--objects", "all", "--source-pod",
	                                  "keruta-job-ex-1-abcde", NULL};
	kt_result r;
	render(&r, "own.yaml", own, pin);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	render(&r, "repo.yaml", repo, pin);
	cr_expect_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	static const char *const nonode[] = {NULL};
	render(&r, "warn.yaml", own, nonode);
	cr_expect(kt_contains(r.err, "shared-cache") && kt_contains(r.err, "--node-name"),
	          "without --node-name a warning says where it may not start: %s", r.err);
	kt_result_free(&r);
	cr_assert_eq(check("own.yaml", NULL, NULL), 0);
	cr_assert_eq(check("repo.yaml", NULL, NULL), 0);

	json_object *d = load_json("own.yaml");
	cr_expect_null(doc_of_kind(d, "PersistentVolumeClaim"), "an existing claim is never created");
	for (size_t i = 0; i < json_object_array_length(d); i++) {
		json_object *job = json_object_array_get_idx(d, i);
		cr_expect_str_eq(claim_of(job), "shared-cache");
		cr_expect_str_eq(pinned_node(job), "node-5", "ReadWriteOnce: pinned like a child");
	}
	json_object_put(d);
	d = load_json("repo.yaml");
	cr_expect_null(doc_of_kind(d, "PersistentVolumeClaim"));
	cr_expect_str_eq(claim_of(doc_of_kind(d, "Job")), "repo-volume", "from the repository record");
	cr_expect_null(kt_jpath(doc_of_kind(d, "Job"), "spec.template.spec.affinity"),
	               "ReadWriteMany: not pinned");
	json_object_put(d);
	static const char *const names[] = {"own.yaml", "repo.yaml", NULL};
	keep_for_schema("pvc-existing", names);
	free(own);
	free(repo);
}

Test(render, bad_pvc_fields_name_the_task_and_the_field)
{
	struct {
		const char *extra, *field, *value;
	} cases[] = {
	        {"\"pvcStorageSize\": \"20 GB\"", "pvcStorageSize", "20 GB"},
	        {"\"pvcStorageSize\": \"-1Gi\"", "pvcStorageSize", "-1Gi"},
	        {"\"pvcAccessMode\": \"ReadOnlyMany\"", "pvcAccessMode", "ReadOnlyMany"},
	        {"\"pvcStorageClass\": \"Fast_SSD\"", "pvcStorageClass", "Fast_SSD"},
	        {"\"pvcName\": \"../etc\"", "pvcName", "../etc"},
	        {"\"pvcName\": [\"a\"]", "pvcName", "must be a string"},
	        {"\"repository\": {\"id\": \"r\", \"pvcAccessMode\": \"rwo\"}", "pvcAccessMode", "rwo"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *task = task_file("bad.json", "bad-task-7", "t", NULL, NULL, cases[i].extra);
		kt_result r;
		render(&r, "bad.yaml", task, NULL);
		cr_expect_neq(r.status, 0, "%s: accepted", cases[i].extra);
		/* the task by its id, or (a type error the task file's own check
		 * finds first) by the file's line and column */
		cr_expect((kt_contains(r.err, "bad-task-7") || kt_contains(r.err, "bad.json:1:")) &&
		                  kt_contains(r.err, cases[i].field) && kt_contains(r.err, cases[i].value),
		          "%s: the message names the task, the field and the value: %s", cases[i].extra,
		          r.err);
		cr_expect_eq(r.out_len, 0, "nothing printed on error");
		kt_result_free(&r);
		free(task);
	}
}

Test(render, pvc_fields_from_the_repository_record_in_keruta_api)
{
	kt_api api;
	cr_assert_eq(kt_api_start(&api, NULL), 0);
	kt_seed(&api, "{\"tasks\": [{\"id\": \"api-7\", \"title\": \"t\", \"status\": \"PENDING\", "
	        "\"repositoryId\": \"big-repo\", \"pvcAccessMode\": \"ReadWriteMany\"}], "
	        "\"repositories\": [{\"id\": \"big-repo\", \"name\": \"big\", "
	        "\"pvcStorageSize\": \"20Gi\", \"pvcAccessMode\": \"ReadWriteOnce\"}]}");
	const char *args[] = {"render", "--task-id", "api-7", "--api-url", api.url, NULL};
	kt_result r;
	cr_assert_eq(kt_agent_run(&r, args, NULL, 30), 0);
	cr_expect_eq(r.status, 0, "%s", r.err);
	char *out = kt_path(dir, "api.yaml");
	kt_write_file(out, r.out ? r.out : "");
	free(out);
	kt_result_free(&r);
	cr_assert_eq(check("api.yaml", NULL, NULL), 0);
	json_object *d = load_json("api.yaml");
	json_object *pvc = doc_of_kind(d, "PersistentVolumeClaim");
	cr_expect_str_eq(kt_jstr(pvc, "spec.resources.requests.storage"), "20Gi", "from the repository");
	cr_expect_str_eq(kt_jstr(pvc, "spec.accessModes[0]"), "ReadWriteMany", "the task's wins");
	json_object_put(d);
	kt_api_stop(&api);
}

/* The words of one command line, whitespace (newlines too) collapsed. */
static char *words(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = (s[i] == '\n' || s[i] == '\t') ? ' ' : s[i];
		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = c;
	}
	while (o && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return out;
}

/* A rendered container's command as one line, without the token file
 * pair (documented once for every container). */
static char *rendered(json_object *c)
{
	json_object *cmd = kt_jpath(c, "command");
	size_t cap = 4096, o = 0;
	char *out = calloc(1, cap);
	for (size_t i = 0; i < json_object_array_length(cmd); i++) {
		const char *w = json_object_get_string(json_object_array_get_idx(cmd, i));
		if (!strcmp(w, "--api-token-file")) {
			i++;
			continue;
		}
		o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " " : "", w);
	}
	return out;
}

/*
 * Every pod command the docs show (a `keruta-agent CMD ... $(NAME) ...`
 * span in README.md, launcher/OPERATOR.md, deploy/README.md) is one that
 * `render` prints, and each command render prints is shown somewhere.
 */
Test(render, the_docs_show_the_commands_render_prints)
{
	char *pvc_task = task_file("t-doc.json", "doc-1", "t", NULL, NULL, "\"documents\": [\"d\"]");
	static const char *const all[] = {"--objects", "all", "--source-pod", "p", NULL};
	static const char *const ed[] = {"--work-volume", "emptydir", NULL};
	kt_result r;
	render(&r, "doc-pvc.yaml", pvc_task, all);
	cr_assert_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	render(&r, "doc-ed.yaml", pvc_task, ed);
	cr_assert_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	cr_assert_eq(check("doc-pvc.yaml", NULL, NULL), 0);
	cr_assert_eq(check("doc-ed.yaml", NULL, NULL), 0);
	json_object *p = load_json("doc-pvc.yaml"), *e = load_json("doc-ed.yaml");
	char *cmds[4] = {
	        rendered(kt_jpath(json_object_array_get_idx(p, 1), "spec.template.spec.initContainers[0]")),
	        rendered(kt_jpath(json_object_array_get_idx(p, 1), "spec.template.spec.containers[0]")),
	        rendered(kt_jpath(json_object_array_get_idx(p, 2), "spec.template.spec.containers[0]")),
	        rendered(kt_jpath(json_object_array_get_idx(e, 0), "spec.template.spec.containers[0]"))};
	cr_assert(kt_contains(cmds[0], " init ") && kt_contains(cmds[1], " run ") &&
	          kt_contains(cmds[2], " cleanup ") && kt_contains(cmds[3], "--final-status yes"),
	          "the documents are PVC, Job, cleanup Job; and the emptyDir Job");
	int shown[4] = {0};
	static const char *const docs[] = {"README.md", "launcher/OPERATOR.md", "deploy/README.md"};
	int token_file_told = 0;
	for (size_t d = 0; d < 3; d++) {
		char *path = kt_path(kt_srcdir(), docs[d]);
		char *text = kt_read_file(path, NULL);
		cr_assert_not_null(text, "%s", path);
		char *flat = words(text, strlen(text));
		token_file_told |= kt_contains(flat, "--api-token-file /var/run/secrets/keruta/token");
		free(flat);
		for (char *s = text; (s = strchr(s, '`'));) {
			if (!strncmp(s, "```", 3)) { /* a fenced block: not a span */
				char *end = strstr(s + 3, "```");
				s = end ? end + 3 : s + strlen(s);
				continue;
			}
			char *end = strchr(s + 1, '`');
			if (!end)
				break;
			char *span = words(s + 1, (size_t)(end - s - 1));
			s = end + 1;
			static const char *const pod_cmds[] = {"keruta-agent init ", "keruta-agent run ",
			                                       "keruta-agent cleanup ", "keruta-agent execute "};
			int pod = 0;
			for (size_t k = 0; k < 4; k++)
				pod |= !strncmp(span, pod_cmds[k], strlen(pod_cmds[k]));
			if (pod && strstr(span, "$(")) {
				int match = 0;
				for (int k = 0; k < 4; k++)
					if (!strcmp(span, cmds[k]))
						match = shown[k] = 1;
				cr_expect(match, "%s shows `%s`, which render does not print (render: %s | %s | %s | %s)",
				          docs[d], span, cmds[0], cmds[1], cmds[2], cmds[3]);
			}
			free(span);
		}
		free(text);
		free(path);
	}
	for (int k = 0; k < 4; k++)
		cr_expect(shown[k], "no doc shows render's `%s`", cmds[k]);
	/* the man page describes every option render puts in a pod */
	char *man_path = kt_path(kt_srcdir(), "doc/keruta-agent.1");
	char *man = kt_read_file(man_path, NULL);
	cr_assert_not_null(man);
	for (char *q = man; (q = strstr(q, "\\-"));) /* roff's \- is a - */
		memmove(q, q + 1, strlen(q));
	for (int k = 0; k < 4; k++) {
		char *c = strdup(cmds[k]);
		for (char *save = NULL, *w = strtok_r(c, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			if (strncmp(w, "--", 2))
				continue;
			char want[80];
			snprintf(want, sizeof(want), ".BR %s ", w);
			char want2[80];
			snprintf(want2, sizeof(want2), ".BR %s\n", w);
			cr_expect(kt_contains(man, want) || kt_contains(man, want2),
			          "doc/keruta-agent.1 does not describe %s", w);
		}
		free(c);
	}
	cr_expect(kt_contains(man, ".BR --api-token-file "), "doc/keruta-agent.1: --api-token-file");
	free(man);
	free(man_path);
	cr_expect(token_file_told, "the docs say each container gets --api-token-file");
	for (int k = 0; k < 4; k++)
		free(cmds[k]);
	json_object_put(p);
	json_object_put(e);
	free(pvc_task);
}

/* A container as one line of JSON, for searching. */
static char *text_of(json_object *c)
{
	return strdup(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* --git-cache-volume: the cache is mounted where the agent clones (init
 * container, or the only one), writable there and told by KERUTA_GIT_CACHE;
 * the task's own containers and the cleanup Job never see it. */
Test(render, git_cache_volume_mounts_the_cache_in_the_cloning_container_only)
{
	char *task = task_file("t.json", "gc-1", "t", NULL, NULL, NULL);
	static const char *const host[] = {"--git-cache-volume", "hostPath:/var/cache/keruta-git",
	                                   "--objects", "all", "--source-pod", "p", NULL};
	static const char *const claim[] = {"--git-cache-volume", "git-cache-rwx", NULL};
	kt_result r;
	render(&r, "gc-host.yaml", task, host);
	cr_assert_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	render(&r, "gc-claim.yaml", task, claim);
	cr_assert_eq(r.status, 0, "%s", r.err);
	kt_result_free(&r);
	cr_assert_eq(check("gc-host.yaml", NULL, NULL), 0);
	cr_assert_eq(check("gc-claim.yaml", NULL, NULL), 0);

	json_object *d = load_json("gc-host.yaml");
	json_object *job = doc_of_kind(d, "Job");
	cr_assert_not_null(job);
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[2].name"), "git-cache");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[2].hostPath.path"),
	                 "/var/cache/keruta-git");
	json_object *init = kt_jpath(job, "spec.template.spec.initContainers[0]");
	cr_assert_not_null(init);
	char *got = text_of(init);
	cr_expect(kt_contains(got, "\"mountPath\":\"/var/cache/keruta-git\""), "%s", got);
	cr_expect(kt_contains(got, "KERUTA_GIT_CACHE"), "%s", got);
	free(got);
	/* the task's container and the cleanup Job: no cache */
	for (size_t i = 0; i < json_object_array_length(d); i++) {
		json_object *o = json_object_array_get_idx(d, i);
		json_object *cs = kt_jpath(o, "spec.template.spec.containers");
		for (size_t k = 0; cs && k < json_object_array_length(cs); k++) {
			char *c = text_of(json_object_array_get_idx(cs, k));
			cr_expect_not(kt_contains(c, "git-cache") || kt_contains(c, "KERUTA_GIT_CACHE"),
			              "a task container sees the cache: %s", c);
			free(c);
		}
	}
	json_object_put(d);
	d = load_json("gc-claim.yaml");
	job = doc_of_kind(d, "Job");
	cr_expect_str_eq(kt_jstr(job, "spec.template.spec.volumes[2].persistentVolumeClaim.claimName"),
	                 "git-cache-rwx");
	got = text_of(kt_jpath(job, "spec.template.spec.initContainers[0]"));
	cr_expect(kt_contains(got, "KERUTA_GIT_CACHE"), "the init container clones: %s", got);
	free(got);
	got = text_of(kt_jpath(job, "spec.template.spec.containers[0]"));
	cr_expect(!kt_contains(got, "KERUTA_GIT_CACHE"), "the task's container: %s", got);
	free(got);
	json_object_put(d);
	static const char *const names[] = {"gc-host.yaml", "gc-claim.yaml", NULL};
	keep_for_schema("git-cache", names);

	static const char *const bad[][2] = {{"--git-cache-volume", "hostPath:relative"},
	                                     {"--git-cache-volume", "Bad_Claim"}};
	for (size_t i = 0; i < 2; i++) {
		const char *more[] = {bad[i][0], bad[i][1], NULL};
		render(&r, "bad.yaml", task, more);
		cr_expect_eq(r.status, 2, "%s: exit %d", bad[i][1], r.status);
		cr_expect(kt_contains(r.err, "--git-cache-volume"), "%s", r.err);
		kt_result_free(&r);
	}
	/* one container would clone and run the task's scripts with the
	 * shared cache mounted: refused */
	static const char *const single[] = {"--git-cache-volume", "git-cache-rwx",
	                                     "--single-container", NULL};
	render(&r, "bad.yaml", task, single);
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(kt_contains(r.err, "--single-container"), "%s", r.err);
	kt_result_free(&r);
	free(task);
}

/* Without a task to render, or with a task id and nowhere to fetch it
 * from, render says what to give and prints nothing. */
Test(render, a_missing_task_or_api_url_is_a_usage_error)
{
	static const char *const none[] = {"render", NULL};
	static const char *const no_url[] = {"render", "--task-id", "t-1", NULL};
	struct {
		const char *const *args;
		const char *want;
	} cases[] = {{none, "no task: give --task-id ID or --task-file FILE"},
	             {no_url, "task t-1: no API URL to fetch it from; give --api-url or --task-file"}};
	for (size_t i = 0; i < 2; i++) {
		kt_result r;
		cr_assert_eq(kt_agent_run(&r, cases[i].args, NULL, 30), 0);
		cr_expect_eq(r.status, 2, "%s: exit %d: %s", cases[i].want, r.status, r.err);
		cr_expect(kt_contains(r.err, cases[i].want), "%s", r.err);
		cr_expect_eq(r.out_len, 0, "nothing printed on error");
		kt_result_free(&r);
	}
}
