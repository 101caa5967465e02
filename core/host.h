/*
 * host.h - the core's API for its own modules (backend-api.so,
 * launcher.so): one table of function pointers the executable fills once
 * (core/host.c) and hands to a module's init before anything else in the
 * module runs (core/module.h).  The executable exports no kr_* symbol, so
 * this table is the only way into the core: a stage plugin, which gets
 * only kr_services, cannot reach the core's internals.
 *
 * On the module side core/host_import.c defines every kr_* function below
 * as a forward through the table, so the modules' sources call the core's
 * functions by their usual names, checked against the same prototypes.
 *
 * Changing the table: add members at the end and bump KR_HOST_ABI.  A
 * module refuses a table whose abi or size is below what it was built
 * with (a module newer than the executable).  Variadic functions cross as
 * their va_list forms.
 */
#ifndef KR_HOST_H
#define KR_HOST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "log.h"
#include "logline.h"
#include "node.h"
#include "settings.h"
#include "task.h"
#include "util.h"

#define KR_HOST_ABI 1

typedef struct kr_host {
	uint32_t abi;  /* KR_HOST_ABI of the executable */
	uint32_t size; /* sizeof(kr_host) of the executable */

	/* util.h */
	void (*error_vset)(kr_error *err, int code, const char *fmt, va_list ap);
	void (*error_clear)(kr_error *err);
	int (*error_vwrap)(kr_error *err, int code, const char *fmt, va_list ap);
	void *(*malloc)(size_t n);
	void *(*calloc)(size_t n, size_t size);
	void *(*realloc)(void *p, size_t n);
	char *(*strdup)(const char *s);
	char *(*strndup)(const char *s, size_t n);
	char *(*vasprintf)(const char *fmt, va_list ap);
	void (*buf_add)(kr_buf *b, const void *data, size_t len);
	void (*buf_adds)(kr_buf *b, const char *s);
	void (*buf_vaddf)(kr_buf *b, const char *fmt, va_list ap);
	void (*buf_addc)(kr_buf *b, char c);
	void (*buf_add_json_str)(kr_buf *b, const char *s, size_t len);
	void (*buf_reset)(kr_buf *b);
	void (*buf_free)(kr_buf *b);
	int (*open_regular)(const char *path, uint64_t max, int code, const char *what,
	                    kr_error *err);
	char *(*read_value_file)(const char *path, uint64_t max, const char *what, kr_error *err);
	char *(*read_file)(const char *path, uint64_t max, size_t *len, int code, const char *what,
	                   kr_error *err);
	int (*id_check)(const char *what, const char *id, kr_error *err);
	int (*token_check)(const char *what, const char *token, kr_error *err);
	uint64_t (*now_ms)(void);

	/* log.h, secret.h, supervise.h, area.h */
	kr_log_level (*log_get_level)(void);
	void (*logv)(kr_log_level level, const char *stage, const char *fmt, va_list ap);
	void (*secret_add)(const char *value);
	void (*secret_add_url_password)(const char *url);
	void (*secret_mask)(const char *text, size_t len, kr_buf *out);
	int (*supervise_signal)(void);
	int (*area_id_ok)(const char *id);
	int (*area_mkdirs)(const char *path);

	/* node.h */
	int (*node_load_file)(const char *path, kr_node **out, kr_error *err);
	int (*node_load_string)(const char *name, const char *text, size_t len, kr_node **out,
	                        kr_error *err);
	void (*node_free)(kr_node *n);
	const kr_node *(*node_get)(const kr_node *map, const char *key);
	int (*node_is_null)(const kr_node *n);

	/* settings.h */
	const char *(*settings_status_name)(const kr_settings *s, const char *which);
	const char *(*settings_get)(const kr_settings *s, kr_setting_id id);
	int (*settings_api_token)(const kr_settings *s, char **out, kr_error *err);
	int (*settings_bool)(const kr_settings *s, kr_setting_id id);
	uint64_t (*settings_u64)(const kr_settings *s, kr_setting_id id);
	size_t (*settings_list_count)(const kr_settings *s, kr_setting_id id);
	const char *(*settings_list_item)(const kr_settings *s, kr_setting_id id, size_t i);
	const char *(*settings_map_get)(const kr_settings *s, kr_setting_id id, const char *key);

	/* task.h, backend.h */
	kr_task *(*task_new)(void);
	void (*task_free)(kr_task *t);
	const char *(*task_get)(const kr_task *t, const char *key);
	int (*task_set)(kr_task *t, const char *key, const char *value);
	int (*task_is_field)(const char *key);
	size_t (*task_list_count)(const kr_task *t, const char *list);
	const char *(*task_list_item)(const kr_task *t, const char *list, size_t i);
	int (*task_list_add)(kr_task *t, const char *list, const char *value);
	int (*task_fill_from_node)(kr_task *t, const kr_node *task, const char *name, kr_error *err);
	int (*task_fill_repository)(kr_task *t, const kr_node *repo, const char *name,
	                            kr_error *err);
	int (*taskfile_load)(const char *file, kr_node **out, kr_error *err);

	/* secret.h, logline.h: masked errors, the shipped log's cuts */
	void (*secret_error_vset)(kr_error *err, int code, const char *fmt, va_list ap);
	size_t (*logline_cut)(kr_logline_cutter *c, const char *data, size_t len, int ends,
	                      kr_logline_emit *emit, void *ctx);
	void (*logline_cutter_free)(kr_logline_cutter *c);
	void (*logline_budget)(uint64_t max_total, uint64_t max_line, uint64_t *head,
	                       uint64_t *tail);
	size_t (*logline_notice)(char *buf, size_t n, uint64_t lines, uint64_t bytes,
	                         uint64_t head, uint64_t tail);
} kr_host;

/* The executable's table (core/host.c); lives as long as the process. */
const kr_host *kr_host_get(void);

#endif
