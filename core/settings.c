/* settings.c - see settings.h. */
#include "settings.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node.h"
#include "util.h"

#ifndef KR_SYSCONFDIR
#define KR_SYSCONFDIR "/etc"
#endif

#define T KR_CMD_TASKS
const kr_setting_def kr_setting_defs[KR_S_COUNT] = {
        [KR_S_PIPELINE] = {NULL, "--pipeline", {"KERUTA_PIPELINE"}, KR_ST_STRING,
                           KR_SYSCONFDIR "/keruta-agent/pipeline.yaml",
                           T | KR_CMD_VALIDATE | KR_CMD_PLUGINS | KR_CMD_LAUNCH /* launcher */, "FILE",
                           "pipeline file to run"},
        [KR_S_BACKEND] = {"backend", "--backend", {"KERUTA_BACKEND"}, KR_ST_STRING, "auto", T,
                          "NAME",
                          "api, local, or auto (local when a task file is given, else api)"},
        [KR_S_TASK_ID] = {NULL, "--task-id", {"KERUTA_TASK_ID"}, KR_ST_STRING, NULL, T | KR_CMD_LAUNCH /* launcher */, "ID",
                          "task to run"},
        [KR_S_TASK_FILE] = {"task_file", "--task-file", {"KERUTA_TASK_FILE"}, KR_ST_STRING, NULL,
                            T | KR_CMD_VALIDATE | KR_CMD_LAUNCH /* launcher */, "FILE", "read the task from a YAML/JSON file (local backend)"},
        [KR_S_API_URL] = {"api_url", "--api-url", {"KERUTA_API_URL", "KERUTA_API_ENDPOINT"},
                          KR_ST_STRING, NULL, T | KR_CMD_LAUNCH /* launcher */, "URL", "base URL of keruta-api"},
        [KR_S_API_TOKEN] = {NULL, NULL, {"KERUTA_API_TOKEN"}, KR_ST_STRING, NULL, T | KR_CMD_LAUNCH /* launcher */, NULL,
                            "API token (environment only: never on a command line)"},
        [KR_S_API_TOKEN_FILE] = {"api_token_file", "--api-token-file",
                                 {"KERUTA_API_TOKEN_FILE"}, KR_ST_STRING, NULL, T | KR_CMD_LAUNCH /* launcher */, "FILE",
                                 "read the API token from a file (a mounted Secret)"},
        [KR_S_CA_FILE] = {"ca_file", "--ca-file", {"KERUTA_CA_FILE"}, KR_ST_STRING, NULL, T | KR_CMD_LAUNCH /* launcher */,
                          "FILE", "CA certificates to verify keruta-api and git hosts with"},
        [KR_S_INSECURE] = {"insecure", "--insecure", {"KERUTA_INSECURE"}, KR_ST_BOOL, "false", T | KR_CMD_LAUNCH /* launcher */,
                           NULL, "do not verify TLS certificates (warns on every run)"},
        [KR_S_REPOSITORY_ID] = {NULL, "--repository-id", {"KERUTA_REPOSITORY_ID"}, KR_ST_STRING,
                                NULL, T, "ID", "repository of the task"},
        [KR_S_DOCUMENT_ID] = {NULL, "--document-id", {"KERUTA_DOCUMENT_ID"}, KR_ST_LIST, NULL,
                              T, "ID", "document to fetch (repeatable; env: comma-separated)"},
        [KR_S_SOURCE_POD] = {NULL, "--source-pod", {"KERUTA_SOURCE_POD"}, KR_ST_STRING, NULL,
                             KR_CMD_CLEANUP | KR_CMD_RENDER /* launcher */, "POD", "pod whose artifacts cleanup collects"},
        [KR_S_WORK_DIR] = {"work_dir", "--work-dir", {"KERUTA_WORK_DIR"}, KR_ST_STRING, NULL,
                           T, "DIR",
                           "work directory (the repository is cloned here; default /work in a "
                           "pod, else ./keruta-work)"},
        [KR_S_ARTIFACTS_DIR] = {"artifacts_dir", "--artifacts-dir", {"KERUTA_ARTIFACTS_DIR"},
                                KR_ST_STRING, NULL, T, "DIR",
                                "local backend: where artifacts are copied "
                                "(default WORK_DIR/.keruta/artifacts)"},
        [KR_S_EVENTS_FILE] = {"events_file", "--events-file", {"KERUTA_EVENTS_FILE"},
                              KR_ST_STRING, NULL, T, "FILE",
                              "local backend: JSON-lines file of status and log events "
                              "(default WORK_DIR/.keruta/events.jsonl)"},
        [KR_S_PLUGIN_DIR] = {NULL, "--plugin-dir", {NULL}, KR_ST_LIST, NULL,
                             T | KR_CMD_VALIDATE | KR_CMD_PLUGINS, "DIR",
                             "search plugins here first (repeatable)"},
        [KR_S_LOG_LEVEL] = {"log_level", "--log-level", {"KERUTA_LOG_LEVEL"}, KR_ST_STRING,
                            "info", KR_CMD_ALL, "LEVEL", "debug, info, warn or error"},
        [KR_S_LOG_FORMAT] = {"log_format", "--log-format", {"KERUTA_LOG_FORMAT"}, KR_ST_STRING,
                             "auto", KR_CMD_ALL, "FORMAT",
                             "text, json, or auto (text on a terminal, else json)"},
        [KR_S_GRACE_PERIOD] = {"grace_period", "--grace-period", {"KERUTA_GRACE_PERIOD"},
                               KR_ST_DURATION, "10s", T, "DURATION",
                               "time between SIGTERM and SIGKILL for a task's processes"},
        [KR_S_TERMINATION_LOG] = {"termination_log", "--termination-log",
                                  {"KERUTA_TERMINATION_LOG"}, KR_ST_STRING,
                                  NULL, T, "FILE",
                                  "where the final outcome is written for Kubernetes "
                                  "(default /dev/termination-log in a pod, else none)"},
        [KR_S_SECRETS] = {"secrets", NULL, {NULL}, KR_ST_LIST, NULL, T, NULL,
                          "environment variables whose values are masked in all output"},
        [KR_S_API_CONNECT_TIMEOUT] = {"api_connect_timeout", "--api-connect-timeout",
                                      {"KERUTA_API_CONNECT_TIMEOUT"}, KR_ST_DURATION, "10s", T | KR_CMD_LAUNCH /* launcher */,
                                      "DURATION", "connect timeout of each API call"},
        [KR_S_API_TIMEOUT] = {"api_timeout", "--api-timeout", {"KERUTA_API_TIMEOUT"},
                              KR_ST_DURATION, "60s", T | KR_CMD_LAUNCH /* launcher */, "DURATION",
                              "total timeout of each API call"},
        [KR_S_API_RETRIES] = {"api_retries", "--api-retries", {"KERUTA_API_RETRIES"}, KR_ST_INT,
                              "100", T | KR_CMD_LAUNCH /* launcher */, "N",
                              "most retries of a failed API call (outages are bounded by "
                              "api_retry_max_time; this only caps the count)"},
        [KR_S_API_RETRY_MAX_TIME] = {"api_retry_max_time", "--api-retry-max-time",
                                     {"KERUTA_API_RETRY_MAX_TIME"}, KR_ST_DURATION, "2m", T | KR_CMD_LAUNCH /* launcher */,
                                     "DURATION", "give up retrying a call after this long"},
        [KR_S_API_PATHS] = {"api_paths", NULL, {NULL}, KR_ST_MAP, NULL, T | KR_CMD_LAUNCH /* launcher */, NULL,
                            "endpoint path templates (task, script, repository, status, "
                            "logs, install_script, document, artifact, pending)"},
        [KR_S_STATUS_NAMES] = {"status_names", NULL, {NULL}, KR_ST_MAP, NULL, T | KR_CMD_LAUNCH /* launcher */, NULL,
                               "names the API uses for in_progress, completed, failed"},
        [KR_S_LOG_BATCH_LINES] = {"log_batch_lines", NULL, {NULL}, KR_ST_INT, "500", T, NULL,
                                  "ship log lines in batches of at most this many"},
        [KR_S_LOG_BATCH_BYTES] = {"log_batch_bytes", NULL, {NULL}, KR_ST_SIZE, "256KiB", T,
                                  NULL, "... or this many bytes"},
        [KR_S_LOG_BATCH_INTERVAL] = {"log_batch_interval", NULL, {NULL}, KR_ST_DURATION, "1s",
                                     T, NULL, "... or after this long"},
        [KR_S_LOG_MAX_LINE] = {"log_max_line", NULL, {NULL}, KR_ST_SIZE, "16KiB", T, NULL,
                               "longer lines are shipped in parts, marked"},
        [KR_S_LOG_MAX_TOTAL] = {"log_max_total", NULL, {NULL}, KR_ST_SIZE, "64MiB", T, NULL,
                                "beyond this, only the head and the tail are shipped (each line "
                                "counts 80 bytes more than its text: its record)"},
        [KR_S_MAX_DOWNLOAD] = {"max_download", NULL, {NULL}, KR_ST_SIZE, "100MB", T, NULL,
                               "largest document or script downloaded"},
        [KR_S_PASS_API_TOKEN] = {"pass_api_token_to_tasks", "--pass-api-token-to-tasks",
                                 {"KERUTA_PASS_API_TOKEN_TO_TASKS"}, KR_ST_BOOL, "false", T,
                                 NULL,
                                 "UNSAFE: give task scripts KERUTA_API_TOKEN (warns on every "
                                 "run); scripts reach keruta-api through KERUTA_AGENT_SOCKET "
                                 "without it"},
        [KR_S_RUN_AS] = {"run_as", "--run-as", {"KERUTA_RUN_AS"}, KR_ST_STRING, NULL, T,
                         "USER", "run task scripts as this user (name, uid or uid:gid) when "
                                 "the agent is root, so they cannot read its token"},
        [KR_S_FINAL_STATUS] = {"final_status", "--final-status", {"KERUTA_FINAL_STATUS"},
                               KR_ST_STRING, "auto", T, "WHEN",
                               "send COMPLETED/FAILED: yes, no, or auto (execute, run and "
                               "cleanup yes, init FAILED only); render sets no on the main "
                               "container when a cleanup Job follows, yes when none does "
                               "(doc/lifecycle.md)"},
        [KR_S_GIT_CACHE] = {"git_cache", "--git-cache", {"KERUTA_GIT_CACHE"}, KR_ST_STRING, NULL,
                            T, "DIR",
                            "repository cache shared by the tasks of a machine: the clone "
                            "stage keeps a bare mirror per repository URL here and takes a new "
                            "clone's objects from it (no credentials are stored there)"},
        /* ---- launcher (render, dispatch): launcher/ owns this section ---- */
        [KR_S_K8S_IMAGE] = {"image", "--image", {"KERUTA_IMAGE"}, KR_ST_STRING,
                            "keruta-agent:latest", KR_CMD_LAUNCH, "IMAGE",
                            "container image of the task pods (a task's 'image' wins)"},
        [KR_S_K8S_IMAGE_PULL_POLICY] = {"image_pull_policy", "--image-pull-policy",
                                        {"KERUTA_IMAGE_PULL_POLICY"}, KR_ST_STRING, NULL,
                                        KR_CMD_LAUNCH, "POLICY",
                                        "Always, IfNotPresent or Never (default: the cluster's)"},
        [KR_S_K8S_AGENT_COMMAND] = {"agent_command", "--agent-command",
                                    {"KERUTA_AGENT_COMMAND"}, KR_ST_STRING, "keruta-agent",
                                    KR_CMD_LAUNCH, "PATH", "the agent program inside the image"},
        [KR_S_K8S_NAMESPACE] = {"namespace", "--namespace", {"KERUTA_NAMESPACE", "POD_NAMESPACE"},
                                KR_ST_STRING, NULL, KR_CMD_LAUNCH, "NS",
                                "namespace of the Jobs (default: the kubeconfig context's, the "
                                "pod's own in a cluster, else 'default')"},
        [KR_S_KUBECONFIG] = {"kubeconfig", "--kubeconfig", {"KUBECONFIG"}, KR_ST_STRING, NULL,
                             KR_CMD_DISPATCH, "FILE",
                             "kubeconfig file (default: the in-cluster service account, else "
                             "~/.kube/config)"},
        [KR_S_K8S_CONTEXT] = {"context", "--context", {"KERUTA_KUBE_CONTEXT"}, KR_ST_STRING, NULL,
                              KR_CMD_DISPATCH, "NAME",
                              "kubeconfig context (default: its current-context)"},
        [KR_S_K8S_SERVICE_ACCOUNT] = {"service_account", "--service-account",
                                      {"KERUTA_SERVICE_ACCOUNT"}, KR_ST_STRING, NULL,
                                      KR_CMD_LAUNCH, "NAME",
                                      "service account of the task pods (default: none mounted)"},
        [KR_S_K8S_WORK_VOLUME] = {"work_volume", "--work-volume", {"KERUTA_WORK_VOLUME"},
                                  KR_ST_STRING, "pvc", KR_CMD_LAUNCH, "KIND",
                                  "pvc (git-repo-pvc-TASK, shared with child tasks) or emptydir"},
        [KR_S_K8S_PVC_SIZE] = {"pvc_size", "--pvc-size", {"KERUTA_PVC_SIZE"}, KR_ST_STRING, "1Gi",
                               KR_CMD_LAUNCH, "QUANTITY", "size of a new PVC"},
        [KR_S_K8S_PVC_ACCESS_MODE] = {"pvc_access_mode", "--pvc-access-mode",
                                      {"KERUTA_PVC_ACCESS_MODE"}, KR_ST_STRING, "ReadWriteOnce",
                                      KR_CMD_LAUNCH, "MODE",
                                      "ReadWriteOnce (child pods pinned to the parent's node), "
                                      "ReadWriteMany or ReadWriteOncePod"},
        [KR_S_K8S_STORAGE_CLASS] = {"storage_class", "--storage-class", {"KERUTA_STORAGE_CLASS"},
                                    KR_ST_STRING, NULL, KR_CMD_LAUNCH, "NAME",
                                    "storage class of new PVCs (default: the cluster's)"},
        [KR_S_K8S_SINGLE_CONTAINER] = {"single_container", "--single-container",
                                       {"KERUTA_SINGLE_CONTAINER"}, KR_ST_BOOL, "false",
                                       KR_CMD_LAUNCH, NULL,
                                       "one container running 'execute' instead of init + run"},
        [KR_S_K8S_OBJECTS] = {NULL, "--objects", {NULL}, KR_ST_STRING, "job", KR_CMD_RENDER,
                              "WHICH",
                              "job (the PVC and the Job), cleanup (the cleanup Job, to apply "
                              "once the Job succeeded) or all"},
        [KR_S_K8S_NODE_NAME] = {NULL, "--node-name", {NULL}, KR_ST_STRING, NULL, KR_CMD_RENDER,
                                "NODE",
                                "node the parent task's pod ran on (ReadWriteOnce child tasks)"},
        [KR_S_K8S_CLEANUP_JOB] = {"cleanup_job", "--cleanup-job", {"KERUTA_CLEANUP_JOB"},
                                  KR_ST_BOOL, "true", KR_CMD_DISPATCH, NULL,
                                  "start the cleanup Job when a task's Job succeeds"},
        [KR_S_K8S_CPU_REQUEST] = {"cpu_request", "--cpu-request", {"KERUTA_CPU_REQUEST"},
                                  KR_ST_STRING, "100m", KR_CMD_LAUNCH, "QUANTITY",
                                  "CPU request of the task containers (none: no request)"},
        [KR_S_K8S_MEMORY_REQUEST] = {"memory_request", "--memory-request",
                                     {"KERUTA_MEMORY_REQUEST"}, KR_ST_STRING, "256Mi",
                                     KR_CMD_LAUNCH, "QUANTITY", "memory request (none: no request)"},
        [KR_S_K8S_CPU_LIMIT] = {"cpu_limit", "--cpu-limit", {"KERUTA_CPU_LIMIT"}, KR_ST_STRING,
                                NULL, KR_CMD_LAUNCH, "QUANTITY", "CPU limit (default none)"},
        [KR_S_K8S_MEMORY_LIMIT] = {"memory_limit", "--memory-limit", {"KERUTA_MEMORY_LIMIT"},
                                   KR_ST_STRING, "2Gi", KR_CMD_LAUNCH, "QUANTITY",
                                   "memory limit (none: no limit)"},
        [KR_S_K8S_NODE_SELECTOR] = {"node_selector", "--node-selector", {"KERUTA_NODE_SELECTOR"},
                                    KR_ST_LIST, NULL, KR_CMD_LAUNCH, "KEY=VALUE",
                                    "node selector of the task pods (repeatable)"},
        [KR_S_K8S_TOLERATIONS] = {"tolerations", "--toleration", {"KERUTA_TOLERATIONS"},
                                  KR_ST_LIST, NULL, KR_CMD_LAUNCH, "KEY[=VALUE][:EFFECT]",
                                  "toleration of the task pods, as in kubectl taint (repeatable)"},
        [KR_S_K8S_BACKOFF_LIMIT] = {"backoff_limit", "--backoff-limit", {"KERUTA_BACKOFF_LIMIT"},
                                    KR_ST_INT, "0", KR_CMD_LAUNCH, "N",
                                    "pod retries of a Job (0: a failed task is not re-run)"},
        [KR_S_K8S_TTL_AFTER_FINISHED] = {"ttl_after_finished", "--ttl-after-finished",
                                         {"KERUTA_TTL_AFTER_FINISHED"}, KR_ST_DURATION, "24h",
                                         KR_CMD_LAUNCH, "DURATION",
                                         "finished Jobs and their pods are kept this long"},
        [KR_S_K8S_ACTIVE_DEADLINE] = {"active_deadline", "--active-deadline",
                                      {"KERUTA_ACTIVE_DEADLINE"}, KR_ST_DURATION, NULL,
                                      KR_CMD_LAUNCH, "DURATION",
                                      "a Job running longer fails (default: no limit)"},
        [KR_S_K8S_CONCURRENCY] = {"concurrency", "--concurrency", {"KERUTA_CONCURRENCY"},
                                  KR_ST_INT, "10", KR_CMD_DISPATCH, "N",
                                  "tasks followed at once"},
        [KR_S_K8S_PENDING_INTERVAL] = {"pending_interval", "--pending-interval",
                                       {"KERUTA_PENDING_INTERVAL"}, KR_ST_DURATION, "10s",
                                       KR_CMD_DISPATCH, "DURATION",
                                       "how often keruta-api is asked for PENDING tasks"},
        [KR_S_K8S_CRASHLOOP_AFTER] = {"crashloop_after", "--crashloop-after",
                                      {"KERUTA_CRASHLOOP_AFTER"}, KR_ST_DURATION, "5m",
                                      KR_CMD_DISPATCH, "DURATION",
                                      "a pod in CrashLoopBackOff this long fails the task"},
        [KR_S_K8S_IMAGE_ERROR_AFTER] = {"image_error_after", "--image-error-after",
                                        {"KERUTA_IMAGE_ERROR_AFTER"}, KR_ST_DURATION, "60s",
                                        KR_CMD_DISPATCH, "DURATION",
                                        "ErrImagePull / ImagePullBackOff this long fails the task"},
        [KR_S_K8S_CONFIG_ERROR_AFTER] = {"config_error_after", "--config-error-after",
                                         {"KERUTA_CONFIG_ERROR_AFTER"}, KR_ST_DURATION, "30s",
                                         KR_CMD_DISPATCH, "DURATION",
                                         "CreateContainerConfigError this long fails the task"},
        [KR_S_K8S_DELETE_PVC] = {"delete_pvc", "--delete-pvc", {"KERUTA_DELETE_PVC"}, KR_ST_BOOL,
                                 "false", KR_CMD_DISPATCH, NULL,
                                 "delete a task's own PVC once it is finished (never its "
                                 "parent's)"},
        [KR_S_K8S_ONCE] = {NULL, "--once", {NULL}, KR_ST_BOOL, "false", KR_CMD_DISPATCH, NULL,
                           "exit when no task is PENDING or running"},
        [KR_S_K8S_GIT_CACHE_VOLUME] = {"git_cache_volume", "--git-cache-volume",
                                       {"KERUTA_GIT_CACHE_VOLUME"}, KR_ST_STRING, NULL,
                                       KR_CMD_LAUNCH, "hostPath:DIR|PVC",
                                       "repository cache of the nodes (a host directory, or a "
                                       "ReadWriteMany claim): mounted in the container that "
                                       "clones only, as its --git-cache"},
        /* ---- end of the launcher section ---- */
};
#undef T

const kr_setting_def *kr_setting_def_get(kr_setting_id id)
{
	return &kr_setting_defs[id];
}

typedef struct value {
	int set;
	const char *source; /* static text or owned_source */
	char *owned_source;
	char *text;         /* owned */
	size_t n;           /* list */
	char **items;       /* owned */
	const kr_node *map; /* points into the pipeline tree */
} value;

struct kr_settings {
	value v[KR_S_COUNT];
};

kr_settings *kr_settings_new(void)
{
	return kr_calloc(1, sizeof(kr_settings));
}

static void value_clear(value *v)
{
	free(v->text);
	for (size_t i = 0; i < v->n; i++)
		free(v->items[i]);
	free(v->items);
	free(v->owned_source);
	memset(v, 0, sizeof(*v));
}

void kr_settings_free(kr_settings *s)
{
	if (!s)
		return;
	for (int i = 0; i < KR_S_COUNT; i++)
		value_clear(&s->v[i]);
	free(s);
}

static void list_add(value *v, const char *item)
{
	v->items = kr_realloc(v->items, (v->n + 1) * sizeof(char *));
	v->items[v->n++] = kr_strdup(item);
}

/* Kubernetes expands $(NAME) in a container's command itself; other
 * runtimes pass it through literally, so do what Kubernetes would. */
static const char *expand_k8s_ref(const char *arg, int *unset)
{
	*unset = 0;
	size_t len = strlen(arg);
	if (len < 4 || arg[0] != '$' || arg[1] != '(' || arg[len - 1] != ')')
		return arg;
	for (size_t i = 2; i < len - 1; i++)
		if (!(isalnum((unsigned char)arg[i]) || arg[i] == '_'))
			return arg;
	char name[256];
	if (len - 3 >= sizeof(name))
		return arg;
	memcpy(name, arg + 2, len - 3);
	name[len - 3] = '\0';
	const char *v = getenv(name);
	if (!v) {
		*unset = 1;
		return NULL;
	}
	return v;
}

static int check_text(kr_setting_id id, const char *text, const char *where, kr_error *err)
{
	const kr_setting_def *d = &kr_setting_defs[id];
	uint64_t u;
	int64_t i;
	int b;
	const char *what = NULL;
	switch (d->type) {
	case KR_ST_BOOL: if (kr_parse_bool(text, &b)) what = "true or false"; break;
	case KR_ST_INT: if (kr_parse_int64(text, &i) || i < 0) what = "a non-negative integer"; break;
	case KR_ST_DURATION: if (kr_parse_duration_ms(text, &u)) what = "a duration such as 30s, 10m or 2h"; break;
	case KR_ST_SIZE: if (kr_parse_size(text, &u)) what = "a size such as 64KiB or 100MB"; break;
	default: break;
	}
	if (!what && id == KR_S_LOG_LEVEL) {
		kr_log_level l;
		if (kr_log_parse_level(text, &l))
			what = "debug, info, warn or error";
	}
	if (!what && id == KR_S_LOG_FORMAT) {
		kr_log_format f;
		if (kr_log_parse_format(text, &f))
			what = "text, json or auto";
	}
	if (!what && id == KR_S_BACKEND && strcmp(text, "api") && strcmp(text, "local") &&
	    strcmp(text, "auto"))
		what = "api, local or auto";
	if (!what)
		return 0;
	kr_error_set(err, KR_EXIT_USAGE, "%s: %s must be %s, not '%s'", where,
	             d->flag ? d->flag : d->name, what, text);
	return -1;
}

void kr_settings_set(kr_settings *s, kr_setting_id id, const char *text)
{
	value *v = &s->v[id];
	if (kr_setting_defs[id].type == KR_ST_LIST) {
		if (!v->set || strcmp(v->source, "flag") != 0) {
			value_clear(v);
		}
		list_add(v, text);
	} else {
		free(v->text);
		v->text = kr_strdup(text);
	}
	v->set = 1;
	v->source = "flag";
}

int kr_settings_parse_args(kr_settings *s, unsigned command, int argc, char **argv, int first,
                           char ***rest, int *n_rest, kr_error *err)
{
	*rest = kr_calloc((size_t)argc + 1, sizeof(char *));
	*n_rest = 0;
	for (int i = first; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--") == 0) {
			while (++i < argc)
				(*rest)[(*n_rest)++] = argv[i];
			break;
		}
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
			(*rest)[(*n_rest)++] = argv[i];
			continue;
		}
		const char *eq = strchr(arg, '=');
		size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
		int id = -1;
		for (int k = 0; k < KR_S_COUNT; k++) {
			const char *f = kr_setting_defs[k].flag;
			if (f && strlen(f) == flen && strncmp(f, arg, flen) == 0 &&
			    (kr_setting_defs[k].commands & command))
				id = k;
		}
		if (id < 0) {
			const char *flags[KR_S_COUNT];
			size_t n = 0;
			for (int k = 0; k < KR_S_COUNT; k++)
				if (kr_setting_defs[k].flag && (kr_setting_defs[k].commands & command))
					flags[n++] = kr_setting_defs[k].flag;
			char *name = kr_strndup(arg, flen);
			const char *near = kr_nearest(name, flags, n);
			kr_error_set(err, KR_EXIT_USAGE, "unknown option '%s'%s%s%s (see --help)", name,
			             near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
			free(name);
			return -1;
		}
		const char *val;
		if (kr_setting_defs[id].type == KR_ST_BOOL && !eq) {
			val = "true";
		} else if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			kr_error_set(err, KR_EXIT_USAGE, "option %s needs a value (%s)",
			             kr_setting_defs[id].flag, kr_setting_defs[id].metavar);
			return -1;
		}
		int unset;
		val = expand_k8s_ref(val, &unset);
		if (unset)
			continue; /* "$(NAME)" with NAME unset: as if not given */
		if (check_text((kr_setting_id)id, val, "command line", err))
			return -1;
		if (id == KR_S_DOCUMENT_ID) {
			/* `--document-id $(KERUTA_DOCUMENT_ID)` (seed 004) carries the
			 * environment's comma-separated list */
			for (const char *p = val; *p;) {
				size_t n = strcspn(p, ",");
				if (n) {
					char *item = kr_strndup(p, n);
					kr_settings_set(s, (kr_setting_id)id, item);
					free(item);
				}
				p += n + (p[n] == ',');
			}
			continue;
		}
		kr_settings_set(s, (kr_setting_id)id, val);
	}
	return 0;
}

int kr_settings_apply_env(kr_settings *s, kr_error *err)
{
	for (int id = 0; id < KR_S_COUNT; id++) {
		value *v = &s->v[id];
		if (v->set)
			continue;
		for (int e = 0; e < 3 && kr_setting_defs[id].env[e]; e++) {
			const char *name = kr_setting_defs[id].env[e];
			const char *text = getenv(name);
			if (!text || !*text)
				continue;
			char where[128];
			snprintf(where, sizeof(where), "environment variable %s", name);
			if (kr_setting_defs[id].type == KR_ST_LIST) {
				const char *p = text;
				while (*p) {
					const char *end = strchr(p, ',');
					size_t n = end ? (size_t)(end - p) : strlen(p);
					char *item = kr_strndup(p, n);
					if (*item)
						list_add(v, item);
					free(item);
					p += n;
					if (*p == ',')
						p++;
				}
			} else {
				if (check_text((kr_setting_id)id, text, where, err))
					return -1;
				v->text = kr_strdup(text);
			}
			v->set = 1;
			v->owned_source = kr_asprintf("env %s", name);
			v->source = v->owned_source;
			break;
		}
	}
	return 0;
}

int kr_settings_check_node(const char *file, const kr_node *settings, kr_error *err)
{
	const char *names[KR_S_COUNT];
	size_t n = 0;
	for (int k = 0; k < KR_S_COUNT; k++)
		if (kr_setting_defs[k].name)
			names[n++] = kr_setting_defs[k].name;
	for (size_t i = 0; i < settings->n; i++) {
		const kr_node *key = settings->keys[i], *val = settings->items[i];
		int id = -1;
		for (int k = 0; k < KR_S_COUNT; k++)
			if (kr_setting_defs[k].name && strcmp(kr_setting_defs[k].name, key->value) == 0)
				id = k;
		if (id < 0) {
			kr_error_unknown_key(err, file, key, "in 'settings'", names, n);
			return -1;
		}
		kr_setting_type type = kr_setting_defs[id].type;
		const kr_node *bad = NULL;
		const char *want = NULL;
		if (type == KR_ST_LIST) {
			if (val->type != KR_NODE_SEQ)
				bad = val, want = "a list";
			for (size_t j = 0; !bad && j < val->n; j++)
				if (val->items[j]->type != KR_NODE_SCALAR)
					bad = val->items[j], want = "a string";
		} else if (type == KR_ST_MAP) {
			if (val->type != KR_NODE_MAP)
				bad = val, want = "a mapping";
			for (size_t j = 0; !bad && j < val->n; j++)
				if (val->items[j]->type != KR_NODE_SCALAR)
					bad = val->items[j], want = "a string";
		} else if (val->type != KR_NODE_SCALAR || kr_node_is_null(val)) {
			bad = val, want = "a single value";
		} else {
			char where[512];
			snprintf(where, sizeof(where), "%s:%d:%d", file, val->line, val->col);
			if (check_text((kr_setting_id)id, val->value, where, err))
				return -1;
		}
		if (bad) {
			kr_error_set(err, KR_EXIT_USAGE, "%s:%d:%d: setting '%s' must be %s", file,
			             bad->line, bad->col, key->value, want);
			return -1;
		}
	}
	return 0;
}

int kr_settings_apply_pipeline(kr_settings *s, const char *file, const kr_node *settings,
                               kr_error *err)
{
	if (!settings)
		return 0;
	if (kr_settings_check_node(file, settings, err))
		return -1;
	for (size_t i = 0; i < settings->n; i++) {
		const kr_node *key = settings->keys[i], *val = settings->items[i];
		for (int id = 0; id < KR_S_COUNT; id++) {
			if (!kr_setting_defs[id].name || strcmp(kr_setting_defs[id].name, key->value))
				continue;
			value *v = &s->v[id];
			if (v->set)
				break;
			if (kr_setting_defs[id].type == KR_ST_LIST) {
				for (size_t j = 0; j < val->n; j++)
					list_add(v, val->items[j]->value);
			} else if (kr_setting_defs[id].type == KR_ST_MAP) {
				v->map = val;
			} else {
				v->text = kr_strdup(val->value);
			}
			v->set = 1;
			v->source = "pipeline";
		}
	}
	return 0;
}

/* Defaults that depend on where the agent runs.  Kubernetes sets
 * KUBERNETES_SERVICE_HOST in every container: a pod has its volume at
 * /work and reads /dev/termination-log; on anyone's laptop nothing is
 * written outside the work dir unless asked. */
static const struct {
	kr_setting_id id;
	const char *in_pod, *elsewhere;
} placed[] = {
        {KR_S_WORK_DIR, "/work", "keruta-work"},
        {KR_S_TERMINATION_LOG, "/dev/termination-log", NULL},
};

int kr_settings_finish(kr_settings *s, kr_error *err)
{
	const char *k8s = getenv("KUBERNETES_SERVICE_HOST");
	int in_pod = k8s && *k8s;
	for (size_t i = 0; i < sizeof(placed) / sizeof(placed[0]); i++) {
		value *v = &s->v[placed[i].id];
		const char *def = in_pod ? placed[i].in_pod : placed[i].elsewhere;
		if (v->set || !def)
			continue;
		v->text = kr_strdup(def);
		v->set = 1;
		v->source = in_pod ? "default in a pod" : "default";
	}
	for (int id = 0; id < KR_S_COUNT; id++) {
		value *v = &s->v[id];
		if (v->set || !kr_setting_defs[id].def)
			continue;
		v->text = kr_strdup(kr_setting_defs[id].def);
		v->set = 1;
		v->source = "default";
	}
	/* `--work-dir "$DIR"` with DIR unset: "" would be the current
	 * directory for the task but / for .keruta */
	const value *w = &s->v[KR_S_WORK_DIR];
	if (w->set && w->text && !*w->text) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "the work dir is empty (%s); give the directory the task works in, or "
		             "leave it out for the default",
		             w->source);
		return -1;
	}
	return 0;
}

const char *kr_settings_get(const kr_settings *s, kr_setting_id id)
{
	return s->v[id].text;
}

int kr_settings_bool(const kr_settings *s, kr_setting_id id)
{
	int b = 0;
	if (s->v[id].text)
		kr_parse_bool(s->v[id].text, &b);
	return b;
}

uint64_t kr_settings_u64(const kr_settings *s, kr_setting_id id)
{
	const char *t = s->v[id].text;
	uint64_t u = 0;
	int64_t i = 0;
	if (!t)
		return 0;
	switch (kr_setting_defs[id].type) {
	case KR_ST_DURATION: kr_parse_duration_ms(t, &u); return u;
	case KR_ST_SIZE: kr_parse_size(t, &u); return u;
	case KR_ST_INT: kr_parse_int64(t, &i); return i < 0 ? 0 : (uint64_t)i;
	default: return 0;
	}
}

size_t kr_settings_list_count(const kr_settings *s, kr_setting_id id)
{
	return s->v[id].n;
}

const char *kr_settings_list_item(const kr_settings *s, kr_setting_id id, size_t i)
{
	return i < s->v[id].n ? s->v[id].items[i] : NULL;
}

const char *kr_settings_map_get(const kr_settings *s, kr_setting_id id, const char *key)
{
	const kr_node *n = kr_node_get(s->v[id].map, key);
	return n && n->type == KR_NODE_SCALAR ? n->value : NULL;
}

const char *kr_settings_source(const kr_settings *s, kr_setting_id id)
{
	return s->v[id].set ? s->v[id].source : "unset";
}

void kr_settings_help(unsigned command, kr_buf *out)
{
	for (int id = 0; id < KR_S_COUNT; id++) {
		const kr_setting_def *d = &kr_setting_defs[id];
		if (!(d->commands & command) || (!d->flag && !d->env[0]))
			continue;
		char left[96];
		if (d->flag)
			snprintf(left, sizeof(left), "  %s%s%s", d->flag, d->metavar ? " " : "",
			         d->metavar ? d->metavar : "");
		else
			snprintf(left, sizeof(left), "  (environment)");
		kr_buf_addf(out, "%-34s %s", left, d->help);
		int first = 1;
		for (int e = 0; e < 3 && d->env[e]; e++) {
			kr_buf_addf(out, "%s%s", first ? " [env " : ", ", d->env[e]);
			first = 0;
		}
		if (!first)
			kr_buf_adds(out, "]");
		if (d->def)
			kr_buf_addf(out, " (default %s)", d->def);
		kr_buf_adds(out, "\n");
	}
}

int kr_settings_api_token(const kr_settings *s, char **out, kr_error *err)
{
	*out = NULL;
	const char *file = kr_settings_get(s, KR_S_API_TOKEN_FILE);
	char *token;
	if (file && *file) {
		size_t n = 0;
		token = kr_read_file(file, 65536, &n, KR_EXIT_USAGE, "API token file", err);
		if (!token)
			return -1;
		while (n && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' '))
			token[--n] = '\0';
		if (n == 0 || strlen(token) != n) {
			kr_error_set(err, KR_EXIT_USAGE, "API token file %s %s; put the token in it", file,
			             n == 0 ? "is empty" : "holds a NUL byte");
			free(token);
			return -1;
		}
	} else {
		const char *v = kr_settings_get(s, KR_S_API_TOKEN);
		token = v ? kr_strdup(v) : NULL;
	}
	/* it goes into a request header and is never printed: say where it
	 * came from */
	char what[4200];
	snprintf(what, sizeof(what), "the API token (%s)", file && *file ? file : "KERUTA_API_TOKEN");
	if (kr_token_check(what, token, err)) {
		free(token);
		return -1;
	}
	*out = token;
	return 0;
}
