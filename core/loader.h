/*
 * loader.h - finding, loading and checking stage plugins.
 *
 * A plugin named NAME is the file NAME.so in the first directory of the
 * search path that has one: --plugin-dir, then KERUTA_PLUGIN_PATH, then the
 * pipeline's plugin_path, then the installed stage directory.  A name with
 * a '/' is a path.  Plugins are opened RTLD_NOW | RTLD_LOCAL and never
 * closed before the process exits (unloading code a thread may still run
 * is a crash waiting to happen).
 */
#ifndef KR_LOADER_H
#define KR_LOADER_H

#include <stddef.h>

#include "keruta/plugin.h"
#include "util.h"

/*
 * A loaded plugin.  The agent never reads the plugin's descriptor or
 * option rows in place: they are copied at load, each struct up to
 * min(the plugin's size, the agent's) with what the plugin lacks zeroed,
 * so the rest of the agent reads this major's current layout whatever
 * minor the plugin was built for.
 */
typedef struct kr_loaded {
	char *name;             /* owned                                  */
	char *path;             /* owned: the file it came from           */
	const kr_plugin *desc;  /* owned copy; desc->options is `options`  */
	kr_option *options;     /* owned copy of the rows, {0}-ended;
	                           NULL when the plugin has none           */
} kr_loaded;

typedef struct kr_loader {
	size_t n_dirs;
	char **dirs;            /* owned, in search order                 */
	size_t n_loaded;
	kr_loaded **loaded;     /* owned; handles stay open until exit     */
} kr_loader;

void kr_loader_init(kr_loader *l);
void kr_loader_add_dir(kr_loader *l, const char *dir);
/* Add each entry of a colon-separated list (empty entries are skipped). */
void kr_loader_add_path_list(kr_loader *l, const char *list);
/* Load (or return the already loaded) plugin `name`; NULL and err set on
 * failure, with one line that says what is wrong and what to do. */
const kr_loaded *kr_loader_load(kr_loader *l, const char *name, kr_error *err);
/* Load a plugin from an exact file path (used by `plugins`). */
const kr_loaded *kr_loader_load_file(kr_loader *l, const char *path, kr_error *err);
void kr_loader_free(kr_loader *l);
/* An option type's name as `plugins -v` and the load-time checks show it. */
const char *kr_loader_type_name(kr_option_type type);

/* Check a descriptor: ABI version, sizes, mandatory members and the
 * option table (names, types, defaults, bound fields).  Exposed for tests
 * and for `keruta-agent plugins`. */
int kr_loader_check_descriptor(const kr_plugin *d, const char *path, kr_error *err);

struct kr_config;
/* Build cfg->arrays, the NULL-ended arrays opt_bind hands out for list and
 * map options, from cfg->with; kr_loader_config_release frees them. */
void kr_loader_config_prepare(struct kr_config *cfg);
void kr_loader_config_release(struct kr_config *cfg);
/* svc->opt_bind: write every bound option of cfg into state (size bytes),
 * all or nothing.  -1 and err set when a bound member lies past size. */
int kr_loader_bind(const struct kr_config *cfg, void *state, size_t size, kr_error *err);

#endif
