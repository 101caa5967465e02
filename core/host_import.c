/*
 * host_import.c - compiled into each module (backend-api.so, launcher.so),
 * never into the executable: the core functions a module calls, each a
 * forward through the table the core handed to the module's init
 * (core/host.h).  Including the core's own headers makes the compiler
 * check every forward against the core's prototype, so the modules'
 * sources call kr_* functions as if they were linked with the core, and
 * import no kr_* symbol.
 */
#include <stdio.h>

#include "area.h"
#include "host.h"
#include "secret.h"
#include "supervise.h"

/* Set once by kr_host_import, the module's init, before the core calls
 * anything else in the module; read-only afterwards.  The core owns it. */
static const kr_host *host;

int kr_host_import(const kr_host *h, kr_error *err)
{
	/* No kr_* call works yet: the error is written here directly. */
	if (!h || h->abi < KR_HOST_ABI || h->size < sizeof(kr_host)) {
		if (err && !err->code) {
			err->code = KR_EXIT_INTERNAL;
			snprintf(err->msg, sizeof(err->msg),
			         "the module needs the core API %u (%zu bytes) and the keruta-agent "
			         "executable offers %u (%u bytes): the executable is older than the "
			         "module; reinstall keruta-agent so both come from one build",
			         (unsigned)KR_HOST_ABI, sizeof(kr_host), h ? (unsigned)h->abi : 0,
			         h ? (unsigned)h->size : 0);
		}
		return KR_FAILED;
	}
	host = h;
	return KR_OK;
}

/* util.h */
void kr_error_vset(kr_error *err, int code, const char *fmt, va_list ap)
{
	host->error_vset(err, code, fmt, ap);
}

void kr_error_set(kr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	host->error_vset(err, code, fmt, ap);
	va_end(ap);
}

void kr_error_clear(kr_error *err)
{
	host->error_clear(err);
}

int kr_error_vwrap(kr_error *err, int code, const char *fmt, va_list ap)
{
	return host->error_vwrap(err, code, fmt, ap);
}

int kr_error_wrap(kr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = host->error_vwrap(err, code, fmt, ap);
	va_end(ap);
	return rc;
}

void *kr_malloc(size_t n)
{
	return host->malloc(n);
}

void *kr_calloc(size_t n, size_t size)
{
	return host->calloc(n, size);
}

void *kr_realloc(void *p, size_t n)
{
	return host->realloc(p, n);
}

char *kr_strdup(const char *s)
{
	return host->strdup(s);
}

char *kr_strndup(const char *s, size_t n)
{
	return host->strndup(s, n);
}

char *kr_vasprintf(const char *fmt, va_list ap)
{
	return host->vasprintf(fmt, ap);
}

char *kr_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *out = host->vasprintf(fmt, ap);
	va_end(ap);
	return out;
}

void kr_buf_add(kr_buf *b, const void *data, size_t len)
{
	host->buf_add(b, data, len);
}

void kr_buf_adds(kr_buf *b, const char *s)
{
	host->buf_adds(b, s);
}

void kr_buf_vaddf(kr_buf *b, const char *fmt, va_list ap)
{
	host->buf_vaddf(b, fmt, ap);
}

void kr_buf_addf(kr_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	host->buf_vaddf(b, fmt, ap);
	va_end(ap);
}

void kr_buf_addc(kr_buf *b, char c)
{
	host->buf_addc(b, c);
}

void kr_buf_add_json_str(kr_buf *b, const char *s, size_t len)
{
	host->buf_add_json_str(b, s, len);
}

void kr_buf_reset(kr_buf *b)
{
	host->buf_reset(b);
}

void kr_buf_free(kr_buf *b)
{
	host->buf_free(b);
}

int kr_open_regular(const char *path, uint64_t max, int code, const char *what, kr_error *err)
{
	return host->open_regular(path, max, code, what, err);
}

char *kr_read_value_file(const char *path, uint64_t max, const char *what, kr_error *err)
{
	return host->read_value_file(path, max, what, err);
}

char *kr_read_file(const char *path, uint64_t max, size_t *len, int code, const char *what,
                   kr_error *err)
{
	return host->read_file(path, max, len, code, what, err);
}

int kr_id_check(const char *what, const char *id, kr_error *err)
{
	return host->id_check(what, id, err);
}

int kr_token_check(const char *what, const char *token, kr_error *err)
{
	return host->token_check(what, token, err);
}

uint64_t kr_now_ms(void)
{
	return host->now_ms();
}

/* log.h, secret.h, supervise.h, area.h */
kr_log_level kr_log_get_level(void)
{
	return host->log_get_level();
}

void kr_logv(kr_log_level level, const char *stage, const char *fmt, va_list ap)
{
	host->logv(level, stage, fmt, ap);
}

void kr_log(kr_log_level level, const char *stage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	host->logv(level, stage, fmt, ap);
	va_end(ap);
}

void kr_secret_add(const char *value)
{
	host->secret_add(value);
}

void kr_secret_add_url_password(const char *url)
{
	host->secret_add_url_password(url);
}

void kr_secret_mask(const char *text, size_t len, kr_buf *out)
{
	host->secret_mask(text, len, out);
}

int kr_supervise_signal(void)
{
	return host->supervise_signal();
}

int kr_area_id_ok(const char *id)
{
	return host->area_id_ok(id);
}

int kr_area_mkdirs(const char *path)
{
	return host->area_mkdirs(path);
}

/* node.h */
int kr_node_load_file(const char *path, kr_node **out, kr_error *err)
{
	return host->node_load_file(path, out, err);
}

int kr_node_load_string(const char *name, const char *text, size_t len, kr_node **out,
                        kr_error *err)
{
	return host->node_load_string(name, text, len, out, err);
}

void kr_node_free(kr_node *n)
{
	host->node_free(n);
}

const kr_node *kr_node_get(const kr_node *map, const char *key)
{
	return host->node_get(map, key);
}

int kr_node_is_null(const kr_node *n)
{
	return host->node_is_null(n);
}

/* settings.h */
const char *kr_settings_status_name(const kr_settings *s, const char *which)
{
	return host->settings_status_name(s, which);
}

const char *kr_settings_get(const kr_settings *s, kr_setting_id id)
{
	return host->settings_get(s, id);
}

int kr_settings_api_token(const kr_settings *s, char **out, kr_error *err)
{
	return host->settings_api_token(s, out, err);
}

int kr_settings_bool(const kr_settings *s, kr_setting_id id)
{
	return host->settings_bool(s, id);
}

uint64_t kr_settings_u64(const kr_settings *s, kr_setting_id id)
{
	return host->settings_u64(s, id);
}

size_t kr_settings_list_count(const kr_settings *s, kr_setting_id id)
{
	return host->settings_list_count(s, id);
}

const char *kr_settings_list_item(const kr_settings *s, kr_setting_id id, size_t i)
{
	return host->settings_list_item(s, id, i);
}

const char *kr_settings_map_get(const kr_settings *s, kr_setting_id id, const char *key)
{
	return host->settings_map_get(s, id, key);
}

/* task.h, backend.h */
kr_task *kr_task_new(void)
{
	return host->task_new();
}

void kr_task_free(kr_task *t)
{
	host->task_free(t);
}

const char *kr_task_get(const kr_task *t, const char *key)
{
	return host->task_get(t, key);
}

int kr_task_set(kr_task *t, const char *key, const char *value)
{
	return host->task_set(t, key, value);
}

int kr_task_is_field(const char *key)
{
	return host->task_is_field(key);
}

size_t kr_task_list_count(const kr_task *t, const char *list)
{
	return host->task_list_count(t, list);
}

const char *kr_task_list_item(const kr_task *t, const char *list, size_t i)
{
	return host->task_list_item(t, list, i);
}

int kr_task_list_add(kr_task *t, const char *list, const char *value)
{
	return host->task_list_add(t, list, value);
}

int kr_task_fill_from_node(kr_task *t, const kr_node *task, const char *name, kr_error *err)
{
	return host->task_fill_from_node(t, task, name, err);
}

int kr_task_fill_repository(kr_task *t, const kr_node *repo, const char *name, kr_error *err)
{
	return host->task_fill_repository(t, repo, name, err);
}

int kr_taskfile_load(const char *file, kr_node **out, kr_error *err)
{
	return host->taskfile_load(file, out, err);
}

/* secret.h, logline.h */
void kr_secret_error_set(kr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	host->secret_error_vset(err, code, fmt, ap);
	va_end(ap);
}

size_t kr_logline_cut(kr_logline_cutter *c, const char *data, size_t len, int ends,
                      kr_logline_emit *emit, void *ctx)
{
	return host->logline_cut(c, data, len, ends, emit, ctx);
}

void kr_logline_cutter_free(kr_logline_cutter *c)
{
	host->logline_cutter_free(c);
}

void kr_logline_budget(uint64_t max_total, uint64_t max_line, uint64_t *head, uint64_t *tail)
{
	host->logline_budget(max_total, max_line, head, tail);
}

size_t kr_logline_notice(char *buf, size_t n, uint64_t lines, uint64_t bytes, uint64_t head,
                         uint64_t tail)
{
	return host->logline_notice(buf, n, lines, bytes, head, tail);
}
