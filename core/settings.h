/*
 * settings.h - every option of every command in one table.
 *
 * Each setting is read, in order of precedence, from a command-line flag,
 * an environment variable, the pipeline file's `settings:` block, and a
 * built-in default.  The table in settings.c is the only place a default
 * is written down; --help is generated from it, and tests/man_options.sh
 * fails when doc/keruta-agent.1 misses one of its options.
 */
#ifndef KR_SETTINGS_H
#define KR_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "util.h"

typedef enum kr_setting_id {
	KR_S_PIPELINE,
	KR_S_BACKEND,
	KR_S_TASK_ID,
	KR_S_TASK_FILE,
	KR_S_API_URL,
	KR_S_API_TOKEN,
	KR_S_API_TOKEN_FILE,
	KR_S_CA_FILE,
	KR_S_INSECURE,
	KR_S_REPOSITORY_ID,
	KR_S_DOCUMENT_ID,
	KR_S_SOURCE_POD,
	KR_S_WORK_DIR,
	KR_S_ARTIFACTS_DIR,
	KR_S_EVENTS_FILE,
	KR_S_PLUGIN_DIR,
	KR_S_LOG_LEVEL,
	KR_S_LOG_FORMAT,
	KR_S_GRACE_PERIOD,
	KR_S_TERMINATION_LOG,
	KR_S_SECRETS,
	KR_S_API_CONNECT_TIMEOUT,
	KR_S_API_TIMEOUT,
	KR_S_API_RETRIES,
	KR_S_API_RETRY_MAX_TIME,
	KR_S_API_PATHS,
	KR_S_STATUS_NAMES,
	KR_S_LOG_BATCH_LINES,
	KR_S_LOG_BATCH_BYTES,
	KR_S_LOG_BATCH_INTERVAL,
	KR_S_LOG_MAX_LINE,
	KR_S_LOG_MAX_TOTAL,
	KR_S_MAX_DOWNLOAD,
	KR_S_PASS_API_TOKEN,
	KR_S_RUN_AS,
	KR_S_FINAL_STATUS,
	KR_S_GIT_CACHE,
	/* ---- launcher (render, dispatch): launcher/ owns this section ---- */
	KR_S_K8S_IMAGE,
	KR_S_K8S_IMAGE_PULL_POLICY,
	KR_S_K8S_AGENT_COMMAND,
	KR_S_K8S_NAMESPACE,
	KR_S_KUBECONFIG,
	KR_S_K8S_CONTEXT,
	KR_S_K8S_SERVICE_ACCOUNT,
	KR_S_K8S_WORK_VOLUME,
	KR_S_K8S_PVC_SIZE,
	KR_S_K8S_PVC_ACCESS_MODE,
	KR_S_K8S_STORAGE_CLASS,
	KR_S_K8S_SINGLE_CONTAINER,
	KR_S_K8S_OBJECTS,
	KR_S_K8S_NODE_NAME,
	KR_S_K8S_CLEANUP_JOB,
	KR_S_K8S_CPU_REQUEST,
	KR_S_K8S_MEMORY_REQUEST,
	KR_S_K8S_CPU_LIMIT,
	KR_S_K8S_MEMORY_LIMIT,
	KR_S_K8S_NODE_SELECTOR,
	KR_S_K8S_TOLERATIONS,
	KR_S_K8S_BACKOFF_LIMIT,
	KR_S_K8S_TTL_AFTER_FINISHED,
	KR_S_K8S_ACTIVE_DEADLINE,
	KR_S_K8S_CONCURRENCY,
	KR_S_K8S_PENDING_INTERVAL,
	KR_S_K8S_CRASHLOOP_AFTER,
	KR_S_K8S_IMAGE_ERROR_AFTER,
	KR_S_K8S_CONFIG_ERROR_AFTER,
	KR_S_K8S_DELETE_PVC,
	KR_S_K8S_ONCE,
	KR_S_K8S_GIT_CACHE_VOLUME,
	/* ---- end of the launcher section ---- */
	KR_S_COUNT
} kr_setting_id;

typedef enum kr_setting_type {
	KR_ST_STRING,
	KR_ST_BOOL,
	KR_ST_INT,
	KR_ST_DURATION,
	KR_ST_SIZE,
	KR_ST_LIST, /* flag repeatable; env comma-separated            */
	KR_ST_MAP   /* pipeline file only                              */
} kr_setting_type;

/* Commands a setting applies to (for --help). */
#define KR_CMD_EXECUTE  0x01u
#define KR_CMD_INIT     0x02u
#define KR_CMD_RUN      0x04u
#define KR_CMD_CLEANUP  0x08u
#define KR_CMD_VALIDATE 0x10u
#define KR_CMD_PLUGINS  0x20u
/* ---- launcher section ---- */
#define KR_CMD_RENDER   0x40u
#define KR_CMD_DISPATCH 0x80u
#define KR_CMD_LAUNCH (KR_CMD_RENDER | KR_CMD_DISPATCH)
/* ---- end of the launcher section ---- */
#define KR_CMD_TASKS (KR_CMD_EXECUTE | KR_CMD_INIT | KR_CMD_RUN | KR_CMD_CLEANUP)
#define KR_CMD_ALL 0xffu

typedef struct kr_setting_def {
	const char *name;      /* key in `settings:`; NULL: not allowed there */
	const char *flag;      /* "--api-url", or NULL                         */
	const char *env[3];    /* environment variables, first wins            */
	kr_setting_type type;
	const char *def;       /* default in text form, or NULL                */
	unsigned commands;     /* KR_CMD_* it is shown for                     */
	const char *metavar;
	const char *help;
} kr_setting_def;

extern const kr_setting_def kr_setting_defs[KR_S_COUNT];
/* The row of one setting (the modules' way to the table: core/host.h). */
const kr_setting_def *kr_setting_def_get(kr_setting_id id);

typedef struct kr_settings kr_settings;

kr_settings *kr_settings_new(void);
void kr_settings_free(kr_settings *s);

/* Parse argv from argv[first] on (the command's own arguments).  Flags
 * not in the table are errors.  Non-option arguments are returned in
 * *rest (owned by argv).  Also applies the $(NAME) fallback. */
int kr_settings_parse_args(kr_settings *s, unsigned command, int argc, char **argv, int first,
                           char ***rest, int *n_rest, kr_error *err);
/* Fill from the environment what no flag set. */
int kr_settings_apply_env(kr_settings *s, kr_error *err);
/* Fill from a pipeline's settings block what neither flag nor env set. */
int kr_settings_apply_pipeline(kr_settings *s, const char *file, const kr_node *settings,
                               kr_error *err);
/* Fill the rest with defaults and check every value's type. */
int kr_settings_finish(kr_settings *s, kr_error *err);

/* Set a value as if from a flag (tests and the command dispatcher). */
void kr_settings_set(kr_settings *s, kr_setting_id id, const char *value);

const char *kr_settings_get(const kr_settings *s, kr_setting_id id);
/* The keruta-api token: --api-token-file's content (a regular file,
 * trailing white space cut) when given, else --api-token/KERUTA_API_TOKEN.
 * 0 with *out the caller's copy (NULL: no token), or -1 with err set
 * (exit 2): an empty file, a NUL byte, a control character. */
int kr_settings_api_token(const kr_settings *s, char **out, kr_error *err);
int kr_settings_bool(const kr_settings *s, kr_setting_id id);
uint64_t kr_settings_u64(const kr_settings *s, kr_setting_id id); /* ms, bytes, int */
size_t kr_settings_list_count(const kr_settings *s, kr_setting_id id);
const char *kr_settings_list_item(const kr_settings *s, kr_setting_id id, size_t i);
/* A map setting's value from a `settings:` mapping key, or NULL. */
const char *kr_settings_map_get(const kr_settings *s, kr_setting_id id, const char *key);
/* Where the value came from: "flag", "env NAME", "pipeline", "default". */
const char *kr_settings_source(const kr_settings *s, kr_setting_id id);

/* Print the options of a command, for --help. */
void kr_settings_help(unsigned command, kr_buf *out);

/* Validates the `settings:` block of a pipeline, so that the pipeline
 * reader and the command line share one option table.  0 on success. */
int kr_settings_check_node(const char *file, const kr_node *settings, kr_error *err);

#endif
