/* module.c - see module.h. */
#include "module.h"
#include "host.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#ifndef KR_MODULEDIR
#define KR_MODULEDIR "/usr/lib/keruta-agent"
#endif

const void *kr_module_load(const char *env_var, const char *file, const char *symbol,
                           const char *what, kr_error *err)
{
	const char *path = getenv(env_var);
	char *owned = NULL;
	if (!path || !*path)
		path = owned = kr_asprintf("%s/%s", KR_MODULEDIR, file);
	const kr_module_head *head = NULL;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();
		kr_error_set(err, KR_EXIT_INTERNAL,
		             "cannot load the %s %s: %s (is keruta-agent fully installed? %s names "
		             "another file)",
		             what, path, why ? why : "?", env_var);
	} else if (!(head = dlsym(h, symbol))) {
		kr_error_set(err, KR_EXIT_INTERNAL,
		             "%s is not the %s of keruta-agent: it has no %s; reinstall keruta-agent",
		             path, what, symbol);
	} else if (!head->stamp.version || strcmp(head->stamp.version, PACKAGE_VERSION) != 0 ||
	           head->stamp.settings != KR_S_COUNT || head->stamp.abi != KR_MODULE_ABI ||
	           !head->init) {
		const kr_module_stamp *stamp = &head->stamp;
		kr_error_set(err, KR_EXIT_INTERNAL,
		             "%s is the %s of another keruta-agent build (version %.32s, %u settings, "
		             "module ABI %u; this agent: %s, %u, %u): reinstall keruta-agent so both "
		             "come from one build",
		             path, what, stamp->version ? stamp->version : "?", stamp->settings,
		             stamp->abi, PACKAGE_VERSION, (unsigned)KR_S_COUNT, (unsigned)KR_MODULE_ABI);
		head = NULL;
	} else if (head->init(kr_host_get(), err) != KR_OK) {
		kr_error_wrap(err, KR_EXIT_INTERNAL, "cannot use the %s %s", what, path);
		head = NULL;
	}
	free(owned);
	return head;
}
