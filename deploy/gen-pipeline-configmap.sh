#!/bin/sh
# Print the ConfigMap keruta-pipeline holding a pipeline file, by default the
# project's conf/pipeline.yaml:
#   deploy/gen-pipeline-configmap.sh [PIPELINE] > deploy/pipeline-configmap.yaml
# tests/e2e/deploy-check.sh fails when the committed ConfigMap and
# conf/pipeline.yaml differ, so regenerate after every pipeline change.
set -eu
src=${1:-$(dirname "$0")/../conf/pipeline.yaml}
[ -r "$src" ] || { echo "gen-pipeline-configmap: cannot read $src; give the pipeline file as the first argument" >&2; exit 2; }
# A literal block keeps the text byte for byte only if it ends in exactly one
# newline and has no tab at the start of a line.
if [ -n "$(tail -c 1 "$src")" ] || [ -z "$(tail -n 1 "$src")" ]; then
	echo "gen-pipeline-configmap: $src must end with exactly one newline" >&2; exit 2
fi
if grep -q '^	' "$src"; then
	echo "gen-pipeline-configmap: $src has a line starting with a tab; use spaces" >&2; exit 2
fi
cat <<'HEAD'
# GENERATED from conf/pipeline.yaml by deploy/gen-pipeline-configmap.sh;
# edit that file and regenerate instead of editing this one.
#
# The default pipeline (which stage plugins each keruta-agent command runs)
# as a ConfigMap, so operators can change it without rebuilding the image.
# The image already contains the same file as its built-in default; a task
# pod uses this copy when it mounts the ConfigMap and points the agent at it:
#
#   volumes:      [{name: pipeline, configMap: {name: keruta-pipeline}}]
#   volumeMounts: [{name: pipeline, mountPath: /etc/keruta-pipeline, readOnly: true}]
#   env:          [{name: KERUTA_PIPELINE, value: /etc/keruta-pipeline/pipeline.yaml}]
#
# Check an edited pipeline first with `keruta-agent validate FILE`.
apiVersion: v1
kind: ConfigMap
metadata:
  name: keruta-pipeline
  namespace: keruta
  labels:
    app.kubernetes.io/part-of: keruta
data:
  pipeline.yaml: |
HEAD
sed 's/^/    /; s/^    $//' "$src"
