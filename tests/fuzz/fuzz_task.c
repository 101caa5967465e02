/* fuzz_task - a task file, or keruta-api's task / repository JSON: read
 * into a tree, then into a task and a repository. */
#include <stdlib.h>

#include "backend.h"
#include "fuzz.h"
#include "log.h"
#include "node.h"
#include "task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kr_fuzz_quiet();
	kr_node *n = NULL;
	kr_error err = {0};
	if (kr_node_load_string("task.yaml", (const char *)data, size, &n, &err) == 0) {
		kr_task *t = kr_task_new();
		kr_error e1 = {0}, e2 = {0};
		kr_task_fill_from_node(t, n, "task.yaml", &e1);
		kr_task_fill_repository(t, n, "repository", &e2);
		kr_task_free(t);
	} else if (!err.code) {
		abort();
	}
	kr_node_free(n);
	return 0;
}
