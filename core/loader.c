/* loader.c - see loader.h. */
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The descriptor size of ABI 1.0: the smallest a plugin of major 1 has. */
#define KR_PLUGIN_SIZE_1_0 (offsetof(kr_plugin, fini) + sizeof(void (*)(void)))

void kr_loader_init(kr_loader *l)
{
	memset(l, 0, sizeof(*l));
}

void kr_loader_add_dir(kr_loader *l, const char *dir)
{
	if (!dir || !*dir)
		return;
	for (size_t i = 0; i < l->n_dirs; i++)
		if (strcmp(l->dirs[i], dir) == 0)
			return;
	l->dirs = kr_realloc(l->dirs, (l->n_dirs + 1) * sizeof(char *));
	l->dirs[l->n_dirs++] = kr_strdup(dir);
}

void kr_loader_add_path_list(kr_loader *l, const char *list)
{
	if (!list)
		return;
	const char *p = list;
	while (*p) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n) {
			char *dir = kr_strndup(p, n);
			kr_loader_add_dir(l, dir);
			free(dir);
		}
		p += n;
		if (*p == ':')
			p++;
	}
}

int kr_loader_check_descriptor(const kr_plugin *d, const char *path, kr_error *err)
{
	if (d->abi_major != KR_ABI_MAJOR) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: built for plugin ABI %u.%u, but this agent speaks ABI %d.%d: "
		             "rebuild the plugin against this agent's keruta/plugin.h",
		             path, d->abi_major, d->abi_minor, KR_ABI_MAJOR, KR_ABI_MINOR);
		return -1;
	}
	if (d->abi_minor > KR_ABI_MINOR) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: built for plugin ABI %u.%u, newer than this agent's ABI %d.%d: "
		             "upgrade keruta-agent or rebuild the plugin against its header",
		             path, d->abi_major, d->abi_minor, KR_ABI_MAJOR, KR_ABI_MINOR);
		return -1;
	}
	if (d->size < KR_PLUGIN_SIZE_1_0) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: descriptor is %u bytes, smaller than ABI %d.0 requires (%zu): "
		             "it was not declared with KR_PLUGIN_DEFINE",
		             path, d->size, KR_ABI_MAJOR, (size_t)KR_PLUGIN_SIZE_1_0);
		return -1;
	}
	if (!d->name || !*d->name || !d->run) {
		kr_error_set(err, KR_EXIT_USAGE, "%s: descriptor has no %s: the plugin is incomplete",
		             path, !d->name || !*d->name ? "name" : "run callback");
		return -1;
	}
	if (d->options) {
		for (const kr_option *o = d->options; o->name; o++) {
			if (o->type < KR_OPT_STRING || o->type > KR_OPT_MAP) {
				kr_error_set(err, KR_EXIT_USAGE, "%s: option '%s' has unknown type %d",
				             path, o->name, (int)o->type);
				return -1;
			}
		}
	}
	return 0;
}

static const kr_loaded *remember(kr_loader *l, const char *name, const char *path,
                                 const kr_plugin *d)
{
	/* entries are allocated one by one: callers keep pointers to them */
	l->loaded = kr_realloc(l->loaded, (l->n_loaded + 1) * sizeof(*l->loaded));
	kr_loaded *e = kr_calloc(1, sizeof(*e));
	l->loaded[l->n_loaded++] = e;
	e->name = kr_strdup(name);
	e->path = kr_strdup(path);
	e->desc = d;
	return e;
}

static const kr_plugin *open_plugin(const char *path, kr_error *err)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		kr_error_set(err, KR_EXIT_USAGE, "%s: cannot open plugin: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		kr_error_set(err, KR_EXIT_USAGE, "%s: not a regular file, so not a plugin", path);
		return NULL;
	}
	dlerror();
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();
		if (why && strstr(why, "undefined symbol: kr_"))
			/* the agent exports none of its own functions (core/host.h) */
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s: cannot load plugin: %s (a plugin calls the agent only through "
			             "the kr_services table of <keruta/plugin.h>; rebuild it without "
			             "calling the agent's internal functions)",
			             path, why);
		else
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s: cannot load plugin: %s (check it is a shared object built for "
			             "this machine, and `ldd %s` for missing libraries)",
			             path, why ? why : "unknown error", path);
		return NULL;
	}
	const kr_plugin *d = dlsym(h, KR_PLUGIN_SYMBOL);
	if (!d) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: not a keruta-agent plugin: it exports no '%s' descriptor "
		             "(declare one with KR_PLUGIN_DEFINE)",
		             path, KR_PLUGIN_SYMBOL);
		/* no dlclose: harmless to keep, and a constructor may have run */
		return NULL;
	}
	if (kr_loader_check_descriptor(d, path, err))
		return NULL;
	return d;
}

const kr_loaded *kr_loader_load_file(kr_loader *l, const char *path, kr_error *err)
{
	for (size_t i = 0; i < l->n_loaded; i++)
		if (strcmp(l->loaded[i]->path, path) == 0)
			return l->loaded[i];
	const kr_plugin *d = open_plugin(path, err);
	return d ? remember(l, d->name, path, d) : NULL;
}

const kr_loaded *kr_loader_load(kr_loader *l, const char *name, kr_error *err)
{
	for (size_t i = 0; i < l->n_loaded; i++)
		if (strcmp(l->loaded[i]->name, name) == 0)
			return l->loaded[i];
	if (strchr(name, '/')) {
		const kr_plugin *d = open_plugin(name, err);
		return d ? remember(l, name, name, d) : NULL;
	}
	if (name[0] == '.' || !kr_name_ok(name)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "plugin name '%s' is not valid: use letters, digits, '-', '_' and '.', "
		             "or a path containing '/'",
		             name);
		return NULL;
	}
	for (size_t i = 0; i < l->n_dirs; i++) {
		char *path = kr_asprintf("%s/%s.so", l->dirs[i], name);
		struct stat st;
		if (stat(path, &st) == 0) {
			const kr_plugin *d = open_plugin(path, err);
			if (d && strcmp(d->name, name) != 0) {
				kr_error_set(err, KR_EXIT_USAGE,
				             "%s: the file is named '%s' but its descriptor says '%s': "
				             "rename the file or fix the descriptor",
				             path, name, d->name);
				d = NULL;
			}
			const kr_loaded *e = d ? remember(l, name, path, d) : NULL;
			free(path);
			return e;
		}
		free(path);
	}
	kr_buf dirs = {0};
	for (size_t i = 0; i < l->n_dirs; i++)
		kr_buf_addf(&dirs, "%s%s", i ? ", " : "", l->dirs[i]);
	kr_error_set(err, KR_EXIT_USAGE,
	             "plugin '%s' not found: no %s.so in %s (add a directory with --plugin-dir, "
	             "KERUTA_PLUGIN_PATH or plugin_path)",
	             name, name, dirs.data ? dirs.data : "(no directories to search)");
	kr_buf_free(&dirs);
	return NULL;
}

void kr_loader_free(kr_loader *l)
{
	for (size_t i = 0; i < l->n_dirs; i++)
		free(l->dirs[i]);
	free(l->dirs);
	for (size_t i = 0; i < l->n_loaded; i++) {
		free(l->loaded[i]->name);
		free(l->loaded[i]->path);
		free(l->loaded[i]);
	}
	free(l->loaded);
	memset(l, 0, sizeof(*l));
}
