#!/bin/sh
# bench/execute/bench.sh BUILD_DIR [RUNS]
# (1) a child writing 1 GiB to stdout: directly to /dev/null, through one
#     plain pipe (cat), and through keruta-agent in local mode (the agent's
#     stdout to /dev/null; log lines shipped to the events file);
# (2) the agent's own overhead for a task whose command is `true`.
# Needs hyperfine.  Results: bench/execute/RESULTS.md.
set -e
B=${1:?usage: bench.sh BUILD_DIR [RUNS]}
RUNS=${2:-10}
B=$(cd "$B" && pwd)
W=$(mktemp -d /tmp/kr-bench-exec.XXXXXX)
trap 'rm -rf "$W"' EXIT
export KERUTA_PLUGIN_PATH="$B/stages/.libs"
unset KERUTA_API_TOKEN KERUTA_API_TOKEN_FILE

L='some log line of 60 bytes .................................'
ZERO='head -c 1G /dev/zero'
LINES="yes '$L' | head -c 1G"

printf 'id: bench\ntitle: bench\n' > "$W/task.yaml"
pipeline() { # NAME COMMAND
	cat > "$W/$1.yaml" <<EOY
version: 1
phases:
  execute: [execute]
stages:
  execute:
    plugin: execute
    with:
      command: "$2"
EOY
}
pipeline zero "$ZERO"
pipeline lines "$LINES"
pipeline true "true"
agent() { # PIPELINE
	echo "$B/keruta-agent execute --task-file $W/task.yaml --pipeline $W/$1.yaml --work-dir $W/w --termination-log $W/term --log-level error > /dev/null"
}
mkdir -p "$W/w"

hyperfine --warmup 1 --runs "$RUNS" --export-json "$W/1-zero.json" \
	--prepare "rm -rf $W/w/.keruta" \
	"$ZERO > /dev/null" \
	"$ZERO | cat > /dev/null" \
	"$(agent zero)"
hyperfine --warmup 1 --runs "$RUNS" --export-json "$W/1-lines.json" \
	--prepare "rm -rf $W/w/.keruta" \
	"$LINES > /dev/null" \
	"$LINES | cat > /dev/null" \
	"$(agent lines)"
hyperfine -N --warmup 20 --runs 200 --export-json "$W/2-true.json" \
	"sh -c true" \
	"$B/keruta-agent execute --task-file $W/task.yaml --pipeline $W/true.yaml --work-dir $W/w --termination-log $W/term --log-level error"
# hyperfine's JSON exports, kept only when asked: OUT=DIR bench.sh ...
if [ -n "$OUT" ]; then mkdir -p "$OUT" && cp "$W"/*.json "$OUT"/; fi
