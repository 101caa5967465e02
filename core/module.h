/*
 * module.h - the two modules the core loads on demand: backend-api.so
 * (keruta-api; libcurl and json-c stay out of local runs) and launcher.so
 * (render, dispatch).
 *
 * Unlike stage plugins these are parts of the agent, built from the same
 * sources: they call the core's functions (through the table of
 * core/host.h, which their init receives; the executable exports no kr_*
 * symbol) and use its settings ids.  A module left from another build
 * would read the settings with another layout, so each exports a
 * descriptor that starts with a stamp, and the core refuses a module
 * whose stamp is not its own before calling anything in it.  Then the
 * module's init checks the table it is given in turn.
 */
#ifndef KR_MODULE_H
#define KR_MODULE_H

#include "config.h"
#include "settings.h"
#include "util.h"

typedef struct kr_module_stamp {
	const char *version; /* PACKAGE_VERSION                       */
	unsigned settings;   /* KR_S_COUNT: the settings table's rows */
	unsigned abi;        /* KR_MODULE_ABI                         */
} kr_module_stamp;

/* Bumped whenever a descriptor below or the backend table changes. */
#define KR_MODULE_ABI 3
#define KR_MODULE_STAMP {PACKAGE_VERSION, KR_S_COUNT, KR_MODULE_ABI}

struct kr_host;

/* How every module descriptor starts. */
typedef struct kr_module_head {
	kr_module_stamp stamp; /* KR_MODULE_STAMP */
	/* The first call into the module, once its stamp matched: it keeps
	 * the core's API (core/host.h) or refuses it.  Every module uses
	 * kr_host_import (core/host_import.c). */
	int (*init)(const struct kr_host *host, kr_error *err);
} kr_module_head;
#define KR_MODULE_HEAD {KR_MODULE_STAMP, kr_host_import}
/* Every module's init (core/host_import.c): keep the table.  KR_OK, or
 * KR_FAILED with err set (exit 4) when the table is older or smaller than
 * the module needs; nothing in the module may call a kr_* function before
 * it succeeded. */
int kr_host_import(const struct kr_host *host, kr_error *err);

/* launcher.so */
#define KR_LAUNCHER_SYMBOL "kr_launcher_module"
typedef struct kr_launcher_desc {
	kr_module_head head;
	/* Run `render` or `dispatch`; returns the exit code. */
	int (*main)(const char *command, kr_settings *s, kr_error *err);
} kr_launcher_desc;

/*
 * Load a module: the file $env_var names, else MODULEDIR/file; look up
 * symbol, check its stamp and hand its init the core's API.  The
 * descriptor (a kr_module_head first), or NULL with err set (exit 4)
 * saying what is wrong and what to do.  The module stays loaded.
 */
const void *kr_module_load(const char *env_var, const char *file, const char *symbol,
                           const char *what, kr_error *err);

#endif
