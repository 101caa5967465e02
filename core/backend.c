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


static const kr_backend_module *load_module(kr_error *err)
{
	return kr_module_load("KERUTA_API_MODULE", "backend-api.so", KR_BACKEND_SYMBOL,
	                      "keruta-api module", err);
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
