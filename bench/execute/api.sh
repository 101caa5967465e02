#!/bin/sh
# bench/execute/api.sh BUILD_DIR [RUNS] [SIZE] [LOG_MAX_TOTAL]
# The child's own throughput when its stdout goes through keruta-agent in
# API mode, against the reference keruta-api server (tests/refapi):
#   direct  the child alone, stdout to /dev/null;
#   cat     the child's stdout through one plain pipe hop (`| cat`), the
#           least any reader of the output costs;
#   up      through `keruta-agent execute --api-url`, the API answering;
#   down    the same, the API down (connections closed) from 0.5 s after
#           start until the child has finished; it comes back afterwards
#           so the agent can drain its spool and report.
# The child is `yes LINE | head -c SIZE` (60-byte lines, default 1G),
# timed by GNU time inside the pipeline stage, so the figure is the
# child's wall time, not the agent's (which also ships the kept log lines
# and waits for the final status).  Runs alternate direct/up/down.
# Needs python3, curl and GNU time (package `time`).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${1:?usage: api.sh BUILD_DIR [RUNS] [SIZE] [LOG_MAX_TOTAL]}" && pwd)
RUNS=${2:-5}
SIZE=${3:-1G}
MAXTOTAL=${4:-}
W=$(mktemp -d /tmp/kr-bench-exec-api.XXXXXX)
SERVER=
trap '[ -z "$SERVER" ] || kill $SERVER 2>/dev/null || true; rm -rf "$W"' EXIT INT TERM
export KERUTA_PLUGIN_PATH="$B/stages/.libs" KERUTA_API_MODULE="$B/.libs/backend-api.so"
unset KERUTA_API_TOKEN KERUTA_API_TOKEN_FILE

python3 "$SRC/tests/refapi/keruta_api_server.py" --port 0 --port-file "$W/port" \
	--state-dir "$W/state" --idle-exit 3600 >"$W/server.log" 2>&1 &
SERVER=$!
i=0
while [ ! -s "$W/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
URL=http://127.0.0.1:$(cat "$W/port")

L='some log line of 60 bytes .................................'
printf "yes '%s' | head -c %s\n" "$L" "$SIZE" > "$W/child.sh"
{ echo "version: 1"; [ -z "$MAXTOTAL" ] || printf 'settings:\n  log_max_total: %s\n' "$MAXTOTAL"; } > "$W/pipeline.yaml"
cat >> "$W/pipeline.yaml" <<EOY
phases:
  execute: [execute]
stages:
  execute:
    plugin: execute
    with:
      command: "/usr/bin/time -f %e -o $W/child.time sh $W/child.sh"
EOY

through() { # MODE RUN -> prints "child_s agent_s peak_rss_kib"
	id="bench-$1-$2"
	rm -f "$W/child.time"
	curl -fsS -X POST "$URL/_control/seed" -d "{\"tasks\":[{\"id\":\"$id\",\"status\":\"PENDING\"}]}" >/dev/null
	rm -rf "$W/work" && mkdir -p "$W/work"
	down=
	if [ "$1" = down ]; then
		(sleep 0.5
		 curl -fsS -X POST "$URL/_control/down" -d '{"seconds":600}' >/dev/null
		 while [ ! -s "$W/child.time" ]; do sleep 0.05; done
		 curl -fsS -X POST "$URL/_control/down" -d '{"seconds":0}' >/dev/null) &
		down=$!
	fi
	/usr/bin/time -f '%e %M' -o "$W/agent.time" "$B/keruta-agent" execute --task-id "$id" \
		--api-url "$URL" --work-dir "$W/work" --pipeline "$W/pipeline.yaml" \
		--termination-log /dev/null --log-level error >/dev/null 2>"$W/agent.err" ||
		{ echo "agent failed ($1):"; cat "$W/agent.err"; exit 1; }
	[ -z "$down" ] || wait "$down"
	st=$(curl -fsS "$URL/_control/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][sys.argv[1]]["status"])' "$id")
	[ "$st" = COMPLETED ] || { echo "task $id ended $st"; exit 1; }
	echo "$(cat "$W/child.time") $(cat "$W/agent.time")"
}

echo "run mode child_s agent_s agent_rss_kib"
r=1
while [ $r -le "$RUNS" ]; do
	/usr/bin/time -f %e -o "$W/direct.time" sh "$W/child.sh" > /dev/null
	echo "$r direct $(cat "$W/direct.time") - -"
	/usr/bin/time -f %e -o "$W/cat.time" sh "$W/child.sh" | cat > /dev/null
	echo "$r cat $(cat "$W/cat.time") - -"
	echo "$r up $(through up $r)"
	echo "$r down $(through down $r)"
	r=$((r + 1))
done | tee "$W/runs.txt"

python3 - "$W/runs.txt" "$SIZE" <<'EOP'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
def col(mode, i): return [float(r[i]) for r in rows if r[1] == mode]
d = st.median(col("direct", 2))
k = st.median(col("cat", 2))
print(f"\nmedian child time for {sys.argv[2]}: direct {d:.2f} s, through | cat {k:.2f} s (ratio {d / k:.2f})")
for m in ("up", "down"):
    c, a, rss = st.median(col(m, 2)), st.median(col(m, 3)), max(col(m, 4)) / 1024
    print(f"  {m:5} child {c:.2f} s  ratio direct/agent {d / c:.2f}  cat/agent {k / c:.2f}  "
          f"agent wall {a:.2f} s  agent peak RSS {rss:.1f} MiB")
EOP
