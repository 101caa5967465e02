#!/bin/sh
# validate.sh DOCS.json...  Validates Kubernetes objects (a JSON array of
# documents per file) against the strict v1.32 JSON schemas kept in
# tests/reference (ajv) and with the npm package kubernetes-models.
# Exit 0 valid, 1 invalid, 77 skipped (no node, npm offline).
here=$(cd "$(dirname "$0")" && pwd)
schemas="${KERUTA_K8S_SCHEMAS:-$here/../reference/k8s-json-schema-v1.32.2-strict}"
if [ ! -f "$schemas/job-batch-v1.json" ]; then
	echo "no Kubernetes JSON schemas at $schemas"
	exit 1
fi
if ! modules=$(sh "$here/node-modules.sh"); then
	echo "SKIP: $modules"
	exit 77
fi
NODE_PATH="$modules" exec node "$here/validate.js" "$schemas" "$@"
