/*
 * node.h - a YAML (or JSON) document as a small tree with positions.
 *
 * Pipeline files, task files and `with:` blocks are read into this tree
 * first and checked against their schema second, so every error can name
 * the file, line and column of the offending node.  The reader is strict:
 * duplicate keys, tabs in indentation, anchors and aliases, several
 * documents, non-scalar keys and an empty file are errors.
 */
#ifndef KR_NODE_H
#define KR_NODE_H

#include <stddef.h>

#include "util.h"

typedef enum kr_node_type { KR_NODE_SCALAR, KR_NODE_SEQ, KR_NODE_MAP } kr_node_type;

typedef struct kr_node {
	kr_node_type type;
	int line, col;          /* 1-based position in the source         */
	char *value;            /* scalar text (owned); NULL otherwise    */
	size_t value_len;       /* scalar length; may contain NUL bytes   */
	int plain;              /* scalar was unquoted: may be null/bool  */
	size_t n;               /* number of items or of key/value pairs  */
	struct kr_node **items; /* sequence items, or mapping values      */
	struct kr_node **keys;  /* mapping keys (scalars); NULL for seqs  */
} kr_node;

/* Largest file read, and deepest nesting accepted. */
#define KR_NODE_MAX_FILE (4u << 20)
#define KR_NODE_MAX_DEPTH 64

/* Parse a whole file; `name` is used in messages.  The tree is the
 * caller's: free it with kr_node_free. */
int kr_node_load_file(const char *path, kr_node **out, kr_error *err);
int kr_node_load_string(const char *name, const char *text, size_t len,
                        kr_node **out, kr_error *err);
void kr_node_free(kr_node *n);

/* Value for key in a mapping, or NULL. */
const kr_node *kr_node_get(const kr_node *map, const char *key);
/* A plain scalar spelling null ("", "~", "null"). */
int kr_node_is_null(const kr_node *n);
const char *kr_node_type_name(const kr_node *n);

/* Report an unknown key with the nearest valid one suggested, at the
 * key's file:line:col. */
void kr_error_unknown_key(kr_error *err, const char *file, const kr_node *key,
                          const char *where, const char *const *valid, size_t n);

#endif
