/*
 * execute.c - the `execute` stage: run the task's command or script in the
 * repository root (the work dir) and judge the task by how it ends.
 *
 * What runs, first match wins:
 *   with: argv: [prog, arg...]     run directly, no shell
 *   with: command: "text"          run as `<shell> -c text`
 *   the task's command: [prog, ...] run directly, no shell
 *   the task's execute script      written to <work>/.keruta/execute.sh
 *                                  (0700), or to .keruta/script/FILENAME
 *                                  when keruta-api names a file, and run
 *                                  by its shebang line, else by the
 *                                  interpreter keruta-api's `language`
 *                                  names, else as `<shell> <path>`
 * The process runner passes its output through and ships it, masks
 * secrets, enforces timeouts and reaps everything the command started.
 *
 * The task's fields reach the command as KERUTA_TASK_* variables, with
 * the task's own env entries; see task_env.c for values too long for the
 * environment.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keruta/plugin.h"

#include "stage_util.h"

typedef struct execute_state {
	const char *command;
	const char *const *argv; /* NULL-ended, or NULL */
	const char *shell;
	uint64_t timeout_ms;     /* 0: only the stage's timeout */
	uint64_t env_max;
} execute_state;

static const kr_option execute_options[] = {
        {.name = "command", .type = KR_OPT_STRING,
         .help = "command line run with the shell instead of the task's script",
         KR_OPT_FIELD(execute_state, command)},
        {.name = "argv", .type = KR_OPT_LIST,
         .help = "program and arguments run without a shell (wins over command)",
         KR_OPT_FIELD(execute_state, argv)},
        {.name = "shell", .type = KR_OPT_STRING, .default_value = "/bin/sh",
         .help = "shell (and its options) for command and script",
         KR_OPT_FIELD(execute_state, shell)},
        {.name = "timeout", .type = KR_OPT_DURATION,
         .help = "longest the command may run (the stage's timeout: also applies)",
         KR_OPT_FIELD(execute_state, timeout_ms)},
        {.name = "env_max", .type = KR_OPT_SIZE, .default_value = "32KiB",
         .help = "longer environment values are cut; the full text goes to a file",
         KR_OPT_FIELD(execute_state, env_max)},
        {0}};

static int execute_init(const kr_services *svc, const kr_config *cfg, void **state)
{
	execute_state *s = kr_stage_new_state(svc, cfg, sizeof(*s), "execute");
	if (!s)
		return KR_FAILED;
	if (!s->shell || !s->shell[strspn(s->shell, " \t")]) {
		free(s);
		return svc->fail(NULL, "execute: `with: shell:` is empty; give a shell such as /bin/sh");
	}
	if (s->env_max < 64)
		s->env_max = 64; /* room for the marker at least */
	*state = s;
	return KR_OK;
}

static void execute_fini(const kr_services *svc, void *state)
{
	(void)svc;
	free(state);
}

/* The task's execute script at <area>/execute.sh: from the task context,
 * else from the backend.  KR_NOT_FOUND when the task has none. */
static int write_script(const kr_services *svc, kr_task *t, const char *path)
{
	int fd = kr_stage_new_file(AT_FDCWD, path, 0700);
	if (fd < 0) {
		int e = errno;
		return svc->fail(t, "cannot create %s: %s", path, strerror(e));
	}
	const char *text = svc->task_get(t, KR_TASK_SCRIPT_EXECUTE);
	int rc = KR_OK;
	if (text) {
		int e = kr_stage_write_all(fd, text);
		close(fd);
		if (e)
			rc = svc->fail(t, "cannot write %s: %s", path, strerror(e));
	} else {
		close(fd);
		rc = svc->fetch_script(t, "execute", path);
	}
	if (rc == KR_OK && chmod(path, 0700) != 0) {
		int e = errno;
		rc = svc->fail(t, "cannot make %s executable: %s", path, strerror(e));
	}
	if (rc != KR_OK)
		unlink(path);
	return rc;
}

/* The program keruta-api's `language` names; NULL for one we do not know. */
static const char *interpreter(const char *language)
{
	static const struct {
		const char *language, *program;
	} known[] = {{"bash", "bash"},       {"sh", "sh"},           {"shell", "sh"},
	             {"zsh", "zsh"},         {"python", "python3"},  {"python3", "python3"},
	             {"py", "python3"},      {"node", "node"},       {"nodejs", "node"},
	             {"javascript", "node"}, {"js", "node"},         {"perl", "perl"},
	             {"ruby", "ruby"},       {"php", "php"},         {"powershell", "pwsh"},
	             {"pwsh", "pwsh"},       {"deno", "deno"},       {"typescript", "deno"}};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(language, known[i].language) == 0)
			return known[i].program;
	return NULL;
}

static int has_shebang(const char *path)
{
	char head[2] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, head, 2);
	close(fd);
	return n == 2 && head[0] == '#' && head[1] == '!';
}

/* Whitespace-separated words of `with: shell:` followed by the rest. */
static const char **make_argv(const char *shell, char **words_out, const char *a1,
                              const char *a2)
{
	char *words = strdup(shell);
	size_t n = 0;
	const char **argv = calloc(strlen(shell) / 2 + 4, sizeof(*argv));
	if (!words || !argv) {
		free(words);
		free(argv);
		return NULL;
	}
	for (char *save = NULL, *w = strtok_r(words, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
		argv[n++] = w;
	if (a1)
		argv[n++] = a1;
	if (a2)
		argv[n++] = a2;
	*words_out = words;
	return argv;
}

static int judge(const kr_services *svc, kr_task *t, const execute_state *s,
                 const kr_process_result *r)
{
	char code[32];
	snprintf(code, sizeof(code), "%d", r->signal ? 128 + r->signal : r->exit_code);
	svc->task_set(t, KR_TASK_EXIT_CODE, code);

	char how[160];
	if (r->signal)
		snprintf(how, sizeof(how), "killed by signal %d (%s)", r->signal, strsignal(r->signal));
	else
		snprintf(how, sizeof(how), "exit code %d", r->exit_code);

	int stopped = r->cancelled || svc->cancelled(t);
	if (r->oom_killed) {
		svc->fail(t, "out of memory (OOM killer): the command was %s; give the container "
		             "more memory or make the task use less",
		          how);
		return stopped ? KR_CANCELLED : KR_FAILED;
	}
	if (stopped) {
		svc->fail(t, "the command was stopped (%s)", how);
		return KR_CANCELLED;
	}
	if (r->timed_out) {
		char limit[32];
		kr_stage_format_ms(s->timeout_ms, limit, sizeof(limit));
		return svc->fail(t, "the command did not finish within %s (with: timeout:) and was "
		                    "stopped (%s)",
		                 limit, how);
	}
	if (r->signal)
		return svc->fail(t, "the command was %s", how);
	if (r->exit_code != 0)
		return svc->fail(t, "the command failed with exit code %d%s", r->exit_code,
		                 r->exit_code == 127 ? " (command not found?)" : "");
	svc->log(t, KR_LOG_INFO, "the command succeeded");
	return KR_OK;
}

static int execute_run(const kr_services *svc, void *state, kr_task *t)
{
	execute_state *s = state;
	const char *work;
	char *area = kr_stage_task_area(svc, t, "execute", &work);
	if (!area)
		return KR_FAILED;

	char *script = NULL, *words = NULL;
	const char **argv = NULL;
	int rc = KR_FAILED;
	size_t n_list = 0;
	while (s->argv && s->argv[n_list])
		n_list++;
	if (n_list) {
		argv = calloc(n_list + 1, sizeof(*argv));
		for (size_t i = 0; argv && i < n_list; i++)
			argv[i] = s->argv[i];
		svc->log(t, KR_LOG_INFO, "running %s (argv, %zu argument%s) in %s", argv ? argv[0] : "?",
		         n_list - 1, n_list == 2 ? "" : "s", work);
	} else if (s->command && *s->command) {
		argv = make_argv(s->shell, &words, "-c", s->command);
		svc->log(t, KR_LOG_INFO, "running `%s` with %s in %s", s->command, s->shell, work);
	} else if ((n_list = svc->task_list_count(t, KR_TASK_COMMAND)) > 0) {
		/* the task's own command stands where its script would */
		argv = calloc(n_list + 1, sizeof(*argv));
		for (size_t i = 0; argv && i < n_list; i++)
			argv[i] = svc->task_list_item(t, KR_TASK_COMMAND, i);
		svc->log(t, KR_LOG_INFO, "running the task's command %s (%zu argument%s) in %s",
		         argv ? argv[0] : "?", n_list - 1, n_list == 2 ? "" : "s", work);
	} else {
		const char *language = svc->task_get(t, "script.language");
		const char *given = svc->task_get(t, "script.filename");
		const char *program = language && *language ? interpreter(language) : NULL;
		if (language && *language && !program) {
			svc->task_set(t, KR_TASK_ERROR_CODE, "SCRIPT_EXECUTION_ERROR");
			svc->fail(t, "the task's script is in language '%.64s', which execute does not "
			             "know; use bash, sh, python, node, perl, ruby or php, or start the "
			             "script with a #! line",
			          language);
			goto out;
		}
		char name[128];
		int r = -1;
		if (given && *given) {
			/* keruta-api's answer must never pick a path */
			kr_safe_file_name(given, "script", name, sizeof(name));
			/* through the area: task code may have left a symlink there */
			char *dir = svc->area_path(t, "script", KR_AREA_CREATE);
			if (!dir)
				goto out;
			r = asprintf(&script, "%s/%s", dir, name);
			svc->free(dir);
			if (strcmp(name, given) != 0)
				svc->log(t, KR_LOG_INFO, "script file name '%.100s' written as '%s'", given,
				         name);
		} else {
			r = asprintf(&script, "%s/execute.sh", area);
		}
		if (r < 0) {
			script = NULL;
			svc->fail(t, "execute: out of memory");
			goto out;
		}
		int wr = write_script(svc, t, script);
		if (wr == KR_NOT_FOUND) {
			svc->fail(t, "the task has no execute script and the stage no command; give the "
			             "task a script or set `with: command:`");
			goto out;
		}
		if (wr != KR_OK) {
			svc->task_set(t, KR_TASK_ERROR_CODE, "SCRIPT_WRITE_ERROR");
			goto out;
		}
		if (has_shebang(script)) {
			argv = make_argv("", &words, script, NULL);
			svc->log(t, KR_LOG_INFO, "running the task's script %s (its #! line) in %s",
			         script, work);
		} else if (program) {
			argv = make_argv(program, &words, script, NULL);
			svc->log(t, KR_LOG_INFO, "running the task's %s script %s with %s in %s", language,
			         script, program, work);
		} else {
			argv = make_argv(s->shell, &words, script, NULL);
			svc->log(t, KR_LOG_INFO, "running the task's script %s with %s in %s", script,
			         s->shell, work);
		}
	}
	if (!argv) {
		svc->fail(t, "execute: out of memory");
		goto out;
	}

	char **env = kr_stage_task_env(svc, t, area, (size_t)s->env_max, NULL);
	if (!env)
		goto out;
	kr_process_result r;
	rc = kr_stage_run_script(svc, t, argv, work, env, s->timeout_ms, "execute", &r);
	if (rc == KR_OK)
		rc = judge(svc, t, s, &r);
	else
		rc = KR_FAILED; /* the runner said why it could not start */
	if (rc == KR_FAILED)
		svc->task_set(t, KR_TASK_ERROR_CODE, "EXECUTION_ERROR");
out:
	free(argv);
	free(words);
	free(script);
	svc->free(area);
	return rc;
}

KR_PLUGIN_DEFINE(.name = "execute", .version = "1.0",
                 .description = "run the task's command or script in the repository root",
                 .options = execute_options, .init = execute_init, .run = execute_run,
                 .fini = execute_fini);
