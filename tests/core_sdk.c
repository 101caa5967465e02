/*
 * The plugin SDK as an operator uses it: install keruta-agent into a
 * DESTDIR, build the example plugin out of tree with nothing but the
 * installed header and pkg-config file, and run it in a pipeline with the
 * installed binary.  Catches a header that is not self-contained and ABI
 * drift between the SDK and the agent.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "krtest.h"
#include "keruta/plugin.h"

static char *sh(const char *cmd, int *status)
{
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	kt_result r;
	cr_assert_eq(kt_run(&r, argv, NULL, NULL, NULL, 300), 0);
	*status = r.status;
	char *out = NULL;
	cr_assert(asprintf(&out, "%s%s", r.out, r.err) >= 0);
	kt_result_free(&r);
	return out;
}

Test(sdk, example_plugin_builds_out_of_tree_and_runs, .timeout = 300)
{
	char *tmp = kt_tmpdir();
	const char *make = getenv("MAKE") ? getenv("MAKE") : "make";
	int st;
	char *cmd = NULL, *out;

	cr_assert(asprintf(&cmd, "%s -s -C '%s' install DESTDIR='%s/dest' >/dev/null", make,
	                   kt_builddir(), tmp) > 0);
	out = sh(cmd, &st);
	cr_assert_eq(st, 0, "make install failed: %s", out);
	free(out);
	free(cmd);

	/* everything an operator has: the installed tree */
	cr_assert(asprintf(&cmd,
	                   "set -e; cd '%s'; pc=$(dirname \"$(find dest -name keruta-agent-plugin.pc)\"); "
	                   "export PKG_CONFIG_PATH=\"$PWD/$pc\" PKG_CONFIG_SYSROOT_DIR=\"$PWD/dest\"; "
	                   "cflags=$(pkg-config --cflags keruta-agent-plugin); "
	                   "case \"$cflags\" in *'%s'*) echo 'cflags point into the build tree'; exit 1;; esac; "
	                   "mkdir -p plugins; "
	                   "cc -std=c11 -Wall -Wextra -Werror -shared -fPIC $cflags '%s/plugins/example/hello.c' -o plugins/hello.so; "
	                   "echo built",
	                   tmp, kt_srcdir(), kt_srcdir()) > 0);
	out = sh(cmd, &st);
	cr_assert_eq(st, 0, "out-of-tree build failed: %s", out);
	free(out);
	free(cmd);

	cr_assert(asprintf(&cmd,
	                   "set -e; cd '%s'; agent=$(find dest -path '*/bin/keruta-agent'); mkdir -p work; "
	                   "printf 'id: sdk-1\\ntitle: SDK test\\n' > task.yaml; "
	                   "printf 'version: 1\\nphases: {execute: [hi]}\\nstages:\\n  hi: {plugin: hello, with: {greeting: Good morning, repeat: 2}}\\n' > p.yaml; "
	                   "\"$agent\" execute --task-file task.yaml --pipeline p.yaml --work-dir work "
	                   "--plugin-dir plugins --termination-log '' --log-format text",
	                   tmp) > 0);
	out = sh(cmd, &st);
	cr_expect_eq(st, 0, "the installed agent did not run the plugin: %s", out);
	cr_expect(kt_contains(out, "[hi] greeted task sdk-1"), "%s", out);
	free(out);
	free(cmd);
	char *hello = kt_path(tmp, "work/.keruta/hello.txt");
	char *text = kt_read_file(hello, NULL);
	cr_expect_str_eq(text ? text : "", "Good morning, SDK test!\nGood morning, SDK test!\n");
	free(text);
	free(hello);

	/* the installed agent lists it with the installed ABI */
	cr_assert(asprintf(&cmd, "cd '%s' && $(find dest -path '*/bin/keruta-agent') plugins --plugin-dir plugins",
	                   tmp) > 0);
	out = sh(cmd, &st);
	char want[64];
	snprintf(want, sizeof(want), "hello            %d.%d  1.0", KR_ABI_MAJOR, KR_ABI_MINOR);
	cr_expect(kt_contains(out, want), "%s", out);
	free(out);
	free(cmd);
	kt_rmrf(tmp);
	free(tmp);
}
