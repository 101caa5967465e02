#!/bin/sh
# Cost of shipping log lines to keruta-api: requests made, bytes sent,
# wall time and peak RSS of the agent, for N lines emitted as fast as a
# stage can (the api_lines test fixture), against the reference server.
#
#   bench/logship/run.sh [BUILD_DIR] [LINES] [OUTAGE_SECONDS]
#
# BUILD_DIR is a configured build tree where `make check` (or at least
# `make keruta-agent backend-api.la tests/fixtures/api_lines.la`) ran;
# default: the current directory.  With OUTAGE_SECONDS, the API is taken
# down that long while the lines are being shipped.  Needs python3 and
# GNU time (package `time`).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${1:-.}" && pwd)
N=${2:-100000}
OUTAGE=${3:-0}
T=$(mktemp -d /tmp/kr-logship-bench.XXXXXX)
SERVER=
trap '[ -z "$SERVER" ] || kill $SERVER 2>/dev/null || true; rm -rf "$T"' EXIT INT TERM

python3 "$SRC/tests/refapi/keruta_api_server.py" --port 0 --port-file "$T/port" \
	--state-dir "$T/state" --idle-exit 600 >"$T/server.log" 2>&1 &
SERVER=$!
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(cat "$T/port")
URL=http://127.0.0.1:$PORT
curl -fsS -X POST "$URL/_control/seed" -d '{"tasks":[{"id":"bench"}]}' >/dev/null

EVERY=0 PAUSE=0ms
if [ "$OUTAGE" != 0 ]; then EVERY=1000 PAUSE=20ms; fi
mkdir -p "$T/work"
cat >"$T/pipeline.yaml" <<EOP
version: 1
plugin_path: [$B/tests/fixtures/.libs]
phases:
  execute: [lines]
stages:
  lines:
    plugin: api_lines
    with: {count: $N, every: $EVERY, pause: $PAUSE}
EOP

DOWN=
if [ "$OUTAGE" != 0 ]; then
	(sleep 0.5; curl -fsS -X POST "$URL/_control/down" -d "{\"seconds\":$OUTAGE}" >/dev/null) &
	DOWN=$!
fi
KERUTA_API_MODULE=$B/.libs/backend-api.so /usr/bin/time -f '%e %M' -o "$T/time" \
	"$B/keruta-agent" execute --task-id bench --api-url "$URL" --work-dir "$T/work" \
	--pipeline "$T/pipeline.yaml" --termination-log /dev/null --log-format text \
	>"$T/agent.out" 2>"$T/agent.err" || { cat "$T/agent.err"; exit 1; }
[ -z "$DOWN" ] || wait "$DOWN"

curl -fsS "$URL/_control/requests" >"$T/requests.json"
curl -fsS "$URL/_control/state" >"$T/state.json"
python3 - "$T" "$N" "$OUTAGE" <<'EOP'
import json, sys
t, n, outage = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reqs = json.load(open(f"{t}/requests.json"))
state = json.load(open(f"{t}/state.json"))
wall, rss = open(f"{t}/time").read().split()
logs = [r for r in reqs if r["path"].endswith("/logs")]
ok = [r for r in logs if r.get("response_status") == 200]
body = sum(len(r.get("body", "").encode()) for r in logs)
hdrs = sum(sum(len(k) + len(v) + 4 for k, v in r["headers"].items()) + len(r["method"]) + len(r["path"]) + 12 for r in logs)
lines = [l["line"] for l in state["logs"].get("bench", []) if l.get("stream") != "agent"]
agent = len(state["logs"].get("bench", [])) - len(lines)
want = ["line-%06d" % i for i in range(1, n + 1)]
print(f"lines emitted            {n}")
print(f"lines received in order  {'yes' if lines == want else 'NO (%d received)' % len(lines)}")
print(f"agent progress lines     {agent} (shipped too, as stream \"agent\")")
print(f"outage                   {outage} s")
print(f"log requests             {len(logs)} ({len(ok)} answered 200)")
print(f"all requests             {len(reqs)}")
print(f"log bytes sent           {body} body + ~{hdrs} request line/headers")
print(f"wall time                {wall} s (whole agent run)")
print(f"peak RSS                 {int(rss) / 1024:.1f} MiB")
EOP
