#!/bin/sh
# bench/execute/bench.sh BUILD_DIR
# The agent's own overhead for a task whose command is `true` (local
# mode).  The output path (a child writing 1 GiB) is outpath.sh.
# Needs hyperfine.  Results: bench/execute/RESULTS.md.
set -e
B=${1:?usage: bench.sh BUILD_DIR}
B=$(cd "$B" && pwd)
W=$(mktemp -d /tmp/kr-bench-exec.XXXXXX)
trap 'rm -rf "$W"' EXIT
export KERUTA_PLUGIN_PATH="$B/stages/.libs"
unset KERUTA_API_TOKEN KERUTA_API_TOKEN_FILE

printf 'id: bench\ntitle: bench\n' > "$W/task.yaml"
printf 'version: 1\nphases:\n  execute: [execute]\nstages:\n  execute:\n    plugin: execute\n    with:\n      command: "true"\n' > "$W/true.yaml"
mkdir -p "$W/w"

hyperfine -N --warmup 20 --runs 200 --export-json "$W/2-true.json" \
	"sh -c true" \
	"$B/keruta-agent execute --task-file $W/task.yaml --pipeline $W/true.yaml --work-dir $W/w --termination-log $W/term --log-level error"
# hyperfine's JSON exports, kept only when asked: OUT=DIR bench.sh ...
if [ -n "$OUT" ]; then mkdir -p "$OUT" && cp "$W"/*.json "$OUT"/; fi
