#!/bin/sh
# bench/execute/outpath.sh BUILD [BUILD_BEFORE] [RUNS] [SIZE]
# The child's own throughput when its stdout goes through keruta-agent,
# measured in one run against one plain pipe hop:
#   direct  the child alone, stdout to /dev/null;
#   cat     the child's stdout through `| cat > /dev/null` (one pipe hop,
#           the least any reader of the output costs);
#   local   through `keruta-agent execute` in local mode (events file);
#   up      API mode against the reference keruta-api (tests/refapi),
#           with a bearer token (so the masker is on, as in production);
#   down    the same, the API down (connections closed) from 0.5 s after
#           start until the child has finished; it comes back afterwards
#           so the agent can drain its spool and report.
# Two children, each writing SIZE (default 1G): `yes LINE | head -c SIZE`
# with 60-byte lines ("60") and with 64 KiB lines ("64k").  The child is
# timed by GNU time inside the stage, so the figure is how fast the child
# could write, not how long the agent ran.  With BUILD_BEFORE (a build of
# an older commit) its agent runs too, so before and after share one run.
# Every run goes through all cases in turn (alternating), the table gives
# medians and the ratio cat/x of the medians.  Agent stdout: /dev/null.
# Needs python3, curl and GNU time (package `time`).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${1:?usage: outpath.sh BUILD [BUILD_BEFORE] [RUNS] [SIZE]}" && pwd)
BB=${2:-}
[ -z "$BB" ] || BB=$(cd "$BB" && pwd)
RUNS=${3:-5}
SIZE=${4:-1G}
TOKEN=${BENCH_TOKEN:-eyJhbGciOiJIUzI1NiJ9.bench-token-for-keruta-agent}
W=$(mktemp -d /tmp/kr-bench-outpath.XXXXXX)
SERVER=
trap '[ -z "$SERVER" ] || kill $SERVER 2>/dev/null || true; rm -rf "$W"' EXIT INT TERM
unset KERUTA_API_TOKEN_FILE
export KERUTA_API_TOKEN="$TOKEN"

python3 "$SRC/tests/refapi/keruta_api_server.py" --port 0 --port-file "$W/port" \
	--state-dir "$W/state" --idle-exit 3600 --token "$TOKEN" >"$W/server.log" 2>&1 &
SERVER=$!
i=0
while [ ! -s "$W/port" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$W/port" ] || { echo "the reference keruta-api did not start:" >&2; cat "$W/server.log" >&2; exit 1; }
URL=http://127.0.0.1:$(cat "$W/port")

printf "yes 'some log line of 60 bytes .................................' | head -c %s\n" \
	"$SIZE" > "$W/child-60.sh"
printf 'L=$(head -c 65535 /dev/zero | tr "\\0" x)\nyes "$L" | head -c %s\n' "$SIZE" > "$W/child-64k.sh"
printf 'id: bench\ntitle: bench\n' > "$W/task.yaml"
for k in 60 64k; do
	cat > "$W/pipeline-$k.yaml" <<EOY
version: 1
phases:
  execute: [execute]
stages:
  execute:
    plugin: execute
    with:
      command: "/usr/bin/time -f %e -o $W/child.time sh $W/child-$k.sh"
EOY
done

# agent BUILD MODE KIND RUN -> "child_s agent_wall_s agent_cpu_s"
agent() {
	b=$1 mode=$2 kind=$3 run=$4
	rm -f "$W/child.time"
	rm -rf "$W/work" && mkdir -p "$W/work"
	down=
	if [ "$mode" = local ]; then
		set -- execute --task-file "$W/task.yaml"
		api=
	else
		id="bench-$mode-$kind-$run-$(basename "$b")"
		curl -fsS -X POST "$URL/_control/seed" -d "{\"tasks\":[{\"id\":\"$id\",\"status\":\"PENDING\"}]}" >/dev/null
		set -- execute --task-id "$id" --api-url "$URL"
		api=1
	fi
	if [ "$mode" = down ]; then
		(sleep 0.5
		 curl -fsS -X POST "$URL/_control/down" -d '{"seconds":600}' >/dev/null
		 while [ ! -s "$W/child.time" ]; do sleep 0.05; done
		 curl -fsS -X POST "$URL/_control/down" -d '{"seconds":0}' >/dev/null) &
		down=$!
	fi
	KERUTA_PLUGIN_PATH="$b/stages/.libs" KERUTA_API_MODULE="$b/.libs/backend-api.so" \
		/usr/bin/time -f '%e %U %S' -o "$W/agent.time" "$b/keruta-agent" "$@" \
		--work-dir "$W/work" --pipeline "$W/pipeline-$kind.yaml" \
		--termination-log /dev/null --log-level error >/dev/null 2>"$W/agent.err" && rc=0 || rc=$?
	[ -z "$down" ] || wait "$down"
	# the child's time stands either way; a run whose agent failed (on a
	# loaded machine: the spool not drained within the flush timeout) is
	# marked, and its agent figures are left out of the medians
	note=
	if [ $rc != 0 ]; then
		note=" agent-exit-$rc"
		echo "agent failed ($mode $kind):" >&2
		cat "$W/agent.err" >&2
	elif [ -n "$api" ]; then
		st=$(curl -fsS "$URL/_control/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][sys.argv[1]]["status"])' "$id")
		[ "$st" = COMPLETED ] || note=" task-ended-$st"
	fi
	set -- $(tail -n 1 "$W/agent.time")
	echo "$(cat "$W/child.time") $1 $(echo "$2 + $3" | bc)$note"
}

echo "run kind case child_s agent_wall_s agent_cpu_s"
r=1
while [ $r -le "$RUNS" ]; do
	for kind in 60 64k; do
		/usr/bin/time -f %e -o "$W/t" sh "$W/child-$kind.sh" > /dev/null
		echo "$r $kind direct $(cat "$W/t") - -"
		/usr/bin/time -f %e -o "$W/t" sh "$W/child-$kind.sh" | cat > /dev/null
		echo "$r $kind cat $(cat "$W/t") - -"
		for mode in local up down; do
			[ -z "$BB" ] || echo "$r $kind $mode-before $(agent "$BB" $mode $kind $r)"
			echo "$r $kind $mode $(agent "$B" $mode $kind $r)"
		done
	done
	r=$((r + 1))
done | tee "$W/runs.txt"

python3 - "$W/runs.txt" "$SIZE" <<'EOP'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
def col(kind, case, i):
    return [float(r[i]) for r in rows
            if r[1] == kind and r[2] == case and len(r) > i and r[i] != "-" and (i == 3 or len(r) == 6)]
print(f"\nmedians over {len(col('60', 'cat', 3))} runs, child writing {sys.argv[2]}")
print("| lines | case | child s | cat/x of medians | cat/x per run, median | agent wall s | agent CPU s | agent failed |")
print("|---|---|---|---|---|---|---|---|")
for kind in ("60", "64k"):
    k = st.median(col(kind, "cat", 3))
    cases = []
    for r in rows:
        if r[1] == kind and r[2] not in cases:
            cases.append(r[2])
    for case in cases:
        c = st.median(col(kind, case, 3))
        w = col(kind, case, 4)
        u = col(kind, case, 5)
        ws = f"{st.median(w):.2f}" if w else ""
        us = f"{st.median(u):.2f}" if u else ""
        bad = sum(1 for r in rows if r[1] == kind and r[2] == case and len(r) > 6)
        # each run's own cat: the load on a shared machine moves both alike
        cats = {r[0]: float(r[3]) for r in rows if r[1] == kind and r[2] == "cat"}
        pr = [cats[r[0]] / float(r[3]) for r in rows if r[1] == kind and r[2] == case and r[0] in cats]
        print(f"| {kind} | {case} | {c:.2f} | {k / c:.2f} | {st.median(pr):.2f} | {ws} | {us} | {bad or ''} |")
EOP
