#!/bin/sh
# validate.sh DOCS.json...  Validates Kubernetes objects (a JSON array of
# documents per file) against the strict v1.32 JSON schemas in
# ../shared/reference (ajv) and with the npm package kubernetes-models.
# Exit 0 valid, 1 invalid, 77 skipped (no schemas, no node, npm offline).
here=$(cd "$(dirname "$0")" && pwd)
schemas="${KR_K8S_SCHEMAS:-$here/../../../shared/reference/k8s-json-schema-v1.32.2-strict}"
if [ ! -f "$schemas/job-batch-v1.json" ]; then
	echo "SKIP: no Kubernetes JSON schemas at $schemas (../shared is absent, e.g. in a release tarball)"
	exit 77
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "SKIP: node and npm are needed for schema validation (apt-get install nodejs npm)"
	exit 77
fi
prefix="${KR_SCHEMA_PREFIX:-$here}"
if [ ! -d "$prefix/node_modules/ajv" ] || [ ! -d "$prefix/node_modules/kubernetes-models" ]; then
	mkdir -p "$prefix"
	# one install at a time, whoever asks first
	if ! (flock 9; [ -d "$prefix/node_modules/kubernetes-models" ] ||
	      npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$prefix" \
	          ajv@8 kubernetes-models@4 >"$prefix/npm-install.log" 2>&1) 9>"$prefix/.npm-lock"; then
		echo "SKIP: npm could not install ajv and kubernetes-models (see $prefix/npm-install.log)"
		exit 77
	fi
fi
NODE_PATH="$prefix/node_modules" exec node "$here/validate.js" "$schemas" "$@"
