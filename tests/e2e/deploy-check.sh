#!/bin/sh
# Checks of the deploy/ manifests:
#   1. deploy/pipeline-configmap.yaml is what gen-pipeline-configmap.sh makes
#      of conf/pipeline.yaml (no tools needed);
#   2. every manifest, and `kubectl kustomize deploy/` output when kubectl is
#      installed, is valid against the strict Kubernetes v1.32 JSON schemas
#      (ajv) and the kubernetes-models classes;
#   3. the promises in deploy-policy.js (RBAC, token, network policies).
# 2 and 3 need node + npm (tests/schema/node-modules.sh installs the
# modules once per machine): without them they are skipped, and so is the
# test (exit 77) if nothing failed.
# Run: make check TESTS=tests/e2e/deploy-check.sh, or directly with
# KR_SRCDIR (and optionally KR_BUILDDIR) set.
set -u
src=${KR_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${KR_BUILDDIR:-$src}
schemas=${KERUTA_K8S_SCHEMAS:-$src/tests/reference/k8s-json-schema-v1.32.2-strict}
pass=0 fail=0 skip=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/deploy-check.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

ok() { pass=$((pass + 1)); echo "PASS: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }
sk() { skip=$((skip + 1)); echo "SKIP: $1"; }

# 1. The ConfigMap is in sync with the pipeline it is generated from.
if sh "$src/deploy/gen-pipeline-configmap.sh" "$src/conf/pipeline.yaml" > "$tmp/cm.yaml" &&
   cmp -s "$tmp/cm.yaml" "$src/deploy/pipeline-configmap.yaml"; then
	ok "deploy/pipeline-configmap.yaml matches conf/pipeline.yaml"
else
	ko "deploy/pipeline-configmap.yaml is stale: run deploy/gen-pipeline-configmap.sh > deploy/pipeline-configmap.yaml"
	diff -u "$src/deploy/pipeline-configmap.yaml" "$tmp/cm.yaml" | head -20
fi

# 2 and 3 need node and the npm modules.
why=
if [ ! -d "$schemas" ]; then
	ko "no Kubernetes schemas at $schemas"
	why="no schemas"
elif ! nodemods=$(sh "$src/tests/schema/node-modules.sh"); then
	why=$nodemods
fi

if [ -n "$why" ]; then
	sk "schema validation and policy checks: $why"
else
	export NODE_PATH="$nodemods"
	files=$(ls "$src"/deploy/*.yaml | grep -v '/kustomization\.yaml$')
	# shellcheck disable=SC2086
	if node "$src/tests/e2e/schema/k8s-validate.js" --schemas "$schemas" $files > "$tmp/val.out" 2>&1; then
		ok "deploy/*.yaml valid against the strict v1.32 schemas and kubernetes-models ($(grep -c ': OK$' "$tmp/val.out") documents)"
	else
		ko "deploy/*.yaml schema validation"; cat "$tmp/val.out"
	fi
	if node "$src/tests/e2e/schema/deploy-policy.js" "$src/deploy" "$src/conf/pipeline.yaml" > "$tmp/pol.out" 2>&1; then
		ok "deploy/ policy checks ($(grep -c '^ok' "$tmp/pol.out") checks)"
	else
		ko "deploy/ policy checks"; grep -v '^ok' "$tmp/pol.out"
	fi
	if command -v kubectl >/dev/null 2>&1; then
		if kubectl kustomize "$src/deploy" > "$tmp/kust.yaml" 2> "$tmp/kust.err" &&
		   node "$src/tests/e2e/schema/k8s-validate.js" --schemas "$schemas" "$tmp/kust.yaml" > "$tmp/kval.out" 2>&1; then
			ok "kubectl kustomize deploy/ builds valid manifests ($(grep -c ': OK$' "$tmp/kval.out") documents)"
		else
			ko "kubectl kustomize deploy/"; cat "$tmp/kust.err" "$tmp/kval.out" 2>/dev/null
		fi
	else
		sk "kubectl kustomize deploy/: kubectl is not installed"
	fi
	# The validator must reject what the API server would: a negative control,
	# so a validator that accepts everything cannot pass this test.
	sed 's/^  name: keruta-launcher$/  name: keruta-launcher\n  bogusField: 1/' "$src/deploy/rbac.yaml" > "$tmp/bad.yaml"
	if node "$src/tests/e2e/schema/k8s-validate.js" --schemas "$schemas" "$tmp/bad.yaml" > "$tmp/bad.out" 2>&1; then
		ko "the validator accepted an unknown field (metadata.bogusField)"
	elif grep -q bogusField "$tmp/bad.out"; then
		ok "the validator rejects an unknown field"
	else
		ko "the validator failed for another reason"; cat "$tmp/bad.out"
	fi
fi

# 4. What podman-e2e.sh plays: the rendered Job turned into a Pod by
# job-to-pod.py still carries the token as a read-only file (podman runs
# are root-only, so this part of it runs here).
agent=$build/keruta-agent
if [ ! -x "$agent" ] || ! python3 -c 'import yaml' 2>/dev/null; then
	sk "job-to-pod.py on a rendered Job: no $agent or no python3 yaml module"
else
	printf '{"id": "conv-1", "repositoryId": "r1"}\n' > "$tmp/task.json"
	mkdir -p "$tmp/token"
	if KERUTA_LAUNCHER_MODULE=${KERUTA_LAUNCHER_MODULE:-$build/.libs/launcher.so} "$agent" render \
		--task-file "$tmp/task.json" --work-volume emptydir > "$tmp/job.yaml" 2> "$tmp/render.err" &&
	   python3 "$src/tests/e2e/job-to-pod.py" "$tmp/job.yaml" keruta-job-conv api-token-x "$tmp/token" \
		> "$tmp/pod.yaml" 2> "$tmp/conv.err" &&
	   python3 - "$tmp/pod.yaml" "$tmp/token" > "$tmp/conv.out" 2>&1 <<'PY'
import sys, yaml
pod = yaml.safe_load(open(sys.argv[1]))
spec = pod["spec"]
vols = {v["name"]: v for v in spec["volumes"]}
tok = [n for n, v in vols.items() if v.get("hostPath", {}).get("path") == sys.argv[2]]
assert tok and not any("secret" in v for v in vols.values()), vols
for c in spec.get("initContainers", []) + spec["containers"]:
    m = [m for m in c["volumeMounts"] if m["name"] == tok[0]]
    assert m and m[0].get("readOnly"), c["name"]
    i = c["command"].index("--api-token-file")
    assert c["command"][i + 1].startswith(m[0]["mountPath"] + "/"), c["command"]
    assert "KERUTA_API_TOKEN" not in str(c.get("env")), c["name"]
PY
	then
		ok "job-to-pod.py: the rendered pod reads the token from a read-only file"
	else
		ko "job-to-pod.py on a rendered Job"; cat "$tmp/render.err" "$tmp/conv.err" "$tmp/conv.out" 2>/dev/null
	fi
fi

echo "$pass passed, $fail failed${skip:+, $skip skipped}"
[ "$fail" -eq 0 ] || exit 1
[ -z "$why" ] || exit 77
exit 0
