/*
 * backend.c - loading the keruta-api backend module.  libcurl and json-c
 * are linked by the module only, so commands that never talk to the API
 * (validate, plugins, a local run) never load them.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"

#ifndef KR_MODULEDIR
#define KR_MODULEDIR "/usr/lib/keruta-agent"
#endif

static const kr_backend_module *load_module(kr_error *err)
{
	const char *path = getenv("KERUTA_API_MODULE");
	char *owned = NULL;
	if (!path || !*path)
		path = owned = kr_asprintf("%s/backend-api.so", KR_MODULEDIR);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();
		kr_error_set(err, KR_EXIT_INTERNAL,
		             "cannot load the keruta-api module %s: %s (is keruta-agent fully "
		             "installed? KERUTA_API_MODULE names another file)",
		             path, why ? why : "?");
		free(owned);
		return NULL;
	}
	const kr_backend_module *m = dlsym(h, KR_BACKEND_SYMBOL);
	if (!m || m->version != KR_BACKEND_VERSION) {
		kr_error_set(err, KR_EXIT_INTERNAL,
		             "%s is not the keruta-api module of this keruta-agent (%s); reinstall",
		             path, m ? "other version" : "no entry point");
		free(owned);
		return NULL;
	}
	free(owned);
	return m;
}

kr_backend *kr_backend_api_create(const struct kr_settings *s, kr_error *err)
{
	const kr_backend_module *m = load_module(err);
	return m ? m->create(s, err) : NULL;
}

void kr_backend_api_versions(kr_buf *out)
{
	kr_error err = {0};
	const kr_backend_module *m = load_module(&err);
	if (!m) {
		kr_buf_addf(out, "(keruta-api module not loaded: %s)\n", err.msg);
		return;
	}
	if (m->versions)
		m->versions(out);
}
