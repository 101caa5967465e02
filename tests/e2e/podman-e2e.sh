#!/bin/sh
# End to end with a real container runtime: the Jobs that `keruta-agent
# render` prints for tasks, played by `podman kube play` as Pods with the
# agent image, cloning from a git daemon and reporting to the reference
# keruta-api server, both on 127.0.0.1.  The pods use hostNetwork: true and
# reach nothing but 127.0.0.1.
#
#   make e2e-podman        (in a build tree: rebuilds the image from it, then runs this)
#   tests/e2e/podman-e2e.sh   (uses the existing image as is; builds it only when missing)
#
# Env: KR_SRCDIR, KR_BUILDDIR (default: this checkout, in-tree build);
#      KERUTA_E2E_IMAGE (default localhost/keruta-agent:latest; built with
#      deploy/image/build-image.sh when missing); KERUTA_E2E_KEEP=1 keeps the
#      temp dir.  Needs root, podman + runc, python3, git.
#
# emptyDir layout (--work-volume emptydir: init container `keruta-agent
# init`, main container `keruta-agent run --final-status yes`, no cleanup
# Job): task e2e-1 must succeed, task e2e-fail (its script exits 3) must
# fail.  Checks: the containers exit 0 (1 for the failing task's main
# container); keruta-api saw IN_PROGRESS then COMPLETED (FAILED) for the
# task; the artifacts arrived with the expected content (they prove clone,
# git-exclude, install, document, execute and collect each ran); the task's
# output reached the API as logs.
#
# The seeds' PVC layout (the default --work-volume pvc), in order on one
# podman named volume: a parent task's PersistentVolumeClaim and Job (init +
# run --final-status no), then its cleanup Job (`keruta-agent cleanup
# --source-pod`, rendered with --objects cleanup); a child task rendered
# with the parent's id (its Job mounts git-repo-pvc-{parentId}: init, run,
# then its cleanup Job); then the parent's cleanup Job played again (a Job
# retry: the same spec, a new pod).  Checks: every container exits 0; the
# claim became the named volume every later pod mounts; each cleanup Job
# confirmed it mounted its source pod's volume; no final status before the
# parent's cleanup Job; per task exactly one final status (COMPLETED),
# never changed afterwards (the child and the retry add no status to the
# parent); each artifact uploaded exactly once and only under its own task,
# with that task's content (the child's hold nothing of the parent's: its
# own id, only its own document; the parent's files readable, the
# checkout inherited); `keruta-agent log` and `artifact` from the child's
# script reach keruta-api.
#
# Everywhere: the token is in no container log, rendered manifest, log line
# or status sent to keruta-api, nor in any uploaded artifact (the PVC tasks
# upload their script's environment and the agent's /proc environ).
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
	# Every pod and volume of this run has "$run-" in its name (task ids
	# $run-parent and $run-child, pods keruta-job-$run-ok, ...); the dash
	# keeps another run's kre2e${$}N out of the match.
	for p in $(podman pod ps -q --filter "name=$run-" 2>/dev/null); do podman pod rm -f "$p" > /dev/null 2>&1; done
	for v in $(podman volume ls -q --filter "name=$run-" 2>/dev/null); do podman volume rm -f "$v" > /dev/null 2>&1; done
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

# The PVC layout's tasks: ids unique to this run, since podman volumes
# (git-repo-pvc-{id}) are per host.
parent=$run-parent child=$run-child
seed=$(python3 - "git://127.0.0.1:$gitport/repo.git" "$parent" "$child" <<'PY'
import json, sys
url, parent, child = sys.argv[1:4]
execute = """#!/bin/sh
set -e
mkdir -p .keruta/doc
wc -l < README | tr -d ' ' > .keruta/doc/line-count.txt
cp .keruta/documents/notes.md .keruta/doc/notes-seen.md
cp installed-marker .keruta/doc/install-ran.txt
grep -qx '/.keruta' .git/info/exclude && echo excluded > .keruta/doc/exclude.txt
echo "e2e task $KERUTA_TASK_ID ran: $KERUTA_TASK_TITLE"
"""
# Both PVC tasks leave task-id.txt, documents-seen.txt and env.txt (the
# script's environment and the agent's, which must hold no token): the same
# names on one volume, each task's own content.
common = """#!/bin/sh
set -e
mkdir -p .keruta/doc
echo "$KERUTA_TASK_ID" > .keruta/doc/task-id.txt
ls .keruta/documents > .keruta/doc/documents-seen.txt
{ env; tr '\\0' '\\n' < /proc/$PPID/environ 2>/dev/null || :; } > .keruta/doc/env.txt
"""
parent_script = common + """wc -l < README | tr -d ' ' > .keruta/doc/line-count.txt
echo "pvc task $KERUTA_TASK_ID ran"
"""
child_script = common + """if [ -s ".keruta/tasks/$KERUTA_PARENT_TASK_ID/doc/task-id.txt" ]; then echo yes; else echo no; fi > .keruta/doc/parent-readable.txt
if [ -s README ] && [ -d .git ]; then echo yes; else echo no; fi > .keruta/doc/checkout-inherited.txt
echo "handed over by $KERUTA_TASK_ID" > /tmp/handed.txt
keruta-agent artifact /tmp/handed.txt
keruta-agent log INFO "child $KERUTA_TASK_ID logs through the agent"
echo "pvc child task $KERUTA_TASK_ID ran"
"""
print(json.dumps({
    "tasks": [{"id": "e2e-1", "title": "podman end to end", "description": "one task, two containers",
               "priority": 1, "status": "PENDING", "createdAt": "2026-01-01T00:00:00Z",
               "updatedAt": "2026-01-01T00:00:00Z", "repositoryId": "r1", "documentIds": ["doc-1"]},
              {"id": "e2e-fail", "title": "a failing task", "repositoryId": "r1",
               "documentIds": ["doc-1"]},
              {"id": parent, "title": "a parent task on a PVC", "repositoryId": "r1",
               "documentIds": ["doc-1"], "status": "PENDING"},
              {"id": child, "title": "its child task", "parentTaskId": parent, "repositoryId": "r1",
               "documentIds": ["doc-2"], "status": "PENDING"}],
    "repositories": [{"id": "r1", "url": url, "ref": "main"}],
    "installScripts": {"r1": "#!/bin/sh\necho install-for-e2e > installed-marker\n"},
    "scripts": {"e2e-1": {"content": execute, "language": "sh"},
                "e2e-fail": {"content": "#!/bin/sh\necho about to fail\nexit 3\n"},
                parent: {"content": parent_script, "language": "sh"},
                child: {"content": child_script, "language": "sh"}},
    "documents": {"doc-1": {"name": "notes.md", "content": "# notes for e2e\n"},
                  "doc-2": {"name": "child-notes.md", "content": "# the child's notes\n"}},
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

agent=$build/keruta-agent
launcher=${KERUTA_LAUNCHER_MODULE:-$build/.libs/launcher.so}
# render OUT TASK_ID [RENDER OPTION...]: what `keruta-agent render` prints
render() {
	out=$1 id=$2
	shift 2
	KERUTA_API_TOKEN=$token KERUTA_LAUNCHER_MODULE=$launcher "$agent" render --task-id "$id" \
		--api-url "$api" --image "$image" --image-pull-policy Never \
		--memory-limit 512Mi --log-format text "$@" > "$out" 2> "$out.err" ||
		{ ko "$id: keruta-agent render $* failed: $(cat "$out.err")"; return 1; }
	if grep -qF "$token" "$out"; then ko "$id: the API token appears in the rendered manifests"; fi
}

# play POD LABEL RENDERED CONTAINER:EXIT...: the rendered manifests
# (tests/e2e/job-to-pod.py: the Job as a Pod named POD, since podman 4.3
# runs no Jobs; a claim as is) played by `podman kube play`; then each
# CONTAINER of the pod must have exited EXIT, without the token in its log.
play() {
	pod=$1 label=$2 job=$3
	shift 3
	python3 "$src/tests/e2e/job-to-pod.py" "$job" "$pod" "api-token-$run" "$tmp/token" \
		> "$tmp/pod-$pod.yaml" 2> "$tmp/pod-$pod.err" ||
		{ ko "$label: job-to-pod.py: $(cat "$tmp/pod-$pod.err")"; return 0; }
	rc=0
	# --build=false and cwd $tmp: kube play would otherwise try to build the
	# image from a directory named like it (./keruta-agent in a build tree).
	(cd "$tmp" && timeout 180 podman kube play --build=false "$tmp/pod-$pod.yaml") > "$tmp/play-$pod.out" 2> "$tmp/play-$pod.err" || rc=$?
	grep -v 'failed to connect to syslog' "$tmp/play-$pod.err" >&2
	for c in $(podman ps -a --filter "pod=$pod" --format '{{.Names}}' | grep -v -- '-infra$'); do
		timeout 180 podman wait "$c" > /dev/null 2>&1
	done
	[ $rc -eq 0 ] && ok "$label: podman kube play started pod $pod" || ko "$label: podman kube play exited $rc"
	for c in "$@"; do
		want=${c##*:} c=$pod-${c%:*}
		st=$(podman inspect "$c" --format '{{.State.Status}} {{.State.ExitCode}}' 2>/dev/null || echo missing)
		podman logs "$c" > "$tmp/$c.log" 2>&1
		if [ "$st" = "exited $want" ]; then ok "$label: container $c exited $want"
		else ko "$label: container $c: $st, expected exited $want"; sed "s/^/  [$c] /" "$tmp/$c.log" | tail -n 40; fi
		if grep -qF "$token" "$tmp/$c.log"; then ko "$label: the API token appears in $c's log"; fi
	done
}
# mounts CONTAINER: the named volumes it mounts
mounts() { podman inspect "$1" --format '{{range .Mounts}}{{.Name}} {{end}}' 2>/dev/null; }
# volume_is LABEL CONTAINER VOLUME
volume_is() {
	case " $(mounts "$2")" in
	*" $3 "*) ok "$1: $2 mounts the named volume $3" ;;
	*) ko "$1: $2 mounts [$(mounts "$2")], not the named volume $3" ;;
	esac
}
# source_checked LABEL CLEANUP_POD SOURCE_POD: the cleanup Job's own check
# (--source-pod) found the source pod's record on the volume it mounted
source_checked() {
	if grep -qF "is the one source pod $3 used" "$tmp/$2-cleanup-container.log"; then
		ok "$1: $2 confirmed it mounted the volume of source pod $3"
	else ko "$1: $2 did not confirm the volume of source pod $3"; fi
}

# --- emptyDir layout: init + main, no cleanup Job
render "$tmp/job-ok.yaml" e2e-1 --work-volume emptydir &&
	play "keruta-job-$run-ok" e2e-1 "$tmp/job-ok.yaml" keruta-agent-init:0 main:0
# The same pod for a task whose script exits 3: the agent exits 1 (task failed).
render "$tmp/job-fail.yaml" e2e-fail --work-volume emptydir &&
	play "keruta-job-$run-fail" e2e-fail "$tmp/job-fail.yaml" keruta-agent-init:0 main:1

# --- the seeds' PVC layout on one named volume.  Pod names: a cluster
# names a Job's pods JOB-xxxxx; here JOB-0, and JOB-1 for the retry.
vol=git-repo-pvc-$parent
ppod=keruta-job-$parent-0 cpod=keruta-job-$child-0
# 1. the parent: PersistentVolumeClaim + Job, then its cleanup Job
if render "$tmp/job-parent.yaml" "$parent" --work-volume pvc; then
	grep -q '^kind: "PersistentVolumeClaim"' "$tmp/job-parent.yaml" &&
		ok "$parent: render printed the PersistentVolumeClaim $vol with the Job" ||
		ko "$parent: render printed no PersistentVolumeClaim"
	play "$ppod" "$parent" "$tmp/job-parent.yaml" keruta-agent-init:0 main:0
	podman volume exists "$vol" && ok "$parent: kube play made the claim the named volume $vol" ||
		ko "$parent: kube play made no named volume $vol"
	volume_is "$parent" "$ppod-main" "$vol"
fi
control state > "$tmp/state-1.json" || bail "cannot read the API server's state"
if render "$tmp/cleanup-parent.yaml" "$parent" --work-volume pvc --objects cleanup --source-pod "$ppod"; then
	play "cleanup-job-for-task-$parent-0" "$parent cleanup" "$tmp/cleanup-parent.yaml" cleanup-container:0
	volume_is "$parent cleanup" "cleanup-job-for-task-$parent-0-cleanup-container" "$vol"
	source_checked "$parent cleanup" "cleanup-job-for-task-$parent-0" "$ppod"
fi
control state > "$tmp/state-2.json" || bail "cannot read the API server's state"
# 2. the child, on its parent's volume (ReadWriteOnce: pinned to this node)
node=$(hostname)
if render "$tmp/job-child.yaml" "$child" --node-name "$node"; then
	grep -q '^kind: "PersistentVolumeClaim"' "$tmp/job-child.yaml" &&
		ko "$child: render printed a PersistentVolumeClaim for a child task" ||
		ok "$child: render printed no claim of its own for the child task"
	grep -q "claimName: \"$vol\"" "$tmp/job-child.yaml" &&
		ok "$child: the child's Job claims its parent's $vol" || ko "$child: the child's Job does not claim $vol"
	play "$cpod" "$child" "$tmp/job-child.yaml" keruta-agent-init:0 main:0
	volume_is "$child" "$cpod-main" "$vol"
fi
if render "$tmp/cleanup-child.yaml" "$child" --objects cleanup --source-pod "$cpod" --node-name "$node"; then
	play "cleanup-job-for-task-$child-0" "$child cleanup" "$tmp/cleanup-child.yaml" cleanup-container:0
	volume_is "$child cleanup" "cleanup-job-for-task-$child-0-cleanup-container" "$vol"
	source_checked "$child cleanup" "cleanup-job-for-task-$child-0" "$cpod"
fi
# 3. the parent's cleanup Job again: a retry is the same Job spec in a new pod
[ -f "$tmp/cleanup-parent.yaml" ] &&
	play "cleanup-job-for-task-$parent-1" "$parent cleanup retry" "$tmp/cleanup-parent.yaml" cleanup-container:0

# --- every rendered manifest and every Pod played is a real Kubernetes
# object, not only something podman accepts: one run of the validator for
# all of them (node is slow to start), skipped without node and npm
schemas=${KERUTA_K8S_SCHEMAS:-$src/tests/reference/k8s-json-schema-v1.32.2-strict}
if nodemods=$(sh "$src/tests/schema/node-modules.sh"); then
	vrc=0 fail0=$fail
	env NODE_PATH="$nodemods" node "$src/tests/e2e/schema/k8s-validate.js" --schemas "$schemas" \
		"$tmp"/job-*.yaml "$tmp"/cleanup-*.yaml "$tmp"/pod-*.yaml > "$tmp/validate.out" 2>&1 || vrc=$?
	while IFS= read -r line; do
		case $line in
		*": OK") line=${line%: OK} && ok "valid against the strict v1.32 schemas: ${line#"$tmp/"}" ;;
		*": INVALID") line=${line%: INVALID} && ko "not valid Kubernetes: ${line#"$tmp/"}" ;;
		"  "*) echo "$line" ;;
		*) ko "schema validation: $line" ;;
		esac
	done < "$tmp/validate.out"
	[ $vrc -eq 0 ] || [ "$fail" -gt "$fail0" ] || ko "the schema validator exited $vrc"
else
	echo "SKIP: schema validation of the manifests and pods: $nodemods"
fi

# --- what keruta-api saw
control state > "$tmp/state.json" || bail "cannot read the API server's state"
KR_E2E_TOKEN=$token python3 - "$tmp" "$parent" "$child" > "$tmp/checks.out" 2> "$tmp/checks.err" <<'PY' || ko "the checks of keruta-api's state stopped: $(tail -n 3 "$tmp/checks.err")"
import json, os, sys, hashlib
tmp, parent, child = sys.argv[1:4]
token = os.environ["KR_E2E_TOKEN"]
s = json.load(open(os.path.join(tmp, "state.json")))
after_job = json.load(open(os.path.join(tmp, "state-1.json")))
after_cleanup = json.load(open(os.path.join(tmp, "state-2.json")))
def check(what, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail))
def statuses(state, task):
    return [b.get("status") for b in state.get("statuses", {}).get(task, [])]
def uploads(state, task):
    return state.get("uploads", {}).get(task, [])
def sha(body):
    return hashlib.sha256(body).hexdigest()

# emptyDir layout
st = statuses(s, "e2e-1")
check("task e2e-1 went IN_PROGRESS then ended COMPLETED", "IN_PROGRESS" in st and st[-1:] == ["COMPLETED"], repr(st))
up = {u["name"]: u for u in uploads(s, "e2e-1")}
want = {"line-count.txt": b"3\n", "notes-seen.md": b"# notes for e2e\n",
        "install-ran.txt": b"install-for-e2e\n", "exclude.txt": b"excluded\n"}
for name, body in want.items():
    u = up.get(name)
    check(f"artifact {name} arrived with the expected content",
          u is not None and u.get("sha256") == sha(body), repr(u))
lines = "\n".join(l.get("line", "") for l in s.get("logs", {}).get("e2e-1", []))
check("the task's output reached keruta-api as logs", "e2e task e2e-1 ran: podman end to end" in lines, lines[-400:])
st = statuses(s, "e2e-fail")
check("task e2e-fail went IN_PROGRESS then ended FAILED", "IN_PROGRESS" in st and st[-1:] == ["FAILED"], repr(st))

# the PVC layout
FINAL = ("COMPLETED", "FAILED")
st = statuses(after_job, parent)
check(f"{parent}: IN_PROGRESS and no final status after its Job (run --final-status no)",
      "IN_PROGRESS" in st and not any(x in FINAL for x in st), repr(st))
for task in (parent, child):
    st = statuses(s, task)
    final = [x for x in st if x in FINAL]
    check(f"{task}: exactly one final status, COMPLETED, and nothing after it",
          final == ["COMPLETED"] and st[-1:] == ["COMPLETED"], repr(st))
check(f"{parent}: its statuses did not change after its cleanup Job (child task, cleanup retry)",
      statuses(s, parent) == statuses(after_cleanup, parent) and statuses(after_cleanup, parent)[-1:] == ["COMPLETED"],
      f"{statuses(after_cleanup, parent)!r} then {statuses(s, parent)!r}")
check(f"{parent}: its uploads did not change after its cleanup Job (child task, cleanup retry)",
      uploads(s, parent) == uploads(after_cleanup, parent), repr([u["name"] for u in uploads(s, parent)]))

want = {parent: {"task-id.txt": (parent + "\n").encode(), "documents-seen.txt": b"notes.md\n",
                 "line-count.txt": b"3\n", "env.txt": None},
        child: {"task-id.txt": (child + "\n").encode(), "documents-seen.txt": b"child-notes.md\n",
                "parent-readable.txt": b"yes\n", "checkout-inherited.txt": b"yes\n",
                "handed.txt": ("handed over by %s\n" % child).encode(), "env.txt": None}}
for task, files in want.items():
    names = sorted(u["name"] for u in uploads(s, task))
    check(f"{task}: each of its artifacts uploaded exactly once, nothing else",
          names == sorted(files), f"uploaded {names}, want {sorted(files)}")
    byname = {u["name"]: u for u in uploads(s, task)}
    for name, body in files.items():
        u = byname.get(name)
        if body is not None:
            check(f"{task}: artifact {name} holds this task's own content",
                  u is not None and u.get("sha256") == sha(body), repr(u))
    env = byname.get("env.txt")
    envtext = open(env["path"], "rb").read().decode("utf-8", "replace") if env else ""
    check(f"{task}: its script ran with its own task id", "KERUTA_TASK_ID=%s\n" % task in envtext, envtext[:300])
lines = "\n".join(l.get("line", "") for l in s.get("logs", {}).get(child, []))
check(f"{child}: keruta-agent log from the script reached keruta-api",
      f"child {child} logs through the agent" in lines, lines[-400:])
check(f"{child}: the script's output reached keruta-api as logs", f"pvc child task {child} ran" in lines, lines[-400:])

# the token: in no upload, log line or status body
leaks = [u["path"] for ups in s.get("uploads", {}).values() for u in ups
         if token.encode() in open(u["path"], "rb").read()]
check("the API token is in no uploaded artifact", not leaks, repr(leaks))
check("the API token is in no log line or status keruta-api received",
      token not in json.dumps([s.get("logs"), s.get("statuses")]))
PY
while read -r res what; do
	case $res in ok) ok "$what" ;; *) ko "$what" ;; esac
done < "$tmp/checks.out"
finish
