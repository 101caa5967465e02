/*
 * keruta/plugin.h - the stage plugin interface of keruta-agent.
 *
 * A stage plugin is a shared object that exports exactly one data symbol,
 * `keruta_plugin`, of type `const kr_plugin`.  KR_PLUGIN_DEFINE() below
 * declares it with the right name, visibility and ABI version.
 *
 * Build one out of tree with:
 *
 *     cc -shared -fPIC $(pkg-config --cflags keruta-agent-plugin) \
 *        myplugin.c -o myplugin.so
 *
 * Versioning.  The ABI is versioned as MAJOR.MINOR.  The agent refuses a
 * plugin whose major differs from its own, and a plugin built against a
 * newer minor than the agent knows.  Structs in this header only ever grow
 * at the end within a major, and each one's size travels with it: the
 * descriptor's `size`, the option rows' `option_size` (kept in the
 * descriptor), kr_process's and kr_process_result's `size`, kr_services's
 * `size`.  Each side reads and writes the other's structs only up to
 * min(its size, the other's); members a plugin's older structs lack count
 * as zero, and bytes of a larger struct past what the agent knows are
 * ignored.  A plugin checks newer kr_services members with
 * KR_SERVICES_HAS before it calls them.  A plugin built against 1.0 still
 * loads in every 1.x agent.
 *
 * Ownership.  The agent copies every string a plugin hands it.  A plugin
 * never frees memory it did not allocate, with one exception documented at
 * kr_services.free.  Strings the agent returns stay valid until the stage's
 * run() returns, unless a member says otherwise.
 *
 * Threads.  init, run and fini are called from the agent's main thread.
 * Services may be called from any thread the plugin starts, as long as the
 * thread is joined before run() or fini() returns.
 *
 * This header is self-contained: it includes nothing but the C library.
 */
#ifndef KERUTA_PLUGIN_H
#define KERUTA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KR_ABI_MAJOR 1
#define KR_ABI_MINOR 3

/* Name of the one symbol a plugin exports. */
#define KR_PLUGIN_SYMBOL "keruta_plugin"

/* Return codes of plugin callbacks and of services. */
typedef enum kr_status {
	KR_OK = 0,
	KR_SKIPPED = 1,    /* run(): nothing to do; the stage counts as passed */
	KR_NOT_FOUND = 2,  /* services: what was asked for does not exist     */
	KR_FAILED = -1,    /* failed; the reason was given with fail()        */
	KR_CANCELLED = -2  /* stopped by a timeout or a signal to the agent   */
} kr_status;

typedef enum kr_log_level {
	KR_LOG_DEBUG = 0,
	KR_LOG_INFO = 1,
	KR_LOG_WARN = 2,
	KR_LOG_ERROR = 3
} kr_log_level;

/* Types of the options a plugin accepts under `with:` in the pipeline file. */
typedef enum kr_option_type {
	KR_OPT_STRING = 1,
	KR_OPT_INT,      /* signed 64-bit integer                               */
	KR_OPT_BOOL,     /* true/false                                          */
	KR_OPT_DURATION, /* "30s", "10m", "2h", "500ms" or bare seconds; in ms  */
	KR_OPT_SIZE,     /* "100MB", "64KiB", "1G" or bare bytes; in bytes      */
	KR_OPT_LIST,     /* sequence of strings                                 */
	KR_OPT_MAP       /* mapping of string keys to string values             */
} kr_option_type;

/*
 * One row of a plugin's option table; the table ends with a row whose name
 * is NULL ({0}).  The agent checks the table when it loads the plugin: a
 * name that is not letters, digits, '-', '_' and '.', a name used twice, an
 * unknown type, a default that does not parse for its type, a default on a
 * list, a map or a required option, or a bound field whose size does not
 * fit its type refuses the plugin with a message naming the option.  It
 * checks every stage's `with:` block against the table before any
 * plugin's init runs: unknown keys, wrong types and missing required
 * options are configuration errors reported with file, line and column.
 *
 * Write rows with designated initializers, as in the example at
 * KR_OPT_FIELD below: rows grow at the end within a major (the 1.0 row
 * ended at `help`), and a positional initializer leaves new members out.
 */
typedef struct kr_option {
	const char *name;
	kr_option_type type;
	const char *default_value; /* in YAML text form; NULL: no default   */
	int required;              /* non-zero: the stage must set it        */
	const char *help;          /* one line, shown by `keruta-agent plugins -v` */

	/*
	 * Since 1.3.  Where svc->opt_bind() writes the option's value in the
	 * plugin's own state struct: offsetof and sizeof of its member, set
	 * with KR_OPT_FIELD.  field_size 0: the option is not bound, read it
	 * with the opt_* services.  The member's type follows the option's:
	 *
	 *   KR_OPT_STRING    const char *   (lives as long as the agent)
	 *   KR_OPT_INT       int64_t
	 *   KR_OPT_BOOL      int            (0 or 1)
	 *   KR_OPT_DURATION  uint64_t       (milliseconds)
	 *   KR_OPT_SIZE      uint64_t       (bytes)
	 *   KR_OPT_LIST      const char *const *  (the items, NULL-ended)
	 *   KR_OPT_MAP       const char *const *  (key, value, key, value, ...,
	 *                                          NULL-ended)
	 *
	 * Lists and maps live as long as the agent, too.  A list or map the
	 * stage did not set leaves its member alone, like any unset option
	 * without a default (see opt_bind).
	 */
	size_t offset;
	uint32_t field_size;
} kr_option;

/* Bind a row to MEMBER of the plugin's state struct TYPE:
 *     {.name = "retries", .type = KR_OPT_INT, .default_value = "3",
 *      .help = "...", KR_OPT_FIELD(my_state, retries)}, */
#define KR_OPT_FIELD(type, member)                                             \
	.offset = offsetof(type, member), .field_size = sizeof(((type *)0)->member)

/* The task context: opaque, owned by the agent for the whole run. */
typedef struct kr_task kr_task;

/* A stage's validated `with:` block: opaque, owned by the agent. */
typedef struct kr_config kr_config;

/*
 * Typed fields of the task context, read with task_get() and written with
 * task_set().  Keys that contain a dot ("clone.depth", "myplugin.x") form a
 * free key/value store stages use to leave values for later stages; any
 * other key not listed here is refused, so a typo fails loudly.
 */
#define KR_TASK_ID             "id"
#define KR_TASK_TITLE          "title"
#define KR_TASK_DESCRIPTION    "description"
#define KR_TASK_PRIORITY       "priority"
#define KR_TASK_STATUS         "status"
#define KR_TASK_CREATED_AT     "created_at"
#define KR_TASK_UPDATED_AT     "updated_at"
#define KR_TASK_REPOSITORY_ID  "repository_id"
#define KR_TASK_REPOSITORY_URL "repository_url"
#define KR_TASK_REPOSITORY_REF "repository_ref"
#define KR_TASK_PARENT_ID      "parent_task_id"
#define KR_TASK_WORK_DIR       "work_dir"
#define KR_TASK_API_URL        "api_url"
#define KR_TASK_COMMIT         "commit"
#define KR_TASK_EXIT_CODE      "exit_code"
#define KR_TASK_FAILED_STAGE   "failed_stage"
#define KR_TASK_REASON         "reason"
#define KR_TASK_SCRIPT_INSTALL "script_install"
#define KR_TASK_SCRIPT_EXECUTE "script_execute"
#define KR_TASK_SCRIPT_CLEANUP "script_cleanup"

/*
 * Free keys the status report reads (keruta-api's status body carries
 * them as "errorCode" and "progress"): a stage that knows why the task
 * failed sets KR_TASK_ERROR_CODE (SCRIPT_FETCH_ERROR, SCRIPT_WRITE_ERROR,
 * EXECUTION_ERROR, ...); the agent sets the progress, 0-100.
 */
#define KR_TASK_ERROR_CODE      "status.error_code"
#define KR_TASK_STATUS_PROGRESS "status.progress"

/* Lists of the task context, read with task_list_count()/task_list_item(). */
#define KR_TASK_DOCUMENT_IDS "document_ids" /* ids of the task's documents  */
#define KR_TASK_ENV          "env"          /* extra "NAME=VALUE" entries   */
#define KR_TASK_ARTIFACTS    "artifacts"    /* names uploaded by collect    */
#define KR_TASK_COMMAND      "command"      /* the task's own argv, if any  */

/*
 * The task fields a task's scripts see as environment variables, as
 * X(NAME, KEY) entries: the install and execute stages give them to their
 * scripts, and `keruta-agent render` to the Job's containers.
 */
#define KR_TASK_ENV_FIELDS(X)                          \
	X("KERUTA_TASK_ID", KR_TASK_ID)                  \
	X("KERUTA_TASK_TITLE", KR_TASK_TITLE)            \
	X("KERUTA_TASK_DESCRIPTION", KR_TASK_DESCRIPTION) \
	X("KERUTA_TASK_PRIORITY", KR_TASK_PRIORITY)      \
	X("KERUTA_TASK_STATUS", KR_TASK_STATUS)          \
	X("KERUTA_TASK_CREATED_AT", KR_TASK_CREATED_AT)  \
	X("KERUTA_TASK_UPDATED_AT", KR_TASK_UPDATED_AT)  \
	X("KERUTA_PARENT_TASK_ID", KR_TASK_PARENT_ID)    \
	X("KERUTA_REPOSITORY_ID", KR_TASK_REPOSITORY_ID)

/* What a child process's output does; see kr_process. */
#define KR_PROC_CAPTURE 0x1u /* pass stdout/stderr through to the agent's own
                                and ship each line to the backend, masked  */
#define KR_PROC_QUIET   0x2u /* discard the child's output                 */

/* A child process to run; see kr_services.run_process. */
typedef struct kr_process {
	uint32_t size;           /* sizeof(kr_process) as the plugin built it  */
	const char *const *argv; /* argv[0] is searched in PATH; NULL-ended    */
	const char *cwd;         /* NULL: the work dir                         */
	const char *const *env;  /* extra "NAME=VALUE" over the agent's env;
	                            NULL-ended or NULL                         */
	uint64_t timeout_ms;     /* 0: only the stage's own deadline applies   */
	uint32_t flags;          /* KR_PROC_*                                  */
	const char *label;       /* names the child in log lines, e.g. "install" */
} kr_process;

/* How a child process ended. */
typedef struct kr_process_result {
	uint32_t size;     /* sizeof(kr_process_result) as the plugin built it */
	int exit_code;     /* exit status if it exited, else -1                */
	int signal;        /* terminating signal, else 0                        */
	int timed_out;     /* killed because its timeout or the stage's passed  */
	int cancelled;     /* killed because the agent was asked to stop        */
	int oom_killed;    /* the kernel's OOM killer ended it                  */
} kr_process_result;

/*
 * Services the agent lends to plugins.  A plugin reaches the agent only
 * through this table; it never links against the executable.
 *
 * `size` is sizeof(kr_services) as the agent was built; before calling a
 * member added in a later minor, check KR_SERVICES_HAS(svc, member).
 *
 * A NULL task, name, path or struct where a service needs one is refused
 * (KR_FAILED with a reason, NULL, 0 or KR_NOT_FOUND), never followed.
 */
typedef struct kr_services {
	uint32_t size;
	uint32_t abi_major;
	uint32_t abi_minor;

	/* Log a line under the stage's name.  Secrets are masked. */
	void (*log)(kr_task *task, kr_log_level level, const char *fmt, ...)
	        __attribute__((format(printf, 3, 4)));

	/* Record why the stage failed; the last call wins.  Returns KR_FAILED
	 * so that `return svc->fail(t, "...")` reads naturally.  In init,
	 * where there is no task yet, pass NULL as the task. */
	int (*fail)(kr_task *task, const char *fmt, ...)
	        __attribute__((format(printf, 2, 3)));

	/* Options of the stage's `with:` block, defaults applied, one at a
	 * time (opt_bind below fills them all at once).  Strings live as long
	 * as the agent; numbers are returned through *out; KR_NOT_FOUND when
	 * the option is unset and has no default. */
	const char *(*opt_string)(const kr_config *cfg, const char *name);
	int (*opt_int)(const kr_config *cfg, const char *name, int64_t *out);
	int (*opt_bool)(const kr_config *cfg, const char *name, int *out);
	int (*opt_duration_ms)(const kr_config *cfg, const char *name, uint64_t *out);
	int (*opt_size)(const kr_config *cfg, const char *name, uint64_t *out);
	size_t (*opt_list_count)(const kr_config *cfg, const char *name);
	const char *(*opt_list_item)(const kr_config *cfg, const char *name, size_t i);
	size_t (*opt_map_count)(const kr_config *cfg, const char *name);
	const char *(*opt_map_key)(const kr_config *cfg, const char *name, size_t i);
	const char *(*opt_map_value)(const kr_config *cfg, const char *name, size_t i);

	/* The task context.  task_get returns NULL for an unset field. */
	const char *(*task_get)(const kr_task *task, const char *key);
	int (*task_set)(kr_task *task, const char *key, const char *value);
	size_t (*task_list_count)(const kr_task *task, const char *list);
	const char *(*task_list_item)(const kr_task *task, const char *list, size_t i);
	int (*task_list_add)(kr_task *task, const char *list, const char *value);

	/* Deadline of the running stage: milliseconds left (UINT64_MAX when it
	 * has none), and whether the stage should stop now (timeout or signal).
	 * Long loops in a plugin check cancelled() and return KR_CANCELLED. */
	uint64_t (*time_left_ms)(const kr_task *task);
	int (*cancelled)(const kr_task *task);

	/* Never print `value`: it is replaced by "***" in every log line and
	 * every line of child output the agent prints or ships. */
	int (*add_secret)(kr_task *task, const char *value);

	/* Run a child process to its end in its own process group.  Output,
	 * timeout, cancellation and reaping are handled by the agent. */
	int (*run_process)(kr_task *task, const kr_process *proc,
	                   kr_process_result *result);

	/*
	 * The backend: keruta-api, or local files when the agent runs without
	 * a server.  A stage never needs to know which one is in use.
	 */

	/* Fill repository_url and repository_ref from the repository record. */
	int (*fetch_repository)(kr_task *task);
	/* Write a script ("install" for the repository's install script) to
	 * dest_path.  KR_NOT_FOUND when there is none. */
	int (*fetch_script)(kr_task *task, const char *which, const char *dest_path);
	/* Write a document's content to dest_path, at most max_bytes (0: the
	 * agent's default cap).  *name_out receives the document's name as the
	 * backend gives it, unchecked; free it with svc->free. */
	int (*fetch_document)(kr_task *task, const char *document_id,
	                      const char *dest_path, uint64_t max_bytes,
	                      char **name_out);
	/* Upload (API) or copy (local) the file at path as artifact `name`.
	 * Since 1.1, KR_SKIPPED when the task's upload record shows the same
	 * name, size and sha256 already confirmed (each artifact goes once,
	 * however often collect runs). */
	int (*upload_artifact)(kr_task *task, const char *path, const char *name);
	/* Report the task's status, with a message for FAILED. */
	int (*report_status)(kr_task *task, const char *status, const char *message);
	/* Ship one line of output (no newline) under a stream name. */
	void (*ship_log)(kr_task *task, const char *stream, const char *line, size_t len);

	/* Free memory a service documented as the caller's. */
	void (*free)(void *ptr);

	/*
	 * Since 1.1.  The task's own area on the work volume,
	 * WORK_DIR/.keruta/tasks/<task id>/, and the one way a stage reaches
	 * anything under .keruta.  `rel` ("" or NULL for the area itself) is
	 * walked one component at a time, never through a symlink; with
	 * KR_AREA_CREATE missing directories are made and whatever stands in
	 * their place (a symlink or file a repository committed) is removed.
	 * KR_AREA_SHOW also points .keruta/doc and .keruta/documents, the
	 * names task scripts use, at this task's own doc/ and documents/: pass
	 * it before starting task code.  KR_AREA_WORK_DIR takes rel below the
	 * work dir itself (read only: no CREATE, no SHOW).
	 *
	 * area_open returns a directory descriptor the caller closes, or -1
	 * with errno set (ENOENT: not there); when creating, a failure has
	 * already been given to fail().  area_path returns the checked path
	 * (free it with svc->free), for what needs a name: a script to run, a
	 * file a backend writes.  Files the stage then makes there are opened
	 * with O_NOFOLLOW (or O_EXCL after unlinking).
	 */
	int (*area_open)(kr_task *task, const char *rel, uint32_t flags);
	char *(*area_path)(kr_task *task, const char *rel, uint32_t flags);

	/*
	 * Since 1.2.  The one way a stage reads a file it was given by name
	 * (a credentials file, a known_hosts file, a script): the whole file,
	 * NUL-terminated, its length in *len if len is not NULL; free it with
	 * svc->free.  The file is opened non-blocking and must be a regular
	 * file: a FIFO, socket, device or directory is refused without being
	 * read (a FIFO would block the stage forever), and so is a file of
	 * more than max bytes (0: the agent's max_download).
	 *
	 * On error: NULL with errno set (EINVAL: not a regular file, EISDIR,
	 * EFBIG: over max, else open(2)'s) and the reason, without the path
	 * ("is not a regular file (a FIFO, socket or device); give a file"),
	 * in why (why_size bytes, may be 0).  fail() is not called: the stage
	 * names the file in its own words and says what to do.
	 */
	char *(*read_file)(kr_task *task, const char *path, uint64_t max, size_t *len, char *why,
	                   size_t why_size);

	/*
	 * Since 1.3.  Write the value of every bound option (a row with
	 * KR_OPT_FIELD) into `state`, a struct of state_size bytes the plugin
	 * made, as init's first step.  The values were checked against their
	 * types before init was called; an option the stage did not set and
	 * that has no default leaves its member as it was, so a calloc'ed
	 * state reads 0 or NULL there.  Every row is checked before any
	 * member is written: a row whose member lies past state_size writes
	 * nothing and fails (fail() called, KR_FAILED returned).  Call it in
	 * init only; the plugin then checks what it needs to and sets *state
	 * once the whole state is good, freeing it otherwise.
	 */
	int (*opt_bind)(const kr_config *cfg, void *state, size_t state_size);
} kr_services;

#define KR_AREA_CREATE   0x1u
#define KR_AREA_SHOW     0x2u
#define KR_AREA_WORK_DIR 0x4u

#define KR_SERVICES_HAS(svc, member)                                           \
	((svc)->size >= offsetof(kr_services, member) + sizeof((svc)->member))

/*
 * The descriptor.  abi_major, abi_minor and size come first and never move,
 * so the agent can read them from a plugin of any version.
 */
typedef struct kr_plugin {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t size;             /* sizeof(kr_plugin) as the plugin was built */
	const char *name;          /* the name pipeline files use               */
	const char *version;       /* the plugin's own version                  */
	const char *description;   /* one line                                  */
	const kr_option *options;  /* NULL: the stage accepts no `with:` keys   */

	/*
	 * Called once per pipeline stage that uses the plugin, after all
	 * options of all stages were validated.  *state is the plugin's own;
	 * it is handed to run and fini.  On failure call fail() and return
	 * KR_FAILED: the agent stops before any stage runs, and fini is not
	 * called for this stage, so init frees what it made and leaves
	 * *state alone (set it last, once the state is complete).  May be
	 * NULL.
	 */
	int (*init)(const kr_services *svc, const kr_config *cfg, void **state);

	/* Do the stage's work on the task.  Required.  Returns KR_OK, or
	 * KR_SKIPPED when there was nothing to do; both pass.  Anything else
	 * fails the stage: KR_FAILED after fail(), KR_CANCELLED when it
	 * stopped because cancelled() said so.  A positive code other than
	 * KR_SKIPPED (KR_NOT_FOUND included) is taken as a failure. */
	int (*run)(const kr_services *svc, void *state, kr_task *task);

	/* Release what init made; join any thread the plugin started.  Called
	 * for every stage whose init succeeded, also after failures.  May be
	 * NULL.  The agent never unloads a plugin before it exits. */
	void (*fini)(const kr_services *svc, void *state);

	/* Since 1.3: sizeof(kr_option) as the plugin was built, the distance
	 * between its option rows.  A descriptor too short to have this member
	 * (or 0 here) has rows of the 1.0 layout, which ends at `help`. */
	uint32_t option_size;
} kr_plugin;

/*
 * A name that came from outside (keruta-api's script filename, the name a
 * task script gave an artifact) as one harmless file name: its last path
 * component ('/' or '\\'), without leading dots, letters, digits, '.', '_'
 * and '-' kept and anything else made '_', at most 100 bytes; `fallback`
 * when nothing is left.  out holds cap bytes (cap > 0).  The one rule the
 * agent and the built-in stages use, so a name never picks a path.
 */
static inline void kr_safe_file_name(const char *given, const char *fallback, char *out,
                                     size_t cap)
{
	const char *base = given;
	for (const char *p = given; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	while (*base == '.')
		base++;
	size_t n = 0;
	for (const char *p = base; *p && n + 1 < cap && n < 100; p++) {
		char c = *p;
		int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		         c == '.' || c == '_' || c == '-';
		out[n++] = ok ? c : '_';
	}
	if (!n)
		for (const char *p = fallback; *p && n + 1 < cap; p++)
			out[n++] = *p;
	out[n] = '\0';
}

#if defined(__GNUC__)
#define KR_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define KR_PLUGIN_EXPORT
#endif

/*
 * Declare the plugin's descriptor:
 *
 *     KR_PLUGIN_DEFINE(
 *         .name = "hello", .version = "1.0",
 *         .description = "writes a greeting",
 *         .options = hello_options, .run = hello_run);
 */
#define KR_PLUGIN_DEFINE(...)                                                  \
	KR_PLUGIN_EXPORT const kr_plugin keruta_plugin = {                         \
	        .abi_major = KR_ABI_MAJOR,                                         \
	        .abi_minor = KR_ABI_MINOR,                                         \
	        .size = sizeof(kr_plugin),                                         \
	        .option_size = sizeof(kr_option),                                  \
	        __VA_ARGS__}

#ifdef __cplusplus
}
#endif

#endif /* KERUTA_PLUGIN_H */
