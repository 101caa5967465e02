#!/bin/bash
# bench/collect/run.sh - the collect stage uploading to the reference
# keruta-api server vs curl uploading the same files (multipart, one
# connection), and the agent's peak RSS, for two total sizes.
#
#   bench/collect/run.sh [BUILD_DIR] [SIZES...]
#
# BUILD_DIR holds keruta-agent, stages/.libs and .libs/backend-api.so
# (default: the current directory).  SIZES are "FILES:BYTES_EACH" pairs
# (default: 1000 files of 1 GiB/1000, then 100 files of 1 MiB).
# Needs python3 (3.11+), curl and GNU time; about 3 x the largest total
# of free space in $TMPDIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-.}" && pwd)
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=("1000:1073742" "100:1048576")

agent=$build/keruta-agent
[ -x "$agent" ] || { echo "no keruta-agent in $build; give the build directory" >&2; exit 2; }
[ -f "$build/.libs/backend-api.so" ] || { echo "no .libs/backend-api.so in $build" >&2; exit 2; }
export KERUTA_PLUGIN_PATH=$build/stages/.libs
export KERUTA_API_MODULE=$build/.libs/backend-api.so

scratch=$(mktemp -d "${TMPDIR:-/tmp}/bench-collect.XXXXXX")
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$scratch"
}
trap cleanup EXIT

# the reference server, its uploads on disk like a real one
python3 "$src/tests/refapi/keruta_api_server.py" --port 0 --port-file "$scratch/port" \
	--state-dir "$scratch/state" --idle-exit 600 --parent-pid $$ >"$scratch/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$scratch/port" ] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$scratch/port")
ctl() { curl -fsS -X POST -H 'Content-Type: application/json' --data-binary "$2" "$url/_control/$1" >/dev/null; }

cat >"$scratch/pipeline.yaml" <<'YAML'
version: 1
phases:
  cleanup: [collect]
stages:
  collect: {plugin: collect, with: {max_file_size: 2GB, max_total_size: 100GB}}
YAML

now() { date +%s.%N; }
printf '%-8s %-12s %-10s %-10s %-10s %-8s %-12s\n' files total_MiB agent_s curl_s agent_MiBps ratio agent_rss_KiB
for spec in "${sizes[@]}"; do
	n=${spec%%:*} each=${spec##*:}
	work=$scratch/work-$n
	mkdir -p "$work/.keruta/doc"
	for i in $(seq -w 1 "$n"); do
		head -c "$each" /dev/urandom >"$work/.keruta/doc/f$i.bin"
	done
	total=$((n * each))
	sync

	# curl: every file in one process, one connection (-K config, "next")
	cfg=$scratch/curl-$n.cfg
	: >"$cfg"
	sep=
	for f in "$work"/.keruta/doc/*; do
		printf '%surl = "%s/api/tasks/curl/documents"\nform = "file=@%s"\noutput = /dev/null\n' \
			"$sep" "$url" "$f" >>"$cfg"
		sep=$'next\n'
	done
	ctl reset '{}'
	ctl seed '{"tasks":[{"id":"curl"}]}'
	t0=$(now)
	curl -fsS -K "$cfg"
	t1=$(now)
	curl_s=$(echo "$t1 - $t0" | bc)
	uploaded=$(curl -fsS "$url/_control/state" | python3 -c \
		'import json,sys; print(len(json.load(sys.stdin)["uploads"].get("curl", [])))')
	[ "$uploaded" = "$n" ] || { echo "curl uploaded $uploaded of $n files" >&2; exit 1; }

	ctl reset '{}'
	ctl seed '{"tasks":[{"id":"bench"}]}'
	t0=$(now)
	/usr/bin/time -f '%M' -o "$scratch/rss" "$agent" cleanup --task-id bench --api-url "$url" \
		--work-dir "$work" --pipeline "$scratch/pipeline.yaml" --termination-log '' \
		--log-format text --log-level warn
	t1=$(now)
	agent_s=$(echo "$t1 - $t0" | bc)
	uploaded=$(curl -fsS "$url/_control/state" | python3 -c \
		'import json,sys; print(len(json.load(sys.stdin)["uploads"].get("bench", [])))')
	[ "$uploaded" = "$n" ] || { echo "the agent uploaded $uploaded of $n files" >&2; exit 1; }
	rss=$(cat "$scratch/rss")
	printf '%-8s %-12s %-10.2f %-10.2f %-10.1f %-8.2f %-12s\n' "$n" "$((total / 1048576))" \
		"$agent_s" "$curl_s" "$(echo "$total / 1048576 / $agent_s" | bc -l)" \
		"$(echo "$curl_s / $agent_s" | bc -l)" "$rss"
	ctl reset '{}'
	rm -rf "$work"
done
echo "ratio = curl time / agent time (1.0: as fast as curl; above 1: faster)"
