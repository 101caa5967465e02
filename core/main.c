/*
 * main.c - keruta-agent's command line.
 *
 *   keruta-agent COMMAND [OPTIONS]
 *
 * Task commands (execute, init, run, cleanup) run the pipeline phase of
 * the same name; validate, plugins and version are utilities.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "agent.h"
#include "backend.h"
#include "chan.h"
#include "log.h"
#include "module.h"
#include "runner.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

typedef struct command {
	const char *name;
	unsigned mask;
	const char *summary;
	const char *usage;
	int (*fn)(const struct command *c, int argc, char **argv);
} command;

static int cmd_task(const command *c, int argc, char **argv);
static int cmd_validate(const command *c, int argc, char **argv);
static int cmd_plugins(const command *c, int argc, char **argv);
static int cmd_version(const command *c, int argc, char **argv);
static int cmd_script(const command *c, int argc, char **argv);
/* ---- launcher section (launcher/ owns it) ---- */
static int cmd_launcher(const command *c, int argc, char **argv);
/* ---- end of the launcher section ---- */

static const command commands[] = {
        {"execute", KR_CMD_EXECUTE, "run the whole task: clone, install, execute, collect, cleanup",
         "execute [--task-id ID | --task-file FILE] [OPTIONS]", cmd_task},
        {"init", KR_CMD_INIT, "prepare the work dir (Kubernetes init container)",
         "init [--repository-id ID] [--document-id ID]... [OPTIONS]", cmd_task},
        {"run", KR_CMD_RUN, "execute the task and collect its artifacts (main container)",
         "run --task-id ID [OPTIONS]", cmd_task},
        {"cleanup", KR_CMD_CLEANUP, "collect artifacts and clean up (cleanup Job)",
         "cleanup --task-id ID [--source-pod POD] [OPTIONS]", cmd_task},
        {"validate", KR_CMD_VALIDATE, "check a pipeline file and its plugins, or a task file, without running them",
         "validate [FILE | --pipeline FILE] [--task-file FILE] [--plugin-dir DIR]...",
         cmd_validate},
        {"plugins", KR_CMD_PLUGINS, "list the plugins found, their ABI and description",
         "plugins [-v] [--plugin-dir DIR]...", cmd_plugins},
        {"version", 0, "print the versions of the agent and its libraries", "version",
         cmd_version},
        {"log", 0, "from a task script: send a log line to keruta-api through the agent",
         "log LEVEL MESSAGE...   (LEVEL: DEBUG, INFO, WARN or ERROR)", cmd_script},
        {"progress", 0, "from a task script: report the task's progress through the agent",
         "progress PERCENT [MESSAGE...]   (PERCENT: 0 to 100)", cmd_script},
        {"artifact", 0, "from a task script: hand a file to the agent to upload as an artifact",
         "artifact FILE", cmd_script},
        /* ---- launcher section ---- */
        {"render", KR_CMD_RENDER, "print the Kubernetes manifests (PVC, Job) that run a task",
         "render [--task-id ID | --task-file FILE] [OPTIONS]", cmd_launcher},
        {"dispatch", KR_CMD_DISPATCH,
         "run tasks as Kubernetes Jobs, follow them and report their outcome",
         "dispatch [--task-id ID | --task-file FILE] [OPTIONS]", cmd_launcher},
        /* ---- end of the launcher section ---- */
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The script-side commands talk to the running agent over
 * KERUTA_AGENT_SOCKET; they need no settings, no pipeline and no token. */
static int cmd_script(const command *c, int argc, char **argv)
{
	return kr_chan_client(c->name, argc - 2, argv + 2);
}

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: keruta-agent COMMAND [OPTIONS]\n"
	        "\n"
	        "Runs a keruta task as a pipeline of stage plugins and reports to keruta-api,\n"
	        "or, with --task-file, to local files with no server at all.\n"
	        "\n"
	        "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
	        "\n"
	        "Run 'keruta-agent COMMAND --help' for a command's options.  Every option\n"
	        "also reads an environment variable; flags win over the environment, which\n"
	        "wins over the pipeline file's settings, which win over defaults.\n"
	        "\n"
	        "Exit status: 0 success, 1 task failed, 2 usage or configuration error,\n"
	        "3 keruta-api unreachable, 4 internal error.\n");
}

static void command_help(const command *c)
{
	kr_buf b = {0};
	kr_settings_help(c->mask, &b);
	printf("Usage: keruta-agent %s\n\n%s.\n", c->usage, c->summary);
	if (b.len)
		printf("\nOptions:\n%s", b.data);
	printf("  %-32s %s\n", "--help", "show this help");
	kr_buf_free(&b);
}

static int wants_help(int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

static void setup_logging(const kr_settings *s)
{
	kr_log_level level = KR_LOG_INFO;
	kr_log_format format = KR_LOG_FORMAT_AUTO;
	if (kr_settings_get(s, KR_S_LOG_LEVEL))
		kr_log_parse_level(kr_settings_get(s, KR_S_LOG_LEVEL), &level);
	if (kr_settings_get(s, KR_S_LOG_FORMAT))
		kr_log_parse_format(kr_settings_get(s, KR_S_LOG_FORMAT), &format);
	kr_log_setup(format, level, 2);
}

static int fail(kr_error *err)
{
	kr_log(KR_LOG_ERROR, NULL, "%s", err->msg);
	return err->code ? err->code : KR_EXIT_INTERNAL;
}

/* Flags and environment, then the pipeline file, then defaults. */
static int load_config(const command *c, int argc, char **argv, kr_settings *s,
                       kr_pipeline **pipeline, char ***rest, int *n_rest, kr_error *err)
{
	if (kr_settings_parse_args(s, c->mask, argc, argv, 2, rest, n_rest, err) ||
	    kr_settings_apply_env(s, err))
		return -1;
	setup_logging(s); /* early, so pipeline errors use the chosen format */
	if (!pipeline)
		return kr_settings_finish(s, err);
	const char *path = kr_settings_get(s, KR_S_PIPELINE);
	if (c->mask == KR_CMD_VALIDATE && *n_rest > 0)
		path = (*rest)[0];
	if (!path)
		path = kr_setting_defs[KR_S_PIPELINE].def;
	*pipeline = kr_pipeline_load(path, err);
	if (!*pipeline)
		return -1;
	if (kr_settings_apply_pipeline(s, path, (*pipeline)->settings, err) ||
	    kr_settings_finish(s, err))
		return -1;
	setup_logging(s);
	return 0;
}

static int cmd_task(const command *c, int argc, char **argv)
{
	kr_error err = {0};
	kr_agent a = {.command = c->name, .settings = kr_settings_new(), .reason = KR_REASON_INIT};
	char **rest = NULL;
	int n_rest = 0, code;
	kr_loader_init(&a.loader);
	if (load_config(c, argc, argv, a.settings, &a.pipeline, &rest, &n_rest, &err)) {
		code = fail(&err);
		goto out;
	}
	if (n_rest > 0) {
		kr_error_set(&err, KR_EXIT_USAGE, "unexpected argument '%s' (see %s --help)", rest[0],
		             c->name);
		code = fail(&err);
		goto out;
	}
	kr_agent_plugin_dirs(&a.loader, a.settings, a.pipeline);
	code = kr_agent_run(&a, &err);
	if (err.code)
		kr_log(KR_LOG_ERROR, NULL, "%s", err.msg);
out:
	free(rest);
	kr_task_free(a.task);
	kr_loader_free(&a.loader);
	kr_pipeline_free(a.pipeline);
	kr_settings_free(a.settings);
	return code;
}

/* `validate --task-file FILE`: the check every task command makes before
 * any stage runs.  With no pipeline named, the task file is all there is
 * to check.  1 when that was the whole job (*code says how it went). */
static int validate_task_file(const command *c, int argc, char **argv, int *code)
{
	kr_error err = {0};
	kr_settings *s = kr_settings_new();
	char **rest = NULL;
	int n_rest = 0, done = 0;
	*code = KR_EXIT_OK;
	if (kr_settings_parse_args(s, c->mask, argc, argv, 2, &rest, &n_rest, &err) ||
	    kr_settings_apply_env(s, &err)) {
		*code = fail(&err);
		done = 1;
		goto out;
	}
	setup_logging(s);
	const char *file = kr_settings_get(s, KR_S_TASK_FILE);
	if (!file)
		goto out;
	kr_node *n = NULL;
	if (kr_taskfile_load(file, &n, &err)) {
		*code = fail(&err);
		done = 1;
		goto out;
	}
	kr_node_free(n);
	printf("%s: valid task file\n", file);
	done = n_rest == 0 && !kr_settings_get(s, KR_S_PIPELINE);
out:
	free(rest);
	kr_settings_free(s);
	return done;
}

static int cmd_validate(const command *c, int argc, char **argv)
{
	kr_error err = {0};
	kr_settings *s = kr_settings_new();
	kr_pipeline *p = NULL;
	kr_loader l;
	char **rest = NULL;
	int n_rest = 0, code = KR_EXIT_OK;
	kr_loader_init(&l);
	if (validate_task_file(c, argc, argv, &code))
		goto out;
	if (load_config(c, argc, argv, s, &p, &rest, &n_rest, &err)) {
		code = fail(&err);
		goto out;
	}
	kr_agent_plugin_dirs(&l, s, p);
	for (size_t i = 0; i < KR_PHASE_COUNT; i++) {
		kr_runner r;
		if (kr_runner_load(&r, p, &p->phases[i], &l, &err)) {
			kr_runner_fini(&r);
			code = fail(&err);
			goto out;
		}
		kr_runner_fini(&r);
	}
	printf("%s: valid (", p->path);
	for (size_t i = 0; i < KR_PHASE_COUNT; i++)
		printf("%s%s: %zu", i ? ", " : "", kr_phase_names[i], p->phases[i].n);
	printf(" stages; %zu plugins)\n", l.n_loaded);
out:
	free(rest);
	kr_loader_free(&l);
	kr_pipeline_free(p);
	kr_settings_free(s);
	return code;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmd_plugins(const command *c, int argc, char **argv)
{
	kr_error err = {0};
	kr_settings *s = kr_settings_new();
	kr_loader l;
	char **rest = NULL;
	int n_rest = 0, verbose = 0, bad = 0;
	kr_loader_init(&l);
	/* -v is ours; take it out before the shared parser sees it */
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
			verbose = 1;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(char *));
			argc--;
			i--;
		}
	if (load_config(c, argc, argv, s, NULL, &rest, &n_rest, &err)) {
		free(rest);
		kr_settings_free(s);
		return fail(&err);
	}
	/* the pipeline's plugin_path counts if the pipeline can be read */
	kr_error perr = {0};
	kr_pipeline *p = kr_pipeline_load(kr_settings_get(s, KR_S_PIPELINE), &perr);
	kr_agent_plugin_dirs(&l, s, p);
	printf("ABI %d.%d; search path:", KR_ABI_MAJOR, KR_ABI_MINOR);
	for (size_t i = 0; i < l.n_dirs; i++)
		printf(" %s", l.dirs[i]);
	printf("\n");
	for (size_t i = 0; i < l.n_dirs; i++) {
		DIR *d = opendir(l.dirs[i]);
		if (!d)
			continue;
		struct dirent **names = NULL;
		int n = scandir(l.dirs[i], &names, NULL, alphasort);
		closedir(d);
		for (int k = 0; k < n; k++) {
			const char *fn = names[k]->d_name;
			if (ends_with(fn, ".so") && fn[0] != '.') {
				char *path = kr_asprintf("%s/%s", l.dirs[i], fn);
				kr_error e = {0};
				const kr_loaded *pl = kr_loader_load_file(&l, path, &e);
				if (pl) {
					const kr_plugin *dsc = pl->desc;
					printf("%-16s %u.%u  %-8s %s\n  %s\n", dsc->name, dsc->abi_major,
					       dsc->abi_minor, dsc->version ? dsc->version : "-",
					       dsc->description ? dsc->description : "", path);
					for (const kr_option *o = dsc->options; verbose && o && o->name; o++)
						printf("    with %-16s %-8s %s%s%s%s%s\n", o->name,
						       kr_loader_type_name(o->type), o->help ? o->help : "",
						       o->default_value ? " (default " : "",
						       o->default_value ? o->default_value : "",
						       o->default_value ? ")" : "", o->required ? " (required)" : "");
				} else {
					printf("%-16s INVALID: %s\n", fn, e.msg);
					bad++;
				}
				free(path);
			}
			free(names[k]);
		}
		free(names);
	}
	free(rest);
	kr_pipeline_free(p);
	kr_loader_free(&l);
	kr_settings_free(s);
	return bad ? KR_EXIT_USAGE : KR_EXIT_OK;
}

static int cmd_version(const command *c, int argc, char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	printf("keruta-agent %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, KR_ABI_MAJOR, KR_ABI_MINOR);
	printf("libyaml %s\n", yaml_get_version_string());
#ifdef KR_LIBGIT2_VERSION
	printf("libgit2 %s (built against)\n", KR_LIBGIT2_VERSION);
#endif
	/* libcurl and json-c live in the api module; ask it, if installed */
	kr_buf b = {0};
	kr_backend_api_versions(&b);
	if (b.len)
		fputs(b.data, stdout);
	kr_buf_free(&b);
	return 0;
}

/* ---- launcher section (launcher/ owns it) ----
 * render and dispatch live in a module (libcurl, json-c) loaded only by
 * them, like the keruta-api backend. */

static int cmd_launcher(const command *c, int argc, char **argv)
{
	kr_error err = {0};
	kr_settings *s = kr_settings_new();
	kr_pipeline *p = NULL;
	char **rest = NULL;
	int n_rest = 0, code;
	if (kr_settings_parse_args(s, c->mask, argc, argv, 2, &rest, &n_rest, &err) ||
	    kr_settings_apply_env(s, &err)) {
		code = fail(&err);
		goto out;
	}
	setup_logging(s);
	if (n_rest > 0) {
		kr_error_set(&err, KR_EXIT_USAGE, "unexpected argument '%s' (see %s --help)", rest[0],
		             c->name);
		code = fail(&err);
		goto out;
	}
	/* The pipeline file's settings count when it was named or exists. */
	const char *path = kr_settings_get(s, KR_S_PIPELINE);
	if (!path && access(kr_setting_defs[KR_S_PIPELINE].def, R_OK) == 0)
		path = kr_setting_defs[KR_S_PIPELINE].def;
	if (path) {
		p = kr_pipeline_load(path, &err);
		if (!p || kr_settings_apply_pipeline(s, path, p->settings, &err)) {
			code = fail(&err);
			goto out;
		}
	}
	kr_settings_finish(s, &err);
	setup_logging(s);
	const kr_launcher_desc *launcher =
	        kr_module_load("KERUTA_LAUNCHER_MODULE", "launcher.so", KR_LAUNCHER_SYMBOL,
	                       "launcher module", &err);
	if (!launcher) {
		code = fail(&err);
		goto out;
	}
	code = launcher->main(c->name, s, &err);
	if (err.code)
		kr_log(KR_LOG_ERROR, NULL, "%s", err.msg);
out:
	free(rest);
	kr_pipeline_free(p);
	kr_settings_free(s);
	return code;
}
/* ---- end of the launcher section ---- */

/* The log format asked for, before the command line is parsed, so that
 * the first error (an unknown command or option) already has that form:
 * in JSON mode every line on stderr is JSON.  The full parse sets it
 * again, with the pipeline file's settings. */
static void early_logging(int argc, char **argv)
{
	const char *fmt = getenv("KERUTA_LOG_FORMAT");
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc)
			fmt = argv[i + 1];
		else if (strncmp(argv[i], "--log-format=", 13) == 0)
			fmt = argv[i] + 13;
	}
	kr_log_format format = KR_LOG_FORMAT_AUTO;
	if (fmt)
		kr_log_parse_format(fmt, &format);
	kr_log_setup(format, KR_LOG_INFO, 2);
}

int main(int argc, char **argv)
{
	/* a closed pipe is an error to report, not a reason to die silently */
	signal(SIGPIPE, SIG_IGN);
	early_logging(argc, argv);
	if (argc < 2) {
		if (kr_log_is_json())
			kr_log(KR_LOG_ERROR, NULL, "no command given; see keruta-agent --help");
		else
			usage(stderr);
		return KR_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(NULL, argc, argv);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (wants_help(argc, argv)) {
			command_help(&commands[i]);
			return 0;
		}
		return commands[i].fn(&commands[i], argc, argv);
	}
	const char *names[N_COMMANDS];
	for (size_t i = 0; i < N_COMMANDS; i++)
		names[i] = commands[i].name;
	const char *near = kr_nearest(argv[1], names, N_COMMANDS);
	kr_log(KR_LOG_ERROR, NULL, "unknown command '%s'%s%s%s; see keruta-agent --help", argv[1],
	       near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
	return KR_EXIT_USAGE;
}
