/* pipeline.c - see pipeline.h. */
#include "pipeline.h"
#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const kr_phase_names[KR_PHASE_COUNT] = {"execute", "init", "run", "cleanup"};

static const char *const top_keys[] = {"version", "plugin_path", "settings", "phases", "stages"};
static const char *const stage_keys[] = {"plugin", "with", "when", "timeout", "description"};
static const char *const when_values[] = {"on_success", "on_failure", "always"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int expect(const char *file, const kr_node *n, kr_node_type type, const char *what,
                  kr_error *err)
{
	if (n->type == type && !(type == KR_NODE_SCALAR && kr_node_is_null(n)))
		return 0;
	static const char *const names[] = {"a string", "a list", "a mapping"};
	kr_error_set(err, KR_EXIT_USAGE, "%s:%d:%d: %s must be %s, not %s", file, n->line, n->col,
	             what, names[type], kr_node_is_null(n) ? "empty" : kr_node_type_name(n));
	return -1;
}

static int parse_stage(kr_pipeline *p, const kr_node *key, const kr_node *val, kr_stage_def *d,
                       kr_error *err)
{
	const char *file = p->path;
	d->name = key->value;
	d->plugin = key->value;
	d->plugin_node = key;
	d->node = val;
	if (!kr_name_ok(key->value)) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s:%d:%d: stage name '%s' may hold only letters, digits, '-', '_' and '.'",
		             file, key->line, key->col, key->value);
		return -1;
	}
	if (val->type == KR_NODE_SCALAR && kr_node_is_null(val))
		return 0; /* "clone:" alone: plugin of the same name, defaults */
	char what[160];
	snprintf(what, sizeof(what), "stage '%s'", key->value);
	if (expect(file, val, KR_NODE_MAP, what, err))
		return -1;
	for (size_t i = 0; i < val->n; i++) {
		const kr_node *k = val->keys[i], *v = val->items[i];
		if (strcmp(k->value, "plugin") == 0) {
			if (expect(file, v, KR_NODE_SCALAR, "'plugin'", err))
				return -1;
			d->plugin = v->value;
			d->plugin_node = v;
		} else if (strcmp(k->value, "with") == 0) {
			if (kr_node_is_null(v))
				continue;
			if (expect(file, v, KR_NODE_MAP, "'with'", err))
				return -1;
			d->with = v;
		} else if (strcmp(k->value, "when") == 0) {
			if (expect(file, v, KR_NODE_SCALAR, "'when'", err))
				return -1;
			size_t w;
			for (w = 0; w < N(when_values); w++)
				if (strcmp(v->value, when_values[w]) == 0)
					break;
			if (w == N(when_values)) {
				kr_error_set(err, KR_EXIT_USAGE,
				             "%s:%d:%d: 'when' must be on_success, on_failure or always, not '%s'",
				             file, v->line, v->col, v->value);
				return -1;
			}
			d->when = (kr_when)w;
		} else if (strcmp(k->value, "timeout") == 0) {
			if (expect(file, v, KR_NODE_SCALAR, "'timeout'", err))
				return -1;
			if (kr_parse_duration_ms(v->value, &d->timeout_ms) || d->timeout_ms == 0) {
				kr_error_set(err, KR_EXIT_USAGE,
				             "%s:%d:%d: 'timeout' must be a duration such as 30s, 10m or 2h, not '%s'",
				             file, v->line, v->col, v->value);
				return -1;
			}
		} else if (strcmp(k->value, "description") == 0) {
			if (expect(file, v, KR_NODE_SCALAR, "'description'", err))
				return -1;
		} else {
			snprintf(what, sizeof(what), "in stage '%s'", key->value);
			kr_error_unknown_key(err, file, k, what, stage_keys, N(stage_keys));
			return -1;
		}
	}
	return 0;
}

static int parse_phases(kr_pipeline *p, const kr_node *phases, kr_error *err)
{
	const char *file = p->path;
	if (expect(file, phases, KR_NODE_MAP, "'phases'", err))
		return -1;
	for (size_t i = 0; i < phases->n; i++) {
		const kr_node *k = phases->keys[i], *v = phases->items[i];
		size_t ph;
		for (ph = 0; ph < KR_PHASE_COUNT; ph++)
			if (strcmp(k->value, kr_phase_names[ph]) == 0)
				break;
		if (ph == KR_PHASE_COUNT) {
			const char *near = kr_nearest(k->value, kr_phase_names, KR_PHASE_COUNT);
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s:%d:%d: unknown phase '%s'%s%s%s (phases are execute, init, run, cleanup)",
			             file, k->line, k->col, k->value, near ? " (did you mean '" : "",
			             near ? near : "", near ? "'?)" : "");
			return -1;
		}
		char what[64];
		snprintf(what, sizeof(what), "phase '%s'", k->value);
		if (expect(file, v, KR_NODE_SEQ, what, err))
			return -1;
		kr_phase *phase = &p->phases[ph];
		phase->stages = kr_calloc(v->n, sizeof(*phase->stages));
		phase->refs = kr_calloc(v->n, sizeof(*phase->refs));
		for (size_t j = 0; j < v->n; j++) {
			const kr_node *item = v->items[j];
			if (expect(file, item, KR_NODE_SCALAR, "a phase entry", err))
				return -1;
			kr_stage_def *d = NULL;
			for (size_t s = 0; s < p->n_stages; s++)
				if (strcmp(p->stage_defs[s].name, item->value) == 0)
					d = &p->stage_defs[s];
			if (!d) {
				const char **names = kr_calloc(p->n_stages, sizeof(*names));
				for (size_t s = 0; s < p->n_stages; s++)
					names[s] = p->stage_defs[s].name;
				const char *near = kr_nearest(item->value, names, p->n_stages);
				kr_error_set(err, KR_EXIT_USAGE,
				             "%s:%d:%d: phase '%s' lists stage '%s', which is not defined under 'stages:'%s%s%s",
				             file, item->line, item->col, k->value, item->value,
				             near ? " (did you mean '" : "", near ? near : "",
				             near ? "'?)" : "");
				free(names);
				return -1;
			}
			phase->stages[phase->n] = d;
			phase->refs[phase->n] = item;
			phase->n++;
		}
	}
	return 0;
}

static int parse_root(kr_pipeline *p, kr_error *err)
{
	const char *file = p->path;
	const kr_node *root = p->root;
	if (root->type != KR_NODE_MAP) {
		kr_error_set(err, KR_EXIT_USAGE, "%s:%d:%d: a pipeline file must be a mapping, not %s",
		             file, root->line, root->col, kr_node_type_name(root));
		return -1;
	}
	for (size_t i = 0; i < root->n; i++) {
		size_t j;
		for (j = 0; j < N(top_keys); j++)
			if (strcmp(root->keys[i]->value, top_keys[j]) == 0)
				break;
		if (j == N(top_keys)) {
			kr_error_unknown_key(err, file, root->keys[i], "at the top level", top_keys,
			                     N(top_keys));
			return -1;
		}
	}
	const kr_node *v = kr_node_get(root, "version");
	if (!v) {
		kr_error_set(err, KR_EXIT_USAGE, "%s:%d:%d: missing 'version: 1'", file, root->line,
		             root->col);
		return -1;
	}
	int64_t ver;
	if (v->type != KR_NODE_SCALAR || kr_parse_int64(v->value, &ver) || ver != 1) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s:%d:%d: unsupported pipeline version '%s'; this agent reads version 1",
		             file, v->line, v->col, v->type == KR_NODE_SCALAR ? v->value : "?");
		return -1;
	}
	p->version = (int)ver;

	if ((v = kr_node_get(root, "plugin_path")) && !kr_node_is_null(v)) {
		if (v->type == KR_NODE_SCALAR) { /* one directory may be given bare */
			p->plugin_path = kr_calloc(1, sizeof(char *));
			p->plugin_path[p->n_plugin_path++] = v->value;
		} else {
			if (expect(file, v, KR_NODE_SEQ, "'plugin_path'", err))
				return -1;
			p->plugin_path = kr_calloc(v->n, sizeof(char *));
			for (size_t i = 0; i < v->n; i++) {
				if (expect(file, v->items[i], KR_NODE_SCALAR, "a plugin_path entry", err))
					return -1;
				p->plugin_path[p->n_plugin_path++] = v->items[i]->value;
			}
		}
	}

	if ((v = kr_node_get(root, "settings")) && !kr_node_is_null(v)) {
		if (expect(file, v, KR_NODE_MAP, "'settings'", err))
			return -1;
		if (kr_settings_check_node(file, v, err))
			return -1;
		p->settings = v;
	}

	const kr_node *stages = kr_node_get(root, "stages");
	if (stages && !kr_node_is_null(stages)) {
		if (expect(file, stages, KR_NODE_MAP, "'stages'", err))
			return -1;
		p->stage_defs = kr_calloc(stages->n, sizeof(*p->stage_defs));
		for (size_t i = 0; i < stages->n; i++) {
			if (parse_stage(p, stages->keys[i], stages->items[i], &p->stage_defs[i], err))
				return -1;
			p->n_stages++;
		}
	}
	const kr_node *phases = kr_node_get(root, "phases");
	if (!phases) {
		kr_error_set(err, KR_EXIT_USAGE,
		             "%s:%d:%d: missing 'phases:'; name the stages each command runs",
		             file, root->line, root->col);
		return -1;
	}
	return parse_phases(p, phases, err);
}

static kr_pipeline *finish(kr_pipeline *p, kr_error *err)
{
	if (parse_root(p, err)) {
		kr_pipeline_free(p);
		return NULL;
	}
	for (size_t i = 0; i < KR_PHASE_COUNT; i++)
		p->phases[i].name = kr_phase_names[i];
	return p;
}

kr_pipeline *kr_pipeline_load(const char *path, kr_error *err)
{
	kr_pipeline *p = kr_calloc(1, sizeof(*p));
	p->path = kr_strdup(path);
	if (kr_node_load_file(path, &p->root, err)) {
		kr_pipeline_free(p);
		return NULL;
	}
	return finish(p, err);
}

kr_pipeline *kr_pipeline_parse(const char *name, const char *text, size_t len, kr_error *err)
{
	kr_pipeline *p = kr_calloc(1, sizeof(*p));
	p->path = kr_strdup(name);
	if (kr_node_load_string(name, text, len, &p->root, err)) {
		kr_pipeline_free(p);
		return NULL;
	}
	return finish(p, err);
}

void kr_pipeline_free(kr_pipeline *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < KR_PHASE_COUNT; i++) {
		free(p->phases[i].stages);
		free(p->phases[i].refs);
	}
	free(p->stage_defs);
	free(p->plugin_path);
	kr_node_free(p->root);
	free(p->path);
	free(p);
}

const kr_phase *kr_pipeline_phase(const kr_pipeline *p, const char *name)
{
	for (size_t i = 0; i < KR_PHASE_COUNT; i++)
		if (strcmp(kr_phase_names[i], name) == 0)
			return &p->phases[i];
	return NULL;
}

