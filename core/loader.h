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

typedef struct kr_loaded {
	char *name;             /* owned                                  */
	char *path;             /* owned: the file it came from           */
	const kr_plugin *desc;  /* inside the mapped object               */
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

/* Check a descriptor: ABI version, size, mandatory members.  Exposed for
 * tests and for `keruta-agent plugins`. */
int kr_loader_check_descriptor(const kr_plugin *d, const char *path, kr_error *err);

#endif
