/* options.c - see options.h. */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node.h"

static const char *const type_names[] = {"", "a string", "an integer", "true or false",
                                          "a duration such as 30s, 10m or 2h",
                                          "a size such as 512KiB or 100MB",
                                          "a list of strings", "a mapping of strings"};

/* How an option's text becomes its value, for every scalar type: out
 * points to the type's C value (int64_t, int or uint64_t), or is NULL
 * to check the text only. */
static int parse_as(kr_option_type type, const char *text, void *out)
{
	union {
		int64_t i;
		int b;
		uint64_t u;
	} scratch;
	void *to = out ? out : &scratch;
	switch (type) {
	case KR_OPT_STRING: return 0;
	case KR_OPT_INT: return kr_parse_int64(text, to);
	case KR_OPT_BOOL: return kr_parse_bool(text, to);
	case KR_OPT_DURATION: return kr_parse_duration_ms(text, to);
	case KR_OPT_SIZE: return kr_parse_size(text, to);
	default: return -1;
	}
}

static int check_scalar(const kr_option *o, const kr_node *v)
{
	if (v->type != KR_NODE_SCALAR)
		return -1;
	/* a quoted "true" is a string, not a bool */
	if (o->type == KR_OPT_BOOL && !v->plain)
		return -1;
	return parse_as(o->type, v->value, NULL);
}

static int check_value(const char *file, const char *stage, const kr_option *o,
                       const kr_node *v, kr_error *err)
{
	const kr_node *bad = v;
	int ok;
	if (o->type == KR_OPT_LIST) {
		ok = v->type == KR_NODE_SEQ;
		for (size_t i = 0; ok && i < v->n; i++)
			if (v->items[i]->type != KR_NODE_SCALAR)
				ok = 0, bad = v->items[i];
	} else if (o->type == KR_OPT_MAP) {
		ok = v->type == KR_NODE_MAP;
		for (size_t i = 0; ok && i < v->n; i++)
			if (v->items[i]->type != KR_NODE_SCALAR)
				ok = 0, bad = v->items[i];
	} else {
		ok = !kr_node_is_null(v) && check_scalar(o, v) == 0;
	}
	if (ok)
		return 0;
	kr_error_set(err, KR_EXIT_USAGE, "%s:%d:%d: option '%s' of stage '%s' must be %s%s%s%s",
	             file, bad->line, bad->col, o->name, stage, type_names[o->type],
	             bad->type == KR_NODE_SCALAR ? ", not '" : "",
	             bad->type == KR_NODE_SCALAR ? bad->value : "",
	             bad->type == KR_NODE_SCALAR ? "'" : "");
	return -1;
}

int kr_config_check(const char *file, const char *stage, const kr_option *options,
                    const kr_node *with, const kr_node *at, kr_error *err)
{
	size_t n_opts = 0;
	for (const kr_option *o = options; o && o->name; o++)
		n_opts++;
	if (with) {
		for (size_t i = 0; i < with->n; i++) {
			const kr_node *k = with->keys[i];
			const kr_option *o = NULL;
			for (size_t j = 0; j < n_opts; j++)
				if (strcmp(options[j].name, k->value) == 0)
					o = &options[j];
			if (!o) {
				const char **names = kr_calloc(n_opts, sizeof(char *));
				for (size_t j = 0; j < n_opts; j++)
					names[j] = options[j].name;
				char where[160];
				snprintf(where, sizeof(where), "in 'with' of stage '%s'", stage);
				if (n_opts == 0)
					kr_error_set(err, KR_EXIT_USAGE,
					             "%s:%d:%d: unknown key '%s' %s: its plugin takes no options",
					             file, k->line, k->col, k->value, where);
				else
					kr_error_unknown_key(err, file, k, where, names, n_opts);
				free(names);
				return -1;
			}
			if (check_value(file, stage, o, with->items[i], err))
				return -1;
		}
	}
	for (size_t j = 0; j < n_opts; j++) {
		if (options[j].required && !kr_node_get(with, options[j].name)) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s:%d:%d: stage '%s' needs option '%s' under 'with:' (%s)", file,
			             at ? at->line : 1, at ? at->col : 1, stage, options[j].name,
			             options[j].help ? options[j].help : type_names[options[j].type]);
			return -1;
		}
	}
	return 0;
}

static const kr_option *find_option(const kr_config *cfg, const char *name)
{
	if (!name) {
		kr_log(KR_LOG_WARN, cfg->stage, "plugin asked for an option without a name (NULL)");
		return NULL;
	}
	for (const kr_option *o = cfg->options; o && o->name; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	kr_log(KR_LOG_WARN, cfg->stage, "plugin asked for option '%s', which it does not declare",
	       name);
	return NULL;
}

/* The option's text: the stage's value, else the declared default. */
static const char *scalar_text(const kr_config *cfg, const char *name)
{
	const kr_option *o = find_option(cfg, name);
	if (!o)
		return NULL;
	const kr_node *v = kr_node_get(cfg->with, name);
	if (v && v->type == KR_NODE_SCALAR)
		return v->value;
	return o->default_value;
}

const char *kr_config_string(const kr_config *cfg, const char *name)
{
	return scalar_text(cfg, name);
}

/* The option's value as the getter's type (not necessarily the declared
 * one: a string option read as an integer is parsed as one). */
static int typed(const kr_config *cfg, const char *name, kr_option_type as, void *out)
{
	const char *s = scalar_text(cfg, name);
	return s && out && parse_as(as, s, out) == 0 ? KR_OK : KR_NOT_FOUND;
}

int kr_config_int(const kr_config *cfg, const char *name, int64_t *out)
{
	return typed(cfg, name, KR_OPT_INT, out);
}

int kr_config_bool(const kr_config *cfg, const char *name, int *out)
{
	return typed(cfg, name, KR_OPT_BOOL, out);
}

int kr_config_duration_ms(const kr_config *cfg, const char *name, uint64_t *out)
{
	return typed(cfg, name, KR_OPT_DURATION, out);
}

int kr_config_size(const kr_config *cfg, const char *name, uint64_t *out)
{
	return typed(cfg, name, KR_OPT_SIZE, out);
}

/* A list or map option's entries (keys when key is set), as the plugin
 * gave them; a missing option, another node type or i past the end reads
 * as nothing. */
static const kr_node *collection(const kr_config *cfg, const char *name, kr_node_type type)
{
	if (!find_option(cfg, name))
		return NULL;
	const kr_node *v = kr_node_get(cfg->with, name);
	return v && v->type == type ? v : NULL;
}

static size_t count_of(const kr_config *cfg, const char *name, kr_node_type type)
{
	const kr_node *v = collection(cfg, name, type);
	return v ? v->n : 0;
}

static const char *entry_of(const kr_config *cfg, const char *name, kr_node_type type, size_t i,
                            int key)
{
	const kr_node *v = collection(cfg, name, type);
	return v && i < v->n ? (key ? v->keys[i] : v->items[i])->value : NULL;
}

size_t kr_config_list_count(const kr_config *cfg, const char *name)
{
	return count_of(cfg, name, KR_NODE_SEQ);
}

const char *kr_config_list_item(const kr_config *cfg, const char *name, size_t i)
{
	return entry_of(cfg, name, KR_NODE_SEQ, i, 0);
}

size_t kr_config_map_count(const kr_config *cfg, const char *name)
{
	return count_of(cfg, name, KR_NODE_MAP);
}

const char *kr_config_map_key(const kr_config *cfg, const char *name, size_t i)
{
	return entry_of(cfg, name, KR_NODE_MAP, i, 1);
}

const char *kr_config_map_value(const kr_config *cfg, const char *name, size_t i)
{
	return entry_of(cfg, name, KR_NODE_MAP, i, 0);
}
