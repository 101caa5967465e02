#!/bin/sh
# bench/dispatch/run.sh [BUILDDIR] [TASKS] [CONCURRENCY] [DROP]
# Follows TASKS tasks (default 1000) through `keruta-agent dispatch --once`
# against the Kubernetes API test server (tests/kubeapi; a short scripted
# success history per Job, cleanup Jobs included) and the reference
# keruta-api (tests/refapi), then prints Kubernetes API requests per task
# and the launcher's CPU time and peak memory (GNU time).  With DROP=1
# (default), once half the tasks are COMPLETED every watch is closed and
# the event history expired: the launcher gets 410 Gone and must re-list
# under load.  The load average before and during the run (sampled every
# 10 s) is printed: CPU times are only comparable at the same load
# (counts are, always).  The two test servers' own CPU time and peak RSS
# are printed too: when they approach the wall time, they are the bottleneck.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src}" && pwd)
tasks=${2:-1000}
conc=${3:-50}
drop=${4:-1}
tmp=$(mktemp -d)
trap 'kill $kpid $apid $lpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM

python3 "$src/tests/kubeapi/kube_api_server.py" --port-file "$tmp/kport" --token t \
	--step 0.01 --idle-exit 0 --parent-pid $$ >"$tmp/kube.log" 2>&1 &
kpid=$!
python3 "$src/tests/refapi/keruta_api_server.py" --port-file "$tmp/aport" --idle-exit 0 --parent-pid $$ \
	>"$tmp/api.log" 2>&1 &
apid=$!
for i in $(seq 100); do [ -s "$tmp/kport" ] && [ -s "$tmp/aport" ] && break; sleep 0.1; done
kport=$(cat "$tmp/kport"); aport=$(cat "$tmp/aport")
cat >"$tmp/kubeconfig" <<CFG
apiVersion: v1
current-context: b
clusters: [{name: k, cluster: {server: "http://127.0.0.1:$kport"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: b, context: {cluster: k, user: u, namespace: bench}}]
CFG
python3 - "$aport" "$tasks" <<'PY'
import json, sys, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
tasks = [{"id": f"bench-{i:05d}", "title": f"task {i}", "status": "PENDING", "priority": i % 5,
          "repositoryId": "repo-1"} for i in range(n)]
req = urllib.request.Request(f"http://127.0.0.1:{port}/_control/seed", json.dumps({"tasks": tasks}).encode(),
                             {"Content-Type": "application/json"})
urllib.request.urlopen(req).read()
PY
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
while :; do cut -d' ' -f1 /proc/loadavg >>"$tmp/load"; sleep 10; done &
lpid=$!
if [ "$drop" = 1 ]; then
	python3 - "$kport" "$aport" "$tasks" >"$tmp/drop.log" 2>&1 <<'PY' &
import json, sys, time, urllib.request
kport, aport, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
while True:
    time.sleep(2)
    try:
        st = json.load(urllib.request.urlopen(f"http://127.0.0.1:{aport}/_control/state"))
    except OSError:
        sys.exit(0)
    done = sum(1 for v in st["statuses"].values() if v and v[-1]["status"] == "COMPLETED")
    if done >= n // 2:
        req = urllib.request.Request(f"http://127.0.0.1:{kport}/_control/drop", b'{"expire": true}',
                                     {"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        print(f"watches dropped, history expired at {done} COMPLETED")
        sys.exit(0)
PY
	dpid=$!
fi
start=$(date +%s.%N)
KERUTA_LAUNCHER_MODULE="$build/.libs/launcher.so" /usr/bin/time -f "%U %S %M %e" -o "$tmp/time" \
	"$build/keruta-agent" dispatch --once --kubeconfig "$tmp/kubeconfig" \
	--api-url "http://127.0.0.1:$aport" --concurrency "$conc" --pending-interval 1s \
	--log-level "${LOG_LEVEL:-warn}" --log-format text
kill $lpid 2>/dev/null || true
awk '{s += $1; if ($1 > m) m = $1} END {if (NR) printf "load average during the run (1-min, every 10 s): mean %.1f, max %.1f\n", s / NR, m}' "$tmp/load"
for p in $kpid $apid; do
	[ $p = $kpid ] && name=kubeapi || name=refapi
	awk -v n=$name -v t="$(getconf CLK_TCK)" '{printf "test server %s: CPU %.1fs", n, ($14 + $15) / t}' /proc/$p/stat
	awk '/^VmHWM/ {printf ", peak RSS %.0f MiB\n", $2 / 1024}' /proc/$p/status
done
[ "$drop" = 1 ] && { kill $dpid 2>/dev/null || true; wait $dpid 2>/dev/null || true; cat "$tmp/drop.log"; }
python3 - "$kport" "$aport" "$tasks" "$tmp/time" <<'PY'
import collections, json, sys, urllib.request
kport, aport, n, tfile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
reqs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{kport}/_control/requests?bodies=0"))
state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{aport}/_control/state"))
done = sum(1 for v in state["statuses"].values() if v and v[-1]["status"] == "COMPLETED")
kinds = collections.Counter()
for r in reqs:
    what = r["path"].rsplit("/", 1)[-1] if r["method"] in ("PATCH", "DELETE") or r["path"].count("/") > 5 else r["path"].rsplit("/", 1)[-1]
    res = [p for p in ("persistentvolumeclaims", "jobs", "pods") if f"/{p}" in r["path"]][0]
    kind = "watch" if "watch=1" in r["query"] else ("list" if r["method"] == "GET" and
                                                    r["path"].endswith(("/jobs", "/pods")) else r["method"])
    kinds[f"{kind} {res}"] += 1
user, sys_, rss, wall = open(tfile).read().split()[-4:]
print(f"tasks: {n}, COMPLETED: {done}")
print(f"Kubernetes API requests: {len(reqs)} ({len(reqs) / n:.3f} per task)")
for k, v in sorted(kinds.items()):
    print(f"  {k:36s} {v:6d}  ({v / n:.3f} per task)")
print(f"launcher CPU: user {user}s + system {sys_}s = {float(user) + float(sys_):.2f}s "
      f"({(float(user) + float(sys_)) * 1000 / n:.2f} ms per task); wall {wall}s")
print(f"launcher peak RSS: {int(rss) / 1024:.1f} MiB")
PY
