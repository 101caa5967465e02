/*
 * hello - an example keruta-agent stage plugin, to copy when writing your own.
 *
 * It writes a greeting for the task into the work dir's .keruta area and
 * leaves the file's path in the task context for later stages.  It shows
 * the whole contract: an option table the agent validates before any
 * stage runs, per-stage state made in init and freed in fini, the task
 * context, logging, and failing with a reason.
 *
 * Build it out of tree:
 *
 *     cc -shared -fPIC $(pkg-config --cflags keruta-agent-plugin) hello.c -o hello.so
 *
 * and use it in a pipeline:
 *
 *     stages:
 *       hello: { plugin: hello, with: { greeting: "Good morning" } }
 *
 * with `--plugin-dir DIR` (or KERUTA_PLUGIN_PATH, or plugin_path in the
 * pipeline file) naming the directory that holds hello.so.
 */
#include <errno.h>
#include <keruta/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The stage's state: init makes one per stage that uses the plugin. */
typedef struct hello {
	const char *greeting; /* the agent's, valid as long as it runs */
	const char *file;
	int64_t repeat;
} hello;

/* The agent checks `with:` against this table: unknown keys and wrong
 * types are reported with file, line and column before anything runs.
 * KR_OPT_FIELD names the member svc->opt_bind() writes each value to. */
static const kr_option hello_options[] = {
        {.name = "greeting", .type = KR_OPT_STRING, .default_value = "Hello",
         .help = "the word to greet the task with", KR_OPT_FIELD(hello, greeting)},
        {.name = "file", .type = KR_OPT_STRING, .default_value = "hello.txt",
         .help = "file name under WORK_DIR/.keruta", KR_OPT_FIELD(hello, file)},
        {.name = "repeat", .type = KR_OPT_INT, .default_value = "1",
         .help = "how many lines to write (1-100)", KR_OPT_FIELD(hello, repeat)},
        {0}};

static int hello_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	hello *h = calloc(1, sizeof(*h));
	if (!h)
		return svc->fail(NULL, "out of memory");
	/* every bound option at once; the types were checked already */
	if (svc->opt_bind(cfg, h, sizeof(*h)) != KR_OK) {
		free(h);
		return KR_FAILED;
	}
	/* what the types cannot say; *state is set only when all is well,
	 * because fini is not called after a failed init */
	if (h->repeat < 1 || h->repeat > 100) {
		free(h);
		return svc->fail(NULL, "repeat must be between 1 and 100");
	}
	if (strchr(h->file, '/') || strcmp(h->file, "..") == 0 || h->file[0] == '.') {
		svc->fail(NULL, "file must be a plain file name, not '%s'", h->file);
		free(h);
		return KR_FAILED;
	}
	*state = h;
	return KR_OK;
}

static int hello_run(const kr_services *svc, void *state, kr_task *task)
{
	hello *h = state;
	const char *work = svc->task_get(task, KR_TASK_WORK_DIR);
	const char *title = svc->task_get(task, KR_TASK_TITLE);
	char dir[4096], path[4200];

	snprintf(dir, sizeof(dir), "%s/.keruta", work);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return svc->fail(task, "cannot create %s: %s", dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s", dir, h->file);
	FILE *f = fopen(path, "w");
	if (!f)
		return svc->fail(task, "cannot write %s: %s", path, strerror(errno));
	for (int64_t i = 0; i < h->repeat; i++)
		fprintf(f, "%s, %s!\n", h->greeting, title ? title : "task");
	if (fclose(f) != 0)
		return svc->fail(task, "cannot write %s: %s", path, strerror(errno));

	svc->log(task, KR_LOG_INFO, "greeted task %s in %s",
	         svc->task_get(task, KR_TASK_ID), path);
	/* a key with a dot: free for stages to share */
	svc->task_set(task, "hello.path", path);
	return KR_OK;
}

static void hello_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
}

KR_PLUGIN_DEFINE(.name = "hello",
                 .version = "1.0",
                 .description = "writes a greeting for the task into .keruta",
                 .options = hello_options,
                 .init = hello_init,
                 .run = hello_run,
                 .fini = hello_fini);
