/* loader.c - see loader.h. */
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "options.h"

/* The descriptor size of ABI 1.0: the smallest a plugin of major 1 has. */
#define KR_PLUGIN_SIZE_1_0 (offsetof(kr_plugin, fini) + sizeof(void (*)(void)))
/* The descriptor size from which it says how large its option rows are. */
#define KR_PLUGIN_SIZE_1_3 (offsetof(kr_plugin, option_size) + sizeof(uint32_t))
/* The option row of ABI 1.0 ends at `help`. */
#define KR_OPTION_SIZE_1_0 (offsetof(kr_option, help) + sizeof(const char *))

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

static const char *const type_names[] = {"", "string", "int", "bool", "duration", "size",
                                          "list", "map"};

const char *kr_loader_type_name(kr_option_type type)
{
	return type >= KR_OPT_STRING && type <= KR_OPT_MAP ? type_names[type] : "?";
}

/* The size a bound member of each option type has (plugin.h's table). */
static size_t field_size_of(kr_option_type type)
{
	switch (type) {
	case KR_OPT_STRING: return sizeof(const char *);
	case KR_OPT_INT: return sizeof(int64_t);
	case KR_OPT_BOOL: return sizeof(int);
	case KR_OPT_DURATION:
	case KR_OPT_SIZE: return sizeof(uint64_t);
	default: return sizeof(const char *const *);
	}
}

static int default_parses(const kr_option *o)
{
	int64_t i;
	int b;
	uint64_t u;
	switch (o->type) {
	case KR_OPT_INT: return kr_parse_int64(o->default_value, &i) == 0;
	case KR_OPT_BOOL: return kr_parse_bool(o->default_value, &b) == 0;
	case KR_OPT_DURATION: return kr_parse_duration_ms(o->default_value, &u) == 0;
	case KR_OPT_SIZE: return kr_parse_size(o->default_value, &u) == 0;
	default: return 1;
	}
}

/* One row as the plugin wrote it, checked: 0, or -1 with err naming the
 * plugin and the option. */
static int check_option(const kr_option *rows, size_t i, const char *plugin, const char *path,
                        kr_error *err)
{
	const kr_option *o = &rows[i];
	const char *fix = "fix the plugin's option table and rebuild it";
	if (!kr_name_ok(o->name)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: plugin '%s': option %zu has the name '%.64s', which is not valid; %s, "
		             "naming it with letters, digits, '-', '_' and '.' (at most 64)",
		             path, plugin, i + 1, o->name, fix);
		return -1;
	}
	for (size_t j = 0; j < i; j++)
		if (strcmp(rows[j].name, o->name) == 0) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s: plugin '%s': option '%s' is declared twice (rows %zu and %zu); %s",
			             path, plugin, o->name, j + 1, i + 1, fix);
			return -1;
		}
	if (o->type < KR_OPT_STRING || o->type > KR_OPT_MAP) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: plugin '%s': option '%s' has unknown type %d (this agent knows "
		             "string, int, bool, duration, size, list and map); %s",
		             path, plugin, o->name, (int)o->type, fix);
		return -1;
	}
	const char *why = NULL;
	if (o->default_value && o->required)
		why = "is required and has a default, which would never be used";
	else if (o->default_value && (o->type == KR_OPT_LIST || o->type == KR_OPT_MAP))
		why = "has a default, but lists and maps take none (an unset one is empty)";
	else if (o->default_value && !default_parses(o))
		why = "has a default that is not a valid value of its type";
	if (why) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: plugin '%s': option '%s' (%s, default '%s') %s; %s", path, plugin,
		             o->name, type_names[o->type], o->default_value, why, fix);
		return -1;
	}
	if (o->field_size && o->field_size != field_size_of(o->type)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: plugin '%s': option '%s' (%s) is bound to a member of %u bytes, but "
		             "an option of type %s is written as %zu bytes (see kr_option in "
		             "keruta/plugin.h); %s",
		             path, plugin, o->name, type_names[o->type], o->field_size,
		             type_names[o->type], field_size_of(o->type), fix);
		return -1;
	}
	return 0;
}

/* The agent's copy of a descriptor and its option rows, each read up to
 * min(the plugin's size, the agent's): NULL and err set when the plugin's
 * version, sizes or table are not acceptable. */
static kr_loaded *read_descriptor(const kr_plugin *d, const char *path, kr_error *err)
{
	if (d->abi_major != KR_ABI_MAJOR) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: built for plugin ABI %u.%u, but this agent speaks ABI %d.%d: "
		             "rebuild the plugin against this agent's keruta/plugin.h",
		             path, d->abi_major, d->abi_minor, KR_ABI_MAJOR, KR_ABI_MINOR);
		return NULL;
	}
	if (d->abi_minor > KR_ABI_MINOR) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: built for plugin ABI %u.%u, newer than this agent's ABI %d.%d: "
		             "upgrade keruta-agent or rebuild the plugin against its header",
		             path, d->abi_major, d->abi_minor, KR_ABI_MAJOR, KR_ABI_MINOR);
		return NULL;
	}
	if (d->size < KR_PLUGIN_SIZE_1_0) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: descriptor is %u bytes, smaller than ABI %d.0 requires (%zu): "
		             "it was not declared with KR_PLUGIN_DEFINE",
		             path, d->size, KR_ABI_MAJOR, (size_t)KR_PLUGIN_SIZE_1_0);
		return NULL;
	}
	kr_loaded *e = kr_calloc(1, sizeof(*e));
	kr_plugin *copy = kr_calloc(1, sizeof(*copy));
	memcpy(copy, d, d->size < sizeof(*copy) ? d->size : sizeof(*copy));
	e->desc = copy;
	/* rows are as far apart as the plugin built them: a 1.0 to 1.2
	 * descriptor does not say, and its rows end at `help` */
	size_t row = d->size >= KR_PLUGIN_SIZE_1_3 && copy->option_size ? copy->option_size
	                                                                 : KR_OPTION_SIZE_1_0;
	copy->option_size = sizeof(kr_option);
	if (row < KR_OPTION_SIZE_1_0 || row % _Alignof(kr_option) != 0) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s: option rows of %zu bytes: a row has at least %zu and is a multiple "
		             "of %zu; declare the plugin with KR_PLUGIN_DEFINE",
		             path, row, (size_t)KR_OPTION_SIZE_1_0, (size_t)_Alignof(kr_option));
		goto fail;
	}
	if (!copy->name || !*copy->name || !copy->run) {
		kr_error_set(err, KR_EXIT_USAGE, "%s: descriptor has no %s: the plugin is incomplete",
		             path, !copy->name || !*copy->name ? "name" : "run callback");
		goto fail;
	}
	if (d->options) {
		const unsigned char *base = (const unsigned char *)d->options;
		size_t n = 0;
		while (((const kr_option *)(const void *)(base + n * row))->name)
			n++;
		e->options = kr_calloc(n + 1, sizeof(kr_option));
		for (size_t i = 0; i < n; i++)
			memcpy(&e->options[i], base + i * row, row < sizeof(kr_option) ? row : sizeof(kr_option));
		copy->options = e->options;
		for (size_t i = 0; i < n; i++)
			if (check_option(e->options, i, copy->name, path, err))
				goto fail;
	}
	return e;
fail:
	free(e->options);
	free(copy);
	free(e);
	return NULL;
}

static void loaded_free(kr_loaded *e)
{
	free(e->name);
	free(e->path);
	free((void *)e->desc);
	free(e->options);
	free(e);
}

int kr_loader_check_descriptor(const kr_plugin *d, const char *path, kr_error *err)
{
	kr_loaded *e = read_descriptor(d, path, err);
	if (!e)
		return -1;
	loaded_free(e);
	return 0;
}

static const kr_loaded *remember(kr_loader *l, const char *name, const char *path, kr_loaded *e)
{
	/* entries are allocated one by one: callers keep pointers to them */
	l->loaded = kr_realloc(l->loaded, (l->n_loaded + 1) * sizeof(*l->loaded));
	l->loaded[l->n_loaded++] = e;
	e->name = kr_strdup(name);
	e->path = kr_strdup(path);
	return e;
}

static kr_loaded *open_plugin(const char *path, kr_error *err)
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
	return read_descriptor(d, path, err);
}

const kr_loaded *kr_loader_load_file(kr_loader *l, const char *path, kr_error *err)
{
	for (size_t i = 0; i < l->n_loaded; i++)
		if (strcmp(l->loaded[i]->path, path) == 0)
			return l->loaded[i];
	kr_loaded *e = open_plugin(path, err);
	return e ? remember(l, e->desc->name, path, e) : NULL;
}

const kr_loaded *kr_loader_load(kr_loader *l, const char *name, kr_error *err)
{
	for (size_t i = 0; i < l->n_loaded; i++)
		if (strcmp(l->loaded[i]->name, name) == 0)
			return l->loaded[i];
	if (strchr(name, '/')) {
		kr_loaded *e = open_plugin(name, err);
		return e ? remember(l, name, name, e) : NULL;
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
			kr_loaded *e = open_plugin(path, err);
			if (e && strcmp(e->desc->name, name) != 0) {
				kr_error_set(err, KR_EXIT_USAGE,
				             "%s: the file is named '%s' but its descriptor says '%s': "
				             "rename the file or fix the descriptor",
				             path, name, e->desc->name);
				loaded_free(e);
				e = NULL;
			}
			const kr_loaded *r = e ? remember(l, name, path, e) : NULL;
			free(path);
			return r;
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
	for (size_t i = 0; i < l->n_loaded; i++)
		loaded_free(l->loaded[i]);
	free(l->loaded);
	memset(l, 0, sizeof(*l));
}

void kr_loader_config_prepare(kr_config *cfg)
{
	size_t n = 0;
	for (const kr_option *o = cfg->options; o && o->name; o++)
		n++;
	cfg->arrays = kr_calloc(n ? n : 1, sizeof(*cfg->arrays));
	for (size_t i = 0; i < n; i++) {
		const kr_option *o = &cfg->options[i];
		const kr_node *v = kr_node_get(cfg->with, o->name);
		int map = o->type == KR_OPT_MAP;
		if (!v || (!map && o->type != KR_OPT_LIST) ||
		    v->type != (map ? KR_NODE_MAP : KR_NODE_SEQ))
			continue;
		const char **a = kr_calloc(v->n * (map ? 2 : 1) + 1, sizeof(*a));
		for (size_t k = 0, j = 0; k < v->n; k++) {
			if (map)
				a[j++] = v->keys[k]->value;
			a[j++] = v->items[k]->value;
		}
		cfg->arrays[i] = a;
	}
}

void kr_loader_config_release(kr_config *cfg)
{
	size_t i = 0;
	for (const kr_option *o = cfg->options; cfg->arrays && o && o->name; o++, i++)
		free((void *)cfg->arrays[i]);
	free(cfg->arrays);
	cfg->arrays = NULL;
}

int kr_loader_bind(const kr_config *cfg, void *state, size_t size, kr_error *err)
{
	if (!cfg || !state) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "opt_bind: no %s given; pass init's cfg and the state struct to fill",
		             !cfg ? "configuration" : "state");
		return -1;
	}
	/* every row is checked before one member is written: a plugin that
	 * gets an error has a state it may free as it was */
	for (const kr_option *o = cfg->options; o && o->name; o++)
		if (o->field_size && (o->offset > size || o->field_size > size - o->offset)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "stage '%s': option '%s' is bound at bytes %zu-%zu of the plugin's "
			             "state, but opt_bind was given %zu bytes; pass sizeof the struct "
			             "the option table's KR_OPT_FIELD rows name",
			             cfg->stage, o->name, o->offset, o->offset + o->field_size, size);
			return -1;
		}
	unsigned char *base = state;
	size_t i = 0;
	for (const kr_option *o = cfg->options; o && o->name; o++, i++) {
		if (!o->field_size)
			continue;
		void *at = base + o->offset;
		const char *s;
		int64_t n;
		int b;
		uint64_t u;
		switch (o->type) {
		case KR_OPT_STRING:
			if ((s = kr_config_string(cfg, o->name)))
				memcpy(at, &s, sizeof(s));
			break;
		case KR_OPT_INT:
			if (kr_config_int(cfg, o->name, &n) == KR_OK)
				memcpy(at, &n, sizeof(n));
			break;
		case KR_OPT_BOOL:
			if (kr_config_bool(cfg, o->name, &b) == KR_OK)
				memcpy(at, &b, sizeof(b));
			break;
		case KR_OPT_DURATION:
			if (kr_config_duration_ms(cfg, o->name, &u) == KR_OK)
				memcpy(at, &u, sizeof(u));
			break;
		case KR_OPT_SIZE:
			if (kr_config_size(cfg, o->name, &u) == KR_OK)
				memcpy(at, &u, sizeof(u));
			break;
		default:
			if (cfg->arrays && cfg->arrays[i]) {
				const char *const *a = cfg->arrays[i];
				memcpy(at, &a, sizeof(a));
			}
			break;
		}
	}
	return 0;
}
