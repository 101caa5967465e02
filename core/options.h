/*
 * options.h - a stage's `with:` block checked against its plugin's option
 * table.  This is the kr_config a plugin sees through kr_services.
 */
#ifndef KR_OPTIONS_H
#define KR_OPTIONS_H

#include "keruta/plugin.h"
#include "node.h"
#include "util.h"

struct kr_config {
	const char *stage;         /* stage name, for messages              */
	const kr_option *options;  /* the plugin's table (may be NULL)      */
	const kr_node *with;       /* the validated mapping, or NULL        */
	/* owned (kr_loader_config_release): per option row, the list or map
	 * option's value as a NULL-ended array for opt_bind; NULL elsewhere */
	const char ***arrays;
};

/* Check `with` against `options`; errors name file, line and column.
 * `at` is where to point when a required option is missing. */
int kr_config_check(const char *file, const char *stage, const kr_option *options,
                    const kr_node *with, const kr_node *at, kr_error *err);

/* Accessors behind kr_services (see keruta/plugin.h). */
const char *kr_config_string(const kr_config *cfg, const char *name);
int kr_config_int(const kr_config *cfg, const char *name, int64_t *out);
int kr_config_bool(const kr_config *cfg, const char *name, int *out);
int kr_config_duration_ms(const kr_config *cfg, const char *name, uint64_t *out);
int kr_config_size(const kr_config *cfg, const char *name, uint64_t *out);
size_t kr_config_list_count(const kr_config *cfg, const char *name);
const char *kr_config_list_item(const kr_config *cfg, const char *name, size_t i);
size_t kr_config_map_count(const kr_config *cfg, const char *name);
const char *kr_config_map_key(const kr_config *cfg, const char *name, size_t i);
const char *kr_config_map_value(const kr_config *cfg, const char *name, size_t i);

#endif
