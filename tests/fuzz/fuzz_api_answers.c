/* fuzz_api_answers - what keruta-api answers, through the API backend's
 * own readers: the task JSON, the script answer, an error body. */
#include <stdlib.h>

#include "fuzz.h"

/* the readers are static: this harness is the backend plus an entry */
#include "api.c"

/* api.c's descriptor names the module's init, which takes the core's table
 * when the core loads backend-api.so; this harness links the core itself
 * and never loads the module, so nothing calls it. */
int kr_host_import(const struct kr_host *host, kr_error *err)
{
	(void)host;
	(void)err;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kr_fuzz_quiet();
	kr_node *n = NULL;
	kr_error err = {0};
	if (kr_node_load_string("answer", (const char *)data, size, &n, &err) == 0) {
		kr_task *t = kr_task_new();
		kr_error e1 = {0}, e2 = {0};
		if (kr_task_fill_from_node(t, n, "task", &e1) == 0)
			check_task_ids(t, &e1);
		fill_scripts(t, n, "scripts", &e2);
		kr_task_free(t);
	}
	kr_node_free(n);
	char *msg = kr_http_server_error((const char *)data, size);
	free(msg);
	return 0;
}
