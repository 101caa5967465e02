#!/bin/sh
# core_exports.sh: the executable exports no kr_* symbol (its
# modules get the core's API as a table, core/host.h), and neither its
# modules nor the stage plugins import one: each exports its descriptor
# alone.  Reads the built files with nm -D.
build=${KR_BUILDDIR:-.}
command -v nm >/dev/null 2>&1 || { echo "SKIP: no nm (binutils) to read the symbol tables"; exit 77; }
agent=$build/keruta-agent
[ -x "$agent" ] || { echo "FAIL: no agent at $agent (build it first)"; exit 1; }

fail=0
exported=$(nm -D --defined-only "$agent" | awk '$3 ~ /^kr_/ { print $3 }')
if [ -n "$exported" ]; then
	echo "FAIL: keruta-agent exports core functions (link it without --export-dynamic or a dynamic list; modules use core/host.h):"
	echo "$exported" | sed 's/^/  /'
	fail=1
fi

# file  the one kr_ or keruta_ symbol it may export
check() {
	[ -f "$1" ] || { echo "FAIL: $1 is missing (build it first)"; fail=1; return; }
	imported=$(nm -D --undefined-only "$1" | awk '$2 ~ /^kr_/ { print $2 }')
	if [ -n "$imported" ]; then
		echo "FAIL: $1 imports core functions; it must call them through its table:"
		echo "$imported" | sed 's/^/  /'
		fail=1
	fi
	others=$(nm -D --defined-only "$1" | awk '$3 ~ /^(kr_|keruta_)/ { print $3 }' | grep -v -x "$2")
	if [ -n "$others" ]; then
		echo "FAIL: $1 exports more than $2:"
		echo "$others" | sed 's/^/  /'
		fail=1
	fi
}
check "$build/.libs/backend-api.so" kr_backend_api_module
check "$build/.libs/launcher.so" kr_launcher_module
n=0
for so in "$build"/stages/.libs/*.so; do
	[ -f "$so" ] || continue
	check "$so" keruta_plugin
	n=$((n + 1))
done
[ "$n" -ge 7 ] || { echo "FAIL: only $n stage plugins in $build/stages/.libs"; fail=1; }
[ "$fail" = 0 ] && echo "PASS: keruta-agent exports no kr_* symbol; its 2 modules and $n stages import none"
exit "$fail"
