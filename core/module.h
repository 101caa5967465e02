/*
 * module.h - the two modules the core loads on demand: backend-api.so
 * (keruta-api; libcurl and json-c stay out of local runs) and launcher.so
 * (render, dispatch).
 *
 * Unlike stage plugins these are parts of the agent, built from the same
 * sources: they call the core's functions and read its settings table
 * directly.  A module left from another build would read that table with
 * another layout, so each exports a descriptor that starts with a stamp,
 * and the core refuses a module whose stamp is not its own before calling
 * anything in it.
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
#define KR_MODULE_ABI 2
#define KR_MODULE_STAMP {PACKAGE_VERSION, KR_S_COUNT, KR_MODULE_ABI}

/* launcher.so */
#define KR_LAUNCHER_SYMBOL "kr_launcher_module"
typedef struct kr_launcher_desc {
	kr_module_stamp stamp;
	/* Run `render` or `dispatch`; returns the exit code. */
	int (*main)(const char *command, kr_settings *s, kr_error *err);
} kr_launcher_desc;

/*
 * Load a module: the file $env_var names, else MODULEDIR/file; look up
 * symbol and check its stamp.  The descriptor, or NULL with err set (exit
 * 4) saying what is wrong and what to do.  The module stays loaded.
 */
const void *kr_module_load(const char *env_var, const char *file, const char *symbol,
                           const char *what, kr_error *err);

#endif
