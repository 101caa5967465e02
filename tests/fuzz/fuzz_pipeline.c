/* fuzz_pipeline - the pipeline reader (YAML, every check behind it). */
#include <stdlib.h>

#include "fuzz.h"
#include "log.h"
#include "pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kr_fuzz_quiet();
	kr_error err = {0};
	kr_pipeline *p = kr_pipeline_parse("fuzz.yaml", (const char *)data, size, &err);
	if (!p && !err.code)
		abort(); /* a refusal always says why */
	kr_pipeline_free(p);
	return 0;
}
