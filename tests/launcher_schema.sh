#!/bin/sh
# launcher_schema.sh: the manifests tests/launcher_render wrote (under
# tests/launcher_render.manifests/ in the build tree) are valid Kubernetes
# objects by the strict v1.32 JSON schemas and kubernetes-models.  A test
# of its own so that, without node or the npm modules, it reports SKIP
# (exit 77) with the reason instead of hiding inside a PASS.
here=${KR_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/tests/schema
out=${KR_BUILDDIR:-.}/tests/launcher_render.manifests
set -- "$out"/*/*.json
if [ ! -f "$1" ]; then
	echo "FAIL: no manifests in $out; tests/launcher_render writes them (run it first)"
	exit 1
fi
echo "validating $# manifests from $out"
exec sh "$here/validate.sh" "$@"
