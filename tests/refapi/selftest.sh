#!/bin/sh
# Self-check of the reference keruta-api server (tests/refapi/keruta_api_server.py).
# Needs python3, curl, sha256sum (and openssl for the TLS step, skipped without it).
# Exits non-zero on the first mismatch.  Usage: tests/refapi/selftest.sh [OPENAPI_FILE]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
srv="$here/keruta_api_server.py"
openapi=${1:-${KERUTA_OPENAPI:-$here/../reference/keruta-api.openapi.yaml}}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; [ -s "$tmp/server.err" ] && sed 's/^/  server: /' "$tmp/server.err" >&2; exit 1; }
ok() { echo "ok   $*"; }
# jcheck DESC PYTHON_EXPR FILE : assert a Python expression over the JSON document d
jcheck() {
    python3 - "$3" "$2" <<'EOF' || fail "$1"
import json, sys
d = json.load(open(sys.argv[1]))
if not eval(sys.argv[2]):
    sys.exit("  assertion %s failed on %s" % (sys.argv[2], json.dumps(d)[:600]))
EOF
    ok "$1"
}
wait_port() {  # wait_port FILE -> prints the port
    i=0; while [ ! -s "$1" ]; do i=$((i+1)); [ $i -gt 100 ] && fail "no port file $1"; sleep 0.1; done; cat "$1"
}
gone() {  # gone PID SECONDS : succeed once PID has exited
    i=0; while kill -0 "$1" 2>/dev/null; do i=$((i+1)); [ $i -gt $(($2*10)) ] && return 1; sleep 0.1; done
}
[ -r "$openapi" ] || { echo "note: $openapi not readable, running without validation"; openapi=/nonexistent; }

python3 "$srv" --port 0 --port-file "$tmp/port" --token s3cret --idle-exit 120 \
    --state-dir "$tmp/state" --openapi "$openapi" 2>"$tmp/server.err" &
pid=$!
port=$(wait_port "$tmp/port")
B="http://127.0.0.1:$port"
AUTH="Authorization: Bearer s3cret"
C() { curl -sS -o "$tmp/out" -D "$tmp/hdr" -w '%{http_code}' "$@"; }   # prints the HTTP code
ctl() { curl -sS -f -H 'Content-Type: application/json' "$@"; }

C "$B/_control/health" >/dev/null; jcheck "health" 'd["ok"]' "$tmp/out"
[ "$openapi" = /nonexistent ] || jcheck "openapi loaded" 'd["validation"] is True' "$tmp/out"

# --- seed
printf 'binary\000doc\377\n' > "$tmp/doc.bin"
b64=$(base64 -w0 "$tmp/doc.bin")
ctl -d "{\"tasks\":[{\"id\":\"t1\",\"name\":\"first\",\"status\":\"PENDING\",\"parentTaskId\":\"t0\"},
                   {\"id\":\"t2\",\"name\":\"second\",\"status\":\"COMPLETED\"}],
        \"repositories\":[{\"id\":\"r1\",\"url\":\"git://127.0.0.1/repo.git\",\"branch\":\"main\"}],
        \"scripts\":{\"t1\":{\"content\":\"echo hi\",\"parameters\":{\"env\":{\"A\":\"1\"}}},
                   \"t3\":{\"executeScript\":\"echo three\",\"environment\":{\"B\":\"2\"}}},
        \"flatScripts\":{\"t2\":{\"executeScript\":\"echo flat\"}},
        \"installScripts\":{\"r1\":\"#!/bin/sh\\necho install\\n\"},
        \"documents\":{\"d1\":{\"name\":\"notes \\\"v1\\\".md\",\"content_b64\":\"$b64\"}}}" \
    "$B/_control/seed" >/dev/null
ok "seed"

# --- reads, token, prefixes
[ "$(C "$B/api/v1/tasks/t1")" = 401 ] || fail "no token must give 401"
jcheck "401: Spring Boot's error document" 'd["status"] == 401 and d["error"] == "Unauthorized" and d["path"] == "/api/v1/tasks/t1"' "$tmp/out"
[ "$(C -H "$AUTH" "$B/api/v1/tasks/t1")" = 200 ] || fail "GET task"
jcheck "GET /api/v1/tasks/t1" 'd["id"] == "t1" and d["parentTaskId"] == "t0"' "$tmp/out"
[ "$(C -H "$AUTH" "$B/api/tasks/t1")" = 200 ] || fail "GET task without v1"
[ "$(C -H "$AUTH" "$B/api/v1/tasks/nope")" = 404 ] || fail "unknown task must be 404"
[ ! -s "$tmp/out" ] || fail "an unknown task's 404 has no body (notFound().build())"
ok "404 without a body"
C -H "$AUTH" "$B/api/v1/tasks/status/PENDING" >/dev/null
jcheck "GET tasks/status/PENDING" '[t["id"] for t in d] == ["t1"]' "$tmp/out"
C -H "$AUTH" "$B/api/v1/tasks/t1/script" >/dev/null
jcheck "GET task script (the original agent's shape)" 'd["success"] is True and d["taskId"] == "t1" and d["script"] == {"content": "echo hi", "language": "bash", "filename": "script.sh", "parameters": {"env": {"A": "1"}}}' "$tmp/out"
C -H "$AUTH" "$B/api/v1/tasks/t3/script" >/dev/null
jcheck "GET task script (keruta-api's ScriptResponse)" 'd["taskId"] == "t3" and d["script"] == {"installScript": "", "executeScript": "echo three", "cleanupScript": ""} and d["environment"] == {"B": "2"} and set(d) == {"taskId", "script", "environment", "createdAt", "updatedAt"}' "$tmp/out"
C -H "$AUTH" "$B/api/v1/tasks/t2/script" >/dev/null
jcheck "GET task script (flat, when seeded so)" 'd == {"executeScript": "echo flat"}' "$tmp/out"
[ "$(C -H "$AUTH" "$B/api/v1/repositories/r1/script")" = 200 ] || fail "install script"
grep -q '^echo install$' "$tmp/out" || fail "install script body"
grep -qi '^content-type: text/plain' "$tmp/hdr" || fail "install script content type"
[ "$(C -H "$AUTH" "$B/api/v1/repositories/r9/script")" = 404 ] || fail "missing install script must be 404"
ok "install script"
[ "$(C -H "$AUTH" "$B/api/v1/documents/d1/content")" = 200 ] || fail "document content"
cmp -s "$tmp/out" "$tmp/doc.bin" || fail "document bytes differ"
grep -qi '^content-disposition: attachment; filename="notes \\"v1\\".md"' "$tmp/hdr" || fail "content-disposition"
ok "document content (binary) + Content-Disposition"

# --- injected 503 with Retry-After, consumed once
ctl -d '{"match":{"method":"GET","path_regex":"/tasks/t1$"},"action":"status","code":503,"retry_after":2}' \
    "$B/_control/fault" >/dev/null
[ "$(C -H "$AUTH" "$B/api/v1/tasks/t1")" = 503 ] || fail "fault 503"
grep -i '^retry-after:' "$tmp/hdr" | tr -d '\r'
grep -qi '^retry-after: 2' "$tmp/hdr" || fail "Retry-After header"
jcheck "503 error body" 'd["error"]["code"] == "SERVICE_UNAVAILABLE"' "$tmp/out"
[ "$(C -H "$AUTH" "$B/api/v1/tasks/t1")" = 200 ] || fail "fault must apply once"
ok "fault consumed"

# --- other faults: garbage, oversize, stall, drop
ctl -d '{"action":"garbage"}' "$B/_control/fault" >/dev/null
C -H "$AUTH" "$B/api/v1/tasks/t1" >/dev/null
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out" 2>/dev/null && fail "garbage parsed"
ok "garbage"
ctl -d '{"action":"oversize","bytes":3000000}' "$B/_control/fault" >/dev/null
C -H "$AUTH" "$B/api/v1/tasks/t1" >/dev/null
[ "$(wc -c < "$tmp/out")" -eq 3000000 ] || fail "oversize length"
ok "oversize"
ctl -d '{"action":"stall","seconds":2}' "$B/_control/fault" >/dev/null
rc=0; curl -sS -m 0.5 -o /dev/null -H "$AUTH" "$B/api/v1/tasks/t1" 2>/dev/null || rc=$?
[ $rc -eq 28 ] || fail "stall: curl rc $rc, want 28 (timeout)"
ok "stall"
ctl -d '{"action":"drop","match":{"path_regex":"/logs$"}}' "$B/_control/fault" >/dev/null
rc=0; curl -sS -o /dev/null -H "$AUTH" -H 'Content-Type: application/json' -d '{"message":"x"}' \
    "$B/api/v1/tasks/t1/logs" 2>/dev/null || rc=$?
[ $rc -eq 52 ] || [ $rc -eq 56 ] || fail "drop: curl rc $rc, want 52/56"
ok "drop (curl rc $rc)"

# --- status updates and logs, with body validation
J='Content-Type: application/json'
[ "$(C -X PUT -H "$AUTH" -H "$J" -d '{"status":"IN_PROGRESS","message":"started"}' "$B/api/v1/tasks/t1/status")" = 200 ] \
    || fail "PUT status"
jcheck "PUT status answers the task" 'd["status"] == "IN_PROGRESS"' "$tmp/out"
[ "$(C -X PUT -H "$AUTH" -H "$J" -d '{"status":"FAILED","progress":5}' "$B/api/tasks/t1/status")" = 400 ] \
    || fail "non-string field must be 400"
jcheck "400: Spring Boot's error document" 'd["status"] == 400 and d["error"] == "Bad Request"' "$tmp/out"
[ "$(C -X PUT -H "$AUTH" -H "$J" -d '{"status":"PROCESSING"}' "$B/api/v1/tasks/t1/status")" = 400 ] \
    || fail "a status keruta-api has no TaskStatus for must be 400"
[ ! -s "$tmp/out" ] || fail "the controller's 400 has no body (badRequest().build())"
[ "$(C -X PUT -H "$AUTH" -H "$J" -d '{"status":"in_progress"}' "$B/api/v1/tasks/t2/status")" = 200 ] \
    || fail "keruta-api upper-cases the status"
[ "$(C -X PUT -H "$AUTH" -d '{"status":"FAILED"}' "$B/api/v1/tasks/t1/status")" = 415 ] \
    || fail "form content type must be 415"
[ "$(C -X PUT -H "$AUTH" -H "$J" -d '{"status":"IN_PROGRESS","progress":"101"}' "$B/api/v1/tasks/t1/status")" = 400 ] \
    || fail "progress over 100 must be 400"
[ "$(C -X PUT -H "$AUTH" -H "$J" -d '{"status":"FAILED","errorCode":"exec failed"}' "$B/api/v1/tasks/t1/status")" = 400 ] \
    || fail "an errorCode that is not UPPER_SNAKE must be 400"
[ "$(C -H "$AUTH" -H "$J" -d '{"message":"one\ntwo\n","stream":"stdout","level":"INFO"}' "$B/api/v1/tasks/t1/logs")" = 200 ] \
    || fail "POST logs"
[ "$(C -H "$AUTH" -H "$J" -d '{"lines":[{"line":"x"}]}' "$B/api/v1/tasks/t1/logs")" = 400 ] \
    || fail "lines[] batch must be 400"
ok "status/log validation"

# --- multipart uploads: Content-Length and chunked, one 40 MB file
head -c 41943040 /dev/urandom > "$tmp/big.bin"
printf 'hello\n' > "$tmp/small.md"
[ "$(C -H "$AUTH" -F "file=@$tmp/big.bin" -F description=big "$B/api/tasks/t1/documents")" = 200 ] || fail "upload big"
[ "$(C -H "$AUTH" -H 'Transfer-Encoding: chunked' -F "file=@$tmp/small.md;filename=doc/small.md" \
      "$B/api/v1/tasks/t1/documents")" = 200 ] || fail "upload chunked"
[ "$(C -H "$AUTH" -F "other=@$tmp/small.md" "$B/api/tasks/t1/documents")" = 400 ] || fail "upload without file field"
[ "$(C -H "$AUTH" -F "file=@$tmp/small.md" "$B/api/tasks/nope/documents")" = 404 ] || fail "upload to unknown task"
ok "uploads"

# --- state
curl -sS "$B/_control/state" > "$tmp/state.json"
big_sha=$(sha256sum "$tmp/big.bin" | cut -d' ' -f1)
jcheck "state.statuses" 'd["statuses"]["t1"] == [{"status":"IN_PROGRESS","message":"started"}]' "$tmp/state.json"
jcheck "state.logs" '[(l["line"], l["stream"]) for l in d["logs"]["t1"]] == [("one","stdout"), ("two","stdout")]' "$tmp/state.json"
jcheck "state.uploads" "[(u['name'], u['size'], u['sha256']) for u in d['uploads']['t1']] == [('big.bin', 41943040, '$big_sha'), ('doc/small.md', 6, '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03')]" "$tmp/state.json"
jcheck "uploaded bytes on disk" 'all(open(u["path"],"rb").read(1) is not None for u in d["uploads"]["t1"])' "$tmp/state.json"
cmp -s "$tmp/big.bin" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uploads"]["t1"][0]["path"])' "$tmp/state.json")" \
    || fail "stored upload differs"
curl -sS "$B/_control/requests" > "$tmp/req.json"
jcheck "requests recorded, lowercased headers" 'd[0]["headers"]["host"].startswith("127.0.0.1")' "$tmp/req.json"
jcheck "invalid requests flagged" '[r["response_status"] for r in d if "invalid" in r] == [400, 400, 415, 400, 400, 400, 400]' "$tmp/req.json"
jcheck "upload recorded as parts" 'any(r.get("parts") and r["parts"][0]["sha256"] == "'"$big_sha"'" and "body" not in r for r in d)' "$tmp/req.json"

# --- outage
ctl -d '{"seconds":1}' "$B/_control/down" >/dev/null
rc=0; curl -sS -o /dev/null -H "$AUTH" "$B/api/v1/tasks/t1" 2>/dev/null || rc=$?
[ $rc -ne 0 ] || fail "request during outage succeeded"
sleep 1.2
[ "$(C -H "$AUTH" "$B/api/v1/tasks/t1")" = 200 ] || fail "after outage"
ok "outage (curl rc $rc during, 200 after)"

# --- reset
ctl -X POST "$B/_control/reset" >/dev/null
curl -sS "$B/_control/state" > "$tmp/state.json"
jcheck "reset" 'd["statuses"] == {} and d["uploads"] == {} and d["tasks"] == {}' "$tmp/state.json"
kill "$pid"; gone "$pid" 5 || fail "server ignored SIGTERM"; pid=
[ ! -e "$tmp/state/uploads/t1" ] || fail "reset left uploads behind"
ok "SIGTERM"

# --- TLS
if command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/k.pem" -out "$tmp/c.pem" -days 2 \
        -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
    python3 "$srv" --port-file "$tmp/port2" --tls-cert "$tmp/c.pem" --tls-key "$tmp/k.pem" 2>>"$tmp/server.err" &
    pid=$!
    p2=$(wait_port "$tmp/port2")
    [ "$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$tmp/c.pem" "https://127.0.0.1:$p2/api/v1/tasks/x")" = 404 ] \
        || fail "TLS request"
    kill "$pid"; pid=
    ok "TLS"
fi

# --- exits by itself: idle timeout, and when its parent shell exits
python3 "$srv" --port-file "$tmp/port3" --idle-exit 1 2>>"$tmp/server.err" &
p3=$!
wait_port "$tmp/port3" >/dev/null
gone "$p3" 5 || { kill "$p3"; fail "no idle exit"; }
ok "idle exit"
# the shell exits once the server is listening (it has noted its parent by then), not after a
# guessed delay: a slow start read the parent after the shell was already gone
sh -c 'python3 "$1" --port-file "$2" --idle-exit 60 & echo $! > "$3"
       while [ ! -s "$2" ]; do sleep 0.05; done' sh "$srv" "$tmp/port4" "$tmp/pid4"
p4=$(cat "$tmp/pid4")
gone "$p4" 5 || { kill "$p4"; fail "server outlived its parent shell"; }
ok "exit when the parent shell exits"
echo "selftest: all checks passed"
