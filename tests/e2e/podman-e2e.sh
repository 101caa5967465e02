#!/bin/sh
# End to end with a real container runtime: the Job that `keruta-agent
# render` prints for a task (seed 004's shape: init container `keruta-agent
# init`, main container `keruta-agent run`, sharing the work volume at
# /work), played by `podman kube play` as a Pod with the agent image,
# cloning from a git daemon and reporting to the reference keruta-api
# server, both on 127.0.0.1.  The pod uses hostNetwork: true and reaches
# nothing but 127.0.0.1.
#
#   make e2e-podman        (in a build tree: rebuilds the image from it, then runs this)
#   tests/e2e/podman-e2e.sh   (uses the existing image as is; builds it only when missing)
#
# Env: KR_SRCDIR, KR_BUILDDIR (default: this checkout, in-tree build);
#      KERUTA_E2E_IMAGE (default localhost/keruta-agent:latest; built with
#      deploy/image/build-image.sh when missing); KERUTA_E2E_KEEP=1 keeps the
#      temp dir.  Needs root, podman + runc, python3, git.
# Two pods run: task e2e-1 must succeed, task e2e-fail (its script exits 3)
# must fail.  Checks: the containers exit 0 (1 for the failing task's main
# container); keruta-api saw IN_PROGRESS then COMPLETED (FAILED)
# for the task; the artifacts arrived with the expected content (they prove
# clone, git-exclude, install, document, execute and collect each ran); the
# task's output reached the API as logs; the token never shows in a log.
# Exit 0 pass, 1 fail, 77 skipped (no root/podman).  Prints "N passed, N failed".
set -u
src=${KR_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${KR_BUILDDIR:-$src}
image=${KERUTA_E2E_IMAGE:-localhost/keruta-agent:latest}
t0=$(date +%s)
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS: $1"; }
ko() { fail=$((fail + 1)); echo "FAIL: $1"; }
skip() { echo "SKIP: $1"; echo "0 passed, 0 failed"; exit 77; }
bail() { ko "$1"; finish; }

[ "$(id -u)" = 0 ] || skip "podman kube play with hostNetwork needs root here"
command -v podman >/dev/null || skip "podman is not installed (apt-get install podman runc)"
command -v python3 >/dev/null && command -v git >/dev/null || skip "python3 and git are needed"
if ! podman image exists "$image"; then
	echo "building $image (first run: debootstrap takes a few minutes)"
	MAKE=${MAKE:-make} sh "$src/deploy/image/build-image.sh" "$build" "${image%:*}" || skip "cannot build $image"
fi

run=kre2e$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/keruta-e2e.XXXXXX")
pids=
finish() {
	for y in "$tmp"/pod-*.yaml; do [ -f "$y" ] && podman kube down "$y" > /dev/null 2>&1; done
	for p in $(podman pod ps -q --filter "name=keruta-job-$run" 2>/dev/null); do podman pod rm -f "$p" > /dev/null 2>&1; done
	for v in $(podman volume ls -q --filter "name=$run" 2>/dev/null); do podman volume rm -f "$v" > /dev/null 2>&1; done
	podman secret rm "api-token-$run" > /dev/null 2>&1
	for p in $pids; do kill "$p" 2> /dev/null; done
	for p in $pids; do wait "$p" 2> /dev/null; done
	if [ "${KERUTA_E2E_KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
	echo "podman-e2e: $(($(date +%s) - t0)) s"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ] && exit 0 || exit 1
}
trap finish INT TERM

waitfile() { # FILE SECONDS
	i=0
	while [ ! -s "$1" ] && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$1" ]
}

# --- a repository on a git daemon (git://127.0.0.1:PORT/repo.git)
mkdir -p "$tmp/git" "$tmp/src"
git init -q -b main "$tmp/src" &&
	printf 'line one\nline two\nline three\n' > "$tmp/src/README" &&
	git -C "$tmp/src" add README &&
	git -C "$tmp/src" -c user.name=e2e -c user.email=e2e@example.invalid commit -qm init &&
	git clone -q --bare "$tmp/src" "$tmp/git/repo.git" || bail "cannot make the test repository"
python3 "$src/tests/gitserver/gitserve.py" daemon --root "$tmp/git" --port-file "$tmp/git.port" \
	> "$tmp/gitserve.log" 2>&1 &
pids="$pids $!"
waitfile "$tmp/git.port" 20 || bail "the git daemon did not start: $(cat "$tmp/gitserve.log")"
gitport=$(cat "$tmp/git.port")

# --- the reference keruta-api server, with a token
token="e2e-token-$run-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
python3 "$src/tests/refapi/keruta_api_server.py" --port 0 --port-file "$tmp/api.port" \
	--state-dir "$tmp/api-state" --token "$token" --idle-exit 600 > "$tmp/api.log" 2>&1 &
pids="$pids $!"
waitfile "$tmp/api.port" 20 || bail "the API server did not start: $(cat "$tmp/api.log")"
api=http://127.0.0.1:$(cat "$tmp/api.port")

control() { # PATH [JSON]
	python3 - "$api/_control/$1" "${2:-}" <<'PY'
import sys, urllib.request
url, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, data=body.encode() if body else None,
                             headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=10).read().decode())
PY
}

seed=$(python3 - "git://127.0.0.1:$gitport/repo.git" <<'PY'
import json, sys
execute = """#!/bin/sh
set -e
mkdir -p .keruta/doc
wc -l < README | tr -d ' ' > .keruta/doc/line-count.txt
cp .keruta/documents/notes.md .keruta/doc/notes-seen.md
cp installed-marker .keruta/doc/install-ran.txt
grep -qx '/.keruta' .git/info/exclude && echo excluded > .keruta/doc/exclude.txt
echo "e2e task $KERUTA_TASK_ID ran: $KERUTA_TASK_TITLE"
"""
print(json.dumps({
    "tasks": [{"id": "e2e-1", "title": "podman end to end", "description": "one task, two containers",
               "priority": 1, "status": "PENDING", "createdAt": "2026-01-01T00:00:00Z",
               "updatedAt": "2026-01-01T00:00:00Z", "repositoryId": "r1", "documentIds": ["doc-1"]},
              {"id": "e2e-fail", "title": "a failing task", "repositoryId": "r1",
               "documentIds": ["doc-1"]}],
    "repositories": [{"id": "r1", "url": sys.argv[1], "ref": "main"}],
    "installScripts": {"r1": "#!/bin/sh\necho install-for-e2e > installed-marker\n"},
    "scripts": {"e2e-1": {"content": execute, "language": "sh"},
                "e2e-fail": {"content": "#!/bin/sh\necho about to fail\nexit 3\n"}},
    "documents": {"doc-1": {"name": "notes.md", "content": "# notes for e2e\n"}},
}))
PY
)
control seed "$seed" > /dev/null || bail "cannot seed the API server"

# --- the token as podman wants it for secretKeyRef: flat JSON, base64 values
printf '{"token":"%s"}' "$(printf '%s' "$token" | base64 -w0)" |
	podman secret create "api-token-$run" - > /dev/null || bail "podman secret create failed"
# ... and as the file the rendered pods mount from the Secret (--api-token-file)
mkdir -p "$tmp/token" && printf '%s' "$token" > "$tmp/token/token" && chmod 0440 "$tmp/token/token" ||
	bail "cannot write the token file"

# --- the pod: what `keruta-agent render` prints for the task (the Job of
# seed 004: init container + main container sharing the work volume),
# played as a Pod since podman 4.3 runs no Jobs (tests/e2e/job-to-pod.py)
agent=$build/keruta-agent
launcher=${KERUTA_LAUNCHER_MODULE:-$build/.libs/launcher.so}
podyaml() { # NAME TASK_ID
	KERUTA_API_TOKEN=$token KERUTA_LAUNCHER_MODULE=$launcher "$agent" render --task-id "$2" \
		--api-url "$api" --work-volume emptydir --image "$image" --image-pull-policy Never \
		--memory-limit 512Mi --log-format text > "$tmp/job-$1.yaml" 2> "$tmp/render-$1.err" ||
		{ ko "$2: keruta-agent render failed: $(cat "$tmp/render-$1.err")"; return 1; }
	python3 "$src/tests/e2e/job-to-pod.py" "$tmp/job-$1.yaml" "keruta-job-$1" "api-token-$run" \
		"$tmp/token"
}

# Schema validation of the pod YAML (skipped without node and npm).
schemas=${KERUTA_K8S_SCHEMAS:-$src/tests/reference/k8s-json-schema-v1.32.2-strict}
validate=
if nodemods=$(sh "$src/tests/schema/node-modules.sh"); then
	validate="env NODE_PATH=$nodemods node $src/tests/e2e/schema/k8s-validate.js --schemas $schemas"
else
	echo "SKIP: pod YAML schema validation: $nodemods"
fi

# --- run a pod: NAME TASK_ID TITLE EXPECTED_MAIN_EXIT
runpod() {
	pod=keruta-job-$1
	podyaml "$@" > "$tmp/pod-$1.yaml" || return 0
	# Both are real Kubernetes objects, not only something podman accepts.
	if [ -n "$validate" ]; then
		if $validate "$tmp/job-$1.yaml" "$tmp/pod-$1.yaml" > "$tmp/val-$1.out" 2>&1; then
			ok "$2: the rendered Job and the Pod played are valid against the strict v1.32 schemas"
		else ko "$2: the rendered Job or its Pod is not valid Kubernetes"; cat "$tmp/val-$1.out"; fi
	fi
	rc=0
	# --build=false and cwd $tmp: kube play would otherwise try to build the
	# image from a directory named like it (./keruta-agent in a build tree).
	(cd "$tmp" && timeout 180 podman kube play --build=false "$tmp/pod-$1.yaml") > "$tmp/play-$1.out" 2> "$tmp/play-$1.err" || rc=$?
	grep -v 'failed to connect to syslog' "$tmp/play-$1.err" >&2
	for c in $(podman ps -a --filter "pod=$pod" --format '{{.Names}}' | grep -v -- '-infra$'); do
		timeout 180 podman wait "$c" > /dev/null 2>&1
	done
	[ $rc -eq 0 ] && ok "$2: podman kube play started the pod" || ko "$2: podman kube play exited $rc"
	for c in "$pod-keruta-agent-init:0" "$pod-main:$4"; do
		want=${c##*:} c=${c%:*}
		st=$(podman inspect "$c" --format '{{.State.Status}} {{.State.ExitCode}}' 2>/dev/null || echo missing)
		podman logs "$c" > "$tmp/$c.log" 2>&1
		if [ "$st" = "exited $want" ]; then ok "$2: container $c exited $want"
		else ko "$2: container $c: $st, expected exited $want"; sed "s/^/  [$c] /" "$tmp/$c.log" | tail -n 40; fi
		if grep -qF "$token" "$tmp/$c.log"; then ko "$2: the API token appears in $c's log"; fi
	done
}
runpod "$run-ok" e2e-1 "podman end to end" 0
# The same pod for a task whose script exits 3: the agent exits 1 (task failed).
runpod "$run-fail" e2e-fail "a failing task" 1

# --- what keruta-api saw
control state > "$tmp/state.json" || bail "cannot read the API server's state"
python3 - "$tmp/state.json" > "$tmp/checks.out" <<'PY'
import json, sys, hashlib
s = json.load(open(sys.argv[1]))
def check(what, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail))
st = [b.get("status") for b in s.get("statuses", {}).get("e2e-1", [])]
check("task e2e-1 went IN_PROGRESS then ended COMPLETED", "IN_PROGRESS" in st and st[-1:] == ["COMPLETED"], repr(st))
up = {u["name"]: u for u in s.get("uploads", {}).get("e2e-1", [])}
want = {"line-count.txt": b"3\n", "notes-seen.md": b"# notes for e2e\n",
        "install-ran.txt": b"install-for-e2e\n", "exclude.txt": b"excluded\n"}
for name, body in want.items():
    u = up.get(name)
    check(f"artifact {name} arrived with the expected content",
          u is not None and u.get("sha256") == hashlib.sha256(body).hexdigest(), repr(u))
lines = "\n".join(l.get("line", "") for l in s.get("logs", {}).get("e2e-1", []))
check("the task's output reached keruta-api as logs", "e2e task e2e-1 ran: podman end to end" in lines, lines[-400:])
st = [b.get("status") for b in s.get("statuses", {}).get("e2e-fail", [])]
check("task e2e-fail went IN_PROGRESS then ended FAILED", "IN_PROGRESS" in st and st[-1:] == ["FAILED"], repr(st))
PY
while read -r res what; do
	case $res in ok) ok "$what" ;; *) ko "$what" ;; esac
done < "$tmp/checks.out"
finish
