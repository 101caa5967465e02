/*
 * launcher.c - the launcher module's entry point: the descriptor the
 * executable looks up, and the command it runs.
 */
#include <string.h>

#include "launcher.h"
#include "module.h"

static int launcher_main(const char *command, kr_settings *s, kr_error *err)
{
	if (strcmp(command, "render") == 0)
		return kr_render(s, err);
	if (strcmp(command, "dispatch") == 0)
		return kr_dispatch(s, err);
	kr_error_set(err, KR_EXIT_INTERNAL, "launcher: unknown command %s", command);
	return KR_EXIT_INTERNAL;
}

__attribute__((visibility("default"))) const kr_launcher_desc kr_launcher_module = {
        .head = KR_MODULE_HEAD,
        .main = launcher_main,
};
