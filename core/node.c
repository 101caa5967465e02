/* node.c - see node.h. */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct parse_state {
	const char *name;
	yaml_parser_t parser;
	kr_error *err;
	int depth;
} parse_state;

static kr_node *node_new(kr_node_type type, const yaml_mark_t *m)
{
	kr_node *n = kr_calloc(1, sizeof(*n));
	n->type = type;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

void kr_node_free(kr_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		kr_node_free(n->items[i]);
		if (n->keys)
			kr_node_free(n->keys[i]);
	}
	free(n->items);
	free(n->keys);
	free(n->value);
	free(n);
}

static void node_append(kr_node *parent, kr_node *key, kr_node *value)
{
	if ((parent->n & (parent->n - 1)) == 0) { /* grow at powers of two */
		size_t cap = parent->n ? parent->n * 2 : 4;
		parent->items = kr_realloc(parent->items, cap * sizeof(kr_node *));
		if (parent->type == KR_NODE_MAP)
			parent->keys = kr_realloc(parent->keys, cap * sizeof(kr_node *));
	}
	parent->items[parent->n] = value;
	if (parent->type == KR_NODE_MAP)
		parent->keys[parent->n] = key;
	parent->n++;
}

static int next_event(parse_state *st, yaml_event_t *ev)
{
	if (yaml_parser_parse(&st->parser, ev))
		return 0;
	const yaml_mark_t *m = &st->parser.problem_mark;
	const char *problem = st->parser.problem ? st->parser.problem : "invalid YAML";
	if (st->parser.context)
		kr_error_set(st->err, KR_EXIT_USAGE, "%s:%zu:%zu: %s %s", st->name,
		             m->line + 1, m->column + 1, problem, st->parser.context);
	else
		kr_error_set(st->err, KR_EXIT_USAGE, "%s:%zu:%zu: %s", st->name, m->line + 1,
		             m->column + 1, problem);
	return -1;
}

static kr_node *parse_node(parse_state *st, yaml_event_t *ev);

typedef struct key_ref {
	const kr_node *key;
	size_t at; /* position in the mapping */
} key_ref;

static int key_order(const void *a, const void *b)
{
	const key_ref *x = a, *y = b;
	int c = strcmp(x->key->value, y->key->value);
	return c ? c : (x->at > y->at) - (x->at < y->at);
}

/*
 * A key given twice in a mapping: the error names the repeat that comes
 * first in the document.  Sorted, not compared pairwise: every keruta-api
 * answer (up to the size limit) goes through here, and 150,000 keys
 * compared pairwise take minutes.
 */
static int duplicate_key(parse_state *st, const kr_node *map)
{
	if (map->n < 2)
		return 0;
	key_ref *k = kr_malloc(map->n * sizeof(*k));
	for (size_t i = 0; i < map->n; i++)
		k[i] = (key_ref){map->keys[i], i};
	qsort(k, map->n, sizeof(*k), key_order);
	size_t first = 0, second = 0, run = 0; /* second == 0: none found */
	for (size_t i = 1; i < map->n; i++) {
		if (strcmp(k[i - 1].key->value, k[i].key->value) != 0) {
			run = i;
			continue;
		}
		if (!second || k[i].at < second) {
			first = k[run].at;
			second = k[i].at;
		}
	}
	free(k);
	if (!second)
		return 0;
	const kr_node *key = map->keys[second];
	kr_error_set(st->err, KR_EXIT_USAGE, "%s:%d:%d: duplicate key '%s' (first at line %d)",
	             st->name, key->line, key->col, key->value, map->keys[first]->line);
	return -1;
}

/* Parse the body of a sequence or mapping whose start event was `start`. */
static kr_node *parse_collection(parse_state *st, kr_node *n)
{
	for (;;) {
		yaml_event_t ev;
		if (next_event(st, &ev))
			goto fail;
		if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			if (n->type == KR_NODE_MAP && duplicate_key(st, n))
				goto fail;
			return n;
		}
		if (n->type == KR_NODE_SEQ) {
			kr_node *item = parse_node(st, &ev);
			yaml_event_delete(&ev);
			if (!item)
				goto fail;
			node_append(n, NULL, item);
			continue;
		}
		/* mapping: key then value */
		if (ev.type != YAML_SCALAR_EVENT) {
			kr_error_set(st->err, KR_EXIT_USAGE,
			             "%s:%zu:%zu: a mapping key must be a plain string",
			             st->name, ev.start_mark.line + 1, ev.start_mark.column + 1);
			yaml_event_delete(&ev);
			goto fail;
		}
		kr_node *key = parse_node(st, &ev);
		yaml_event_delete(&ev);
		if (!key)
			goto fail;
		if (next_event(st, &ev)) {
			kr_node_free(key);
			goto fail;
		}
		kr_node *value = parse_node(st, &ev);
		yaml_event_delete(&ev);
		if (!value) {
			kr_node_free(key);
			goto fail;
		}
		node_append(n, key, value);
	}
fail:
	kr_node_free(n);
	return NULL;
}

static kr_node *parse_node(parse_state *st, yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		kr_error_set(st->err, KR_EXIT_USAGE,
		             "%s:%zu:%zu: YAML aliases (*name) are not supported; write the value out",
		             st->name, m->line + 1, m->column + 1);
		return NULL;
	case YAML_SCALAR_EVENT: {
		if (ev->data.scalar.anchor) {
			kr_error_set(st->err, KR_EXIT_USAGE,
			             "%s:%zu:%zu: YAML anchors (&name) are not supported",
			             st->name, m->line + 1, m->column + 1);
			return NULL;
		}
		kr_node *n = node_new(KR_NODE_SCALAR, m);
		n->value = kr_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		n->value_len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return n;
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		const yaml_char_t *anchor = ev->type == YAML_SEQUENCE_START_EVENT
		                                    ? ev->data.sequence_start.anchor
		                                    : ev->data.mapping_start.anchor;
		if (anchor) {
			kr_error_set(st->err, KR_EXIT_USAGE,
			             "%s:%zu:%zu: YAML anchors (&name) are not supported",
			             st->name, m->line + 1, m->column + 1);
			return NULL;
		}
		if (++st->depth > KR_NODE_MAX_DEPTH) {
			kr_error_set(st->err, KR_EXIT_USAGE,
			             "%s:%zu:%zu: nesting deeper than %d levels", st->name,
			             m->line + 1, m->column + 1, KR_NODE_MAX_DEPTH);
			return NULL;
		}
		kr_node *n = node_new(ev->type == YAML_SEQUENCE_START_EVENT ? KR_NODE_SEQ
		                                                            : KR_NODE_MAP,
		                      m);
		n = parse_collection(st, n);
		st->depth--;
		return n;
	}
	default:
		kr_error_set(st->err, KR_EXIT_USAGE, "%s:%zu:%zu: unexpected YAML event",
		             st->name, m->line + 1, m->column + 1);
		return NULL;
	}
}

/* libyaml's message for a tab in indentation is "found character that
 * cannot start any token".  After a parse error, look for such a tab at or
 * before the error's line and say what is really wrong.  (Tabs inside a
 * literal block are content and parse fine, so this runs only on errors.) */
static int find_indent_tab(const char *name, const char *text, size_t len, int upto,
                           kr_error *err)
{
	int line = 1;
	size_t i = 0;
	while (i < len && line <= upto) {
		size_t col = 1;
		while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '-')) {
			if (text[i] == '\t') {
				kr_error_set(err, KR_EXIT_USAGE,
				             "%s:%d:%zu: tab character in indentation; YAML indents with spaces",
				             name, line, col);
				return -1;
			}
			i++;
			col++;
		}
		while (i < len && text[i] != '\n')
			i++;
		i++;
		line++;
	}
	return 0;
}

int kr_node_load_string(const char *name, const char *text, size_t len, kr_node **out,
                        kr_error *err)
{
	parse_state st = {.name = name, .err = err};
	kr_node *root = NULL;
	yaml_event_t ev;
	int docs = 0, rc = -1;

	*out = NULL;
	if (!yaml_parser_initialize(&st.parser)) {
		kr_error_set(err, KR_EXIT_INTERNAL, "%s: cannot initialise the YAML parser", name);
		return -1;
	}
	yaml_parser_set_input_string(&st.parser, (const unsigned char *)text, len);
	for (;;) {
		if (next_event(&st, &ev))
			goto out;
		yaml_event_type_t type = ev.type;
		if (type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
			kr_error_set(err, KR_EXIT_USAGE,
			             "%s:%zu:%zu: a second YAML document; the file must hold one",
			             name, ev.start_mark.line + 1, ev.start_mark.column + 1);
			yaml_event_delete(&ev);
			goto out;
		}
		if (type == YAML_SCALAR_EVENT || type == YAML_SEQUENCE_START_EVENT ||
		    type == YAML_MAPPING_START_EVENT || type == YAML_ALIAS_EVENT) {
			root = parse_node(&st, &ev);
			yaml_event_delete(&ev);
			if (!root)
				goto out;
			continue;
		}
		yaml_event_delete(&ev);
	}
	if (!root || (root->type == KR_NODE_SCALAR && kr_node_is_null(root))) {
		kr_error_set(err, KR_EXIT_USAGE, "%s:1:1: the file is empty", name);
		goto out;
	}
	*out = root;
	root = NULL;
	rc = 0;
out:
	if (rc != 0 && err && err->code == KR_EXIT_USAGE) {
		int line = 0;
		const char *p = strchr(err->msg + strlen(name), ':');
		if (p)
			line = atoi(p + 1);
		kr_error probe = {0};
		if (line > 0 && find_indent_tab(name, text, len, line, &probe) != 0)
			*err = probe;
	}
	kr_node_free(root);
	yaml_parser_delete(&st.parser);
	return rc;
}

int kr_node_load_file(const char *path, kr_node **out, kr_error *err)
{
	size_t len = 0;
	char *text = kr_read_file(path, KR_NODE_MAX_FILE, &len, KR_EXIT_USAGE, "cannot read", err);
	if (!text) {
		*out = NULL;
		return -1;
	}
	int rc = kr_node_load_string(path, text, len, out, err);
	free(text);
	return rc;
}

const kr_node *kr_node_get(const kr_node *map, const char *key)
{
	if (!map || map->type != KR_NODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->value, key) == 0)
			return map->items[i];
	return NULL;
}

int kr_node_is_null(const kr_node *n)
{
	return n->type == KR_NODE_SCALAR && n->plain &&
	       (n->value_len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
	        strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0);
}

const char *kr_node_type_name(const kr_node *n)
{
	switch (n->type) {
	case KR_NODE_SCALAR: return "a scalar";
	case KR_NODE_SEQ: return "a list";
	case KR_NODE_MAP: return "a mapping";
	}
	return "?";
}

void kr_error_unknown_key(kr_error *err, const char *file, const kr_node *key,
                          const char *where, const char *const *valid, size_t n)
{
	const char *near = kr_nearest(key->value, valid, n);
	kr_buf list = {0};
	for (size_t i = 0; i < n; i++)
		kr_buf_addf(&list, "%s%s", i ? ", " : "", valid[i]);
	if (near)
		kr_error_set(err, KR_EXIT_USAGE, "%s:%d:%d: unknown key '%s' %s (did you mean '%s'?)",
		             file, key->line, key->col, key->value, where, near);
	else
		kr_error_set(err, KR_EXIT_USAGE, "%s:%d:%d: unknown key '%s' %s (valid keys: %s)",
		             file, key->line, key->col, key->value, where, list.data ? list.data : "");
	kr_buf_free(&list);
}
