#!/usr/bin/env python3
"""Kubernetes API test server for the keruta-agent launcher tests: a test peer, not a product.
Standard library only.  Python >= 3.9.

CLI: kube_api_server.py [--port 0] [--port-file FILE] [--token T] [--idle-exit SECONDS(300; 0=never)]
       [--parent-pid PID] [--step SECONDS(0.05)] [--history N(100000)] [--verbose]
       [--tls-cert C --tls-key K [--tls-client-ca CA]]
  With --tls-cert the API and the control endpoints are served over TLS only; with --tls-client-ca a
  client certificate signed by CA authenticates API requests as the token does.
  Listens on 127.0.0.1; writes the port to FILE (FILE.tmp + rename) once listening.  Exits after
  --idle-exit seconds with no request in flight (an open watch counts), on SIGTERM/INT/HUP, and when
  its parent dies (ppid changes; --parent-pid PID watches PID instead, 0 disables).  With --token,
  API requests need "Authorization: Bearer T" (else 401 Status).

API (namespaced; the conventions of the real API server, as far as the launcher uses them)
  /api/v1/namespaces/{ns}/persistentvolumeclaims[/{name}]   /api/v1/namespaces/{ns}/pods[/{name}]
  /apis/batch/v1/namespaces/{ns}/jobs[/{name}]
  GET list (?labelSelector=a=b,c!=d,e  &limit=N&continue=TOKEN pages (opaque, by key)  ?watch=1&resourceVersion=RV&timeoutSeconds=N
  &allowWatchBookmarks=true), GET one, POST create (201; 409 AlreadyExists; 422 without
  metadata.name), DELETE (?propagationPolicy= or a DeleteOptions body; Background/Foreground also
  delete the Job's pods), PATCH (application/merge-patch+json only, else 415).
  Errors are Status objects {"kind":"Status","status":"Failure","reason","message","code"}.
  Watches: chunked stream of {"type":"ADDED|MODIFIED|DELETED|BOOKMARK","object":{...}} lines; an
  expired resourceVersion gives one {"type":"ERROR","object":Status 410 Expired} event, as the real
  server does.  Without resourceVersion a watch starts with ADDED events for what exists.

JOB HISTORIES.  Creating a Job starts a scripted history for it, one step every --step seconds:
  the controller creates a pod (labels job-name, controller-uid + the template's), the scheduler puts
  it on a node, containers run, the Job gets its conditions.  History per task (annotation
  keruta.io/task-id), chosen with POST /_control/scenario:
    success      pod Succeeded, the agent's termination message; Job Complete
    failure      main container exits 1 with the agent's JSON termination message; Job Failed
    init_failure the init container exits 1; Job Failed
    oom          main container OOMKilled (137); Job Failed
    crashloop    main container in CrashLoopBackOff, restartCount growing, forever
    imagepull    ErrImagePull / ImagePullBackOff alternating, forever
    configerror  CreateContainerConfigError, forever
    wait         like success, but holds in Running until POST /_control/release
    drop         like success; while Running, every watch is closed and the event history expired
                 (a client resuming from its old resourceVersion gets 410 and must re-list)
    silent       the pod stays Pending
    deleted      while Running, the Job is deleted (by someone else: kubectl delete job)
    oom_restarted the main container was OOMKilled and restarted: it runs again, only its
                 lastState tells; then the Job fails (BackoffLimitExceeded)
  Cleanup Jobs (label keruta.io/role=cleanup) play "cleanup": success (the agent reports
  COMPLETED), cleanup_failure (exits 1 before reporting), late_failure (reports COMPLETED, then
  exits 1), cleanup_reports_failure (reports FAILED, then exits 1).
  The agent's end: with scenario "report_url" (keruta-api base, e.g. http://127.0.0.1:P/api/v1;
  "report_token" optional) an agent that reports PUTs its terminal status there first, as the real
  one does: the failing main container, the init failure, the cleanup agent, and the succeeding
  main container only with "main_reports": true (no cleanup Job follows).  With "init_message": true
  a succeeding init container leaves its termination message too, as the real one does.  Its termination message
  is {"taskId", "reported": STATUS|null, "stage", "reason", "exitCode"}, or with "message_format":
  "legacy" the older {"status", "agentExitCode", ...}.

CONTROL (/_control/..., JSON, no token, never recorded)
  GET  health                  {"ok":true,"port":N,"rv":N}
  GET  requests[?since=N][&bodies=0]  [{"seq","method","path","query","content_type","body"?,"status"}]
                               (bodies=0: without "body"/"body_raw", for a count of 10,000 tasks' requests)
  GET  objects[?kind=jobs]     {"jobs":[...],"pods":[...],"persistentvolumeclaims":[...]}
  POST scenario {"default":"success","tasks":{"id":"failure"},"cleanup":"success",
                 "node":"node-1","nodes":{"id":"node-7"}}   merged
  POST release  {"task":"id"} | {"job":"name"} | {} (all)
  POST drop     {"expire":true}   close every watch; with expire, old resourceVersions get 410
  POST inject   {"lines":["raw text", ...]}  sent as they are, one line each, on every open watch
                (malformed events for the launcher's robustness tests)
  POST lag      {"pods":S, "jobs":S}   watches of that kind deliver each event S seconds after it
                happened (one watch behind another, as two watches of a real server can be)
  POST down     {"seconds":S}   an outage: open watches are closed, and for S seconds every API
                request's connection is closed without an answer (recorded with status "dropped")
  POST seed     {"objects":[{apiVersion, kind, metadata{name,namespace}, ...}]}  stored as if created
  POST fault    {"method":"POST","path_regex":"/jobs$","query_regex":"","code":500,"times":1}
                (times -1: every matching request; query_regex is searched in the raw query,
                e.g. "watch=1" for the watches only; "stall":S instead of a code: the request is
                answered as usual after S seconds; "race":true instead of a code: a POST's own object is
                created first, as if another client's identical request had just come in (a Job starts
                its history), so the request is answered 409 AlreadyExists; "skip":N lets the first N
                matching requests through)
  POST reset    everything back to empty
"""
import argparse
import base64
import bisect
import copy
import json
import os
import random
import re
import signal
import socket
import ssl
import string
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

KINDS = {
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim", "/api/v1"),
    "pods": ("v1", "Pod", "/api/v1"),
    "jobs": ("batch/v1", "Job", "/apis/batch/v1"),
}
PATH_RE = re.compile(r"^(/api/v1|/apis/batch/v1)/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?$")
HTTP_REASON = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 409: "AlreadyExists", 410: "Expired", 415: "UnsupportedMediaType",
               422: "Invalid", 500: "InternalError"}


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status_obj(code, message, reason=None, name=None, kind=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": message, "reason": reason or HTTP_REASON.get(code, "Unknown"), "code": code}
    if name is not None:
        st["details"] = {"name": name, "kind": kind}
        if kind == "jobs":
            st["details"]["group"] = "batch"
    return st


def resource(kind):
    """The resource as the real server names it in messages: jobs.batch, pods."""
    return kind + ".batch" if kind == "jobs" else kind


def encode(obj):
    """An object as the server sends it.  Stored objects are serialized while the state lock is
    held instead of deep-copied: json.dumps is several times cheaper than copy.deepcopy, and at
    10,000 Jobs the copies were most of this server's CPU."""
    return json.dumps(obj)


def new_uid():
    # uuid4() reads os.urandom, a system call per object; test uids need no cryptographic quality
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def parse_selector(sel):
    """[(key, op, value)] for a=b, a==b, a!=b, a, !a.  Raises ValueError."""
    out = []
    for part in filter(None, (sel or "").split(",")):
        part = part.strip()
        if "!=" in part:
            k, v = part.split("!=", 1); out.append((k, "!=", v))
        elif "==" in part:
            k, v = part.split("==", 1); out.append((k, "=", v))
        elif "=" in part:
            k, v = part.split("=", 1); out.append((k, "=", v))
        elif part.startswith("!"):
            out.append((part[1:], "!", None))
        elif re.match(r"^[A-Za-z0-9./_-]+$", part):
            out.append((part, "exists", None))
        else:
            raise ValueError(part)
    return out


def matches(sel, labels):
    labels = labels or {}
    for k, op, v in sel:
        if op == "=" and labels.get(k) != v: return False
        if op == "!=" and labels.get(k) == v: return False
        if op == "exists" and k not in labels: return False
        if op == "!" and k in labels: return False
    return True


class State:
    def __init__(self, history):
        self.cond = threading.Condition()
        self.history_max = history
        self.reset()

    def reset(self):
        with self.cond:
            self.rv = 1000
            self.objects = {}                      # (kind, ns, name) -> obj
            self.events = []                       # (rv, kind, ns, type, labels, JSON text, monotonic time)
            self.event_rvs = []                    # their rvs, for bisect
            self.compacted = 0                     # rv <= this is gone (410)
            self.injected = []                     # raw lines for every open watch
            self.down_until = 0.0                  # API connections closed until (monotonic)
            self.lag = {}                          # kind -> seconds its watches deliver late
            self.drop_gen = 0
            self.requests = []
            self.scenario = {"default": "success", "tasks": {}, "cleanup": "success",
                             "node": "node-1", "nodes": {}}
            self.released = set()
            self.release_all = False
            self.faults = []
            self.cond.notify_all()

    def bump(self):
        self.rv += 1
        return str(self.rv)

    def emit(self, kind, ns, etype, obj):
        """Record an event; caller holds cond.  Returns the object's JSON text as of this event."""
        rv = int(obj["metadata"]["resourceVersion"])
        text = encode(obj)
        self.events.append((rv, kind, ns, etype, dict(obj["metadata"].get("labels") or {}), text,
                            time.monotonic()))
        self.event_rvs.append(rv)
        if len(self.events) > self.history_max + self.history_max // 10:
            cut = len(self.events) - self.history_max
            self.compacted = self.event_rvs[cut - 1]
            del self.events[:cut], self.event_rvs[:cut]
        self.cond.notify_all()
        return text

    def events_after(self, rv):
        """Events newer than rv; caller holds cond.  Bisect: a 10,000-task run keeps 100,000."""
        return self.events[bisect.bisect_right(self.event_rvs, rv):]

    def is_down(self):
        return time.monotonic() < self.down_until

    def put(self, kind, ns, obj, etype):
        """Store obj (now owned by the state); returns its JSON text."""
        with self.cond:
            obj["metadata"]["resourceVersion"] = self.bump()
            self.objects[(kind, ns, obj["metadata"]["name"])] = obj
            return self.emit(kind, ns, etype, obj)

    def delete(self, kind, ns, name):
        with self.cond:
            obj = self.objects.pop((kind, ns, name), None)
            if obj is None:
                return None
            obj["metadata"]["resourceVersion"] = self.bump()
            self.emit(kind, ns, "DELETED", obj)
            return obj

    def get_text(self, kind, ns, name):
        """The object's JSON text, or None."""
        with self.cond:
            o = self.objects.get((kind, ns, name))
            return encode(o) if o is not None else None

    def exists(self, kind, ns, name):
        with self.cond:
            return (kind, ns, name) in self.objects

    def modify(self, kind, ns, name, fn):
        """Apply fn(obj) to a live object and emit MODIFIED: its new JSON text, or None if it is gone."""
        with self.cond:
            obj = self.objects.get((kind, ns, name))
            if obj is None:
                return None
            fn(obj)
            obj["metadata"]["resourceVersion"] = self.bump()
            return self.emit(kind, ns, "MODIFIED", obj)


# --------------------------------------------------------------------------- histories

def agent_message(status, code=0, stage=None, reason=None, exit_code=None):
    """The older termination message: the status the agent meant to send."""
    m = {"status": status, "agentExitCode": code}
    if exit_code is not None: m["exitCode"] = exit_code
    if stage: m["stage"] = stage
    if reason: m["reason"] = reason
    return json.dumps(m)


class Player:
    """Plays one Job's history in its own thread."""

    def __init__(self, server, ns, job):
        self.srv, self.st, self.ns = server, server.state, ns
        self.job = job["metadata"]["name"]
        md = job["metadata"]
        self.task = (md.get("annotations") or {}).get("keruta.io/task-id", "")
        role = self.role = (md.get("labels") or {}).get("keruta.io/role")
        sc = self.st.scenario
        self.history = sc["cleanup"] if role == "cleanup" else sc["tasks"].get(self.task, sc["default"])
        self.node = sc["nodes"].get(self.task, sc["node"])
        tmpl = job["spec"]["template"]
        self.uid = md["uid"]
        self.pod = f"{self.job}-{''.join(random.choices(string.ascii_lowercase + string.digits, k=5))}"
        self.tmpl = tmpl
        threading.Thread(target=self.run, daemon=True).start()

    def agent(self, status, code=0, stage=None, reason=None, exit_code=None, reports=True):
        """Play the agent's end: send the terminal status to keruta-api (scenario report_url) when
        this agent reports, then the termination message saying whether it did."""
        sc = self.st.scenario
        terminal = status in ("COMPLETED", "FAILED")
        reported = None
        if terminal and reports and sc.get("report_url"):
            body = {"status": status}
            if code:
                body["message"] = f"stage {stage or '?'} failed: {reason or 'no reason given'}"
            req = urllib.request.Request(f"{sc['report_url']}/tasks/{self.task}/status", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"}, method="PUT")
            if sc.get("report_token"):
                req.add_header("Authorization", f"Bearer {sc['report_token']}")
            try:
                urllib.request.urlopen(req, timeout=10).read()
                reported = status
            except (OSError, ValueError):
                reported = None
        if sc.get("message_format") == "legacy":
            return agent_message(status, code, stage, reason, exit_code)
        m = {"taskId": self.task, "reported": reported}
        if exit_code is not None: m["exitCode"] = exit_code
        if stage: m["stage"] = stage
        if reason: m["reason"] = reason
        return json.dumps(m)

    def sleep(self, n=1):
        time.sleep(self.srv.step * n)

    def alive(self):
        return self.st.exists("jobs", self.ns, self.job)

    def pod_set(self, fn):
        return self.st.modify("pods", self.ns, self.pod, fn)

    def job_set(self, fn):
        return self.st.modify("jobs", self.ns, self.job, fn)

    def cstat(self, name, state, restarts=0, ready=False):
        return {"name": name, "state": state, "ready": ready, "restartCount": restarts,
                "image": "keruta-agent:latest", "imageID": "", "started": "running" in state}

    def make_pod(self):
        labels = dict((self.tmpl.get("metadata") or {}).get("labels") or {})
        labels.update({"job-name": self.job, "batch.kubernetes.io/job-name": self.job,
                       "controller-uid": self.uid, "batch.kubernetes.io/controller-uid": self.uid})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": self.pod, "namespace": self.ns, "uid": new_uid(),
                            "labels": labels,
                            "annotations": dict((self.tmpl.get("metadata") or {}).get("annotations") or {}),
                            "creationTimestamp": now_iso(),
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": self.job,
                                                 "uid": self.uid, "controller": True}]},
               "spec": json.loads(encode(self.tmpl.get("spec") or {})),
               "status": {"phase": "Pending", "qosClass": "Burstable"}}
        self.st.put("pods", self.ns, pod, "ADDED")
        self.job_set(lambda j: j["status"].update({"active": 1, "startTime": now_iso()}))

    def containers(self, key):
        return [c["name"] for c in self.tmpl.get("spec", {}).get(key) or []]

    def schedule(self):
        def f(p):
            p["spec"]["nodeName"] = self.node
            p["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
            p["status"]["initContainerStatuses"] = [
                self.cstat(n, {"waiting": {"reason": "PodInitializing"}}) for n in self.containers("initContainers")]
            p["status"]["containerStatuses"] = [
                self.cstat(n, {"waiting": {"reason": "PodInitializing"}}) for n in self.containers("containers")]
        self.pod_set(f)

    def init_done(self, exit_code=0, message=None):
        def f(p):
            term = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": now_iso(), "finishedAt": now_iso()}
            if message: term["message"] = message
            p["status"]["initContainerStatuses"] = [
                self.cstat(n, {"terminated": dict(term)}) for n in self.containers("initContainers")]
            if exit_code == 0:
                p["status"]["phase"] = "Running"
                p["status"]["containerStatuses"] = [
                    self.cstat(n, {"running": {"startedAt": now_iso()}}, ready=True) for n in self.containers("containers")]
            else:
                p["status"]["phase"] = "Failed"
        self.pod_set(f)

    def main_done(self, exit_code, reason, message):
        def f(p):
            term = {"exitCode": exit_code, "reason": reason, "startedAt": now_iso(), "finishedAt": now_iso()}
            if message: term["message"] = message
            p["status"]["containerStatuses"] = [
                self.cstat(n, {"terminated": dict(term)}) for n in self.containers("containers")]
            p["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        self.pod_set(f)

    def job_finished(self, ok, reason=None, message=None):
        def f(j):
            s = j["status"]
            s.pop("active", None)
            if ok:
                s["succeeded"] = 1
                s["completionTime"] = now_iso()
                s["conditions"] = [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now_iso()},
                                   {"type": "Complete", "status": "True", "lastTransitionTime": now_iso()}]
            else:
                s["failed"] = 1
                s["conditions"] = [{"type": "FailureTarget", "status": "True", "reason": reason, "message": message},
                                   {"type": "Failed", "status": "True", "reason": reason, "message": message,
                                    "lastTransitionTime": now_iso()}]
        self.job_set(f)

    def forever(self, fn):
        n = 0
        while self.alive():
            n += 1
            if not self.pod_set(lambda p: fn(p, n)):
                return
            self.sleep(2)

    def run(self):
        try:
            self.play()
        except Exception as e:  # a bug here must show in the server log, not kill the server
            sys.stderr.write(f"kubeapi: history {self.history} of {self.job}: {e!r}\n")

    def play(self):
        h = self.history
        self.sleep()
        if not self.alive(): return
        self.make_pod()
        self.sleep()
        if h == "silent": return
        if h == "imagepull":
            def f(p, n):
                p["spec"]["nodeName"] = self.node
                reason = "ErrImagePull" if n % 2 else "ImagePullBackOff"
                p["status"]["containerStatuses"] = [self.cstat(c, {"waiting": {
                    "reason": reason, "message": 'Back-off pulling image "keruta-agent:nope"'}})
                    for c in self.containers("containers")]
                p["status"]["initContainerStatuses"] = [self.cstat(c, {"waiting": {
                    "reason": reason, "message": 'Back-off pulling image "keruta-agent:nope"'}})
                    for c in self.containers("initContainers")]
            return self.forever(f)
        self.schedule()
        self.sleep()
        if h == "configerror":
            def f(p, n):
                p["status"]["initContainerStatuses"] = [self.cstat(c, {"waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": 'secret "keruta-api-token" not found'}}) for c in self.containers("initContainers")]
                p["status"]["containerStatuses"] = [self.cstat(c, {"waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": 'secret "keruta-api-token" not found'}}) for c in self.containers("containers")]
            return self.forever(f)
        if h == "init_failure":
            msg = self.agent("FAILED", 1, "clone", "cannot clone https://git.example/repo.git: not found")
            self.init_done(1, msg)
            self.sleep()
            return self.job_finished(False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        # the init agent writes its termination message too (scenario "init_message": true)
        self.init_done(0, self.agent("IN_PROGRESS", 0) if self.st.scenario.get("init_message") else None)
        self.sleep()
        if h == "crashloop":
            def f(p, n):
                p["status"]["phase"] = "Running"
                p["status"]["containerStatuses"] = [self.cstat(c, {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {10 * n}s restarting failed container={c}"}},
                    restarts=n) for c in self.containers("containers")]
            return self.forever(f)
        if h == "wait":
            while self.alive() and not (self.st.release_all or self.task in self.st.released
                                        or self.job in self.st.released):
                time.sleep(0.05)
            if not self.alive(): return
        if h == "drop":
            self.srv.drop_watches(expire=True)
            self.sleep(2)
        if h == "failure":
            self.main_done(1, "Error", self.agent("FAILED", 1, "execute", "script exited with status 3", 3))
            self.sleep()
            return self.job_finished(False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if h == "deleted":
            self.st.delete("jobs", self.ns, self.job)
            return
        if h == "oom_restarted":
            def f(p):
                p["status"]["containerStatuses"] = [dict(
                    self.cstat(n, {"running": {"startedAt": now_iso()}}, restarts=1, ready=True),
                    lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                              "startedAt": now_iso(), "finishedAt": now_iso()}})
                    for n in self.containers("containers")]
            self.pod_set(f)
            self.sleep()
            return self.job_finished(False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if h == "oom":
            self.main_done(137, "OOMKilled", None)
            self.sleep()
            return self.job_finished(False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if self.role == "cleanup":
            # success: the cleanup agent reports COMPLETED; cleanup_failure: it dies before
            # reporting; late_failure: it reports COMPLETED, then fails; cleanup_reports_failure:
            # it reports FAILED and fails
            ok = h == "success"
            msg = self.agent("FAILED" if h == "cleanup_reports_failure" else "COMPLETED", 0 if ok else 1,
                             None if ok else "cleanup",
                             None if ok else "upload failed", reports=h != "cleanup_failure")
        else:
            # the main container reports only when no cleanup Job follows (scenario main_reports)
            ok = h != "cleanup_failure"
            msg = self.agent("COMPLETED" if ok else "FAILED", 0 if ok else 1,
                             reports=bool(self.st.scenario.get("main_reports"))
                             or self.st.scenario.get("message_format") == "legacy")
        self.main_done(0 if ok else 1, "Completed" if ok else "Error", msg)
        self.sleep()
        self.job_finished(ok, None if ok else "BackoffLimitExceeded", None if ok else "failed")


# --------------------------------------------------------------------------- HTTP

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keruta-kubeapi/1"
    timeout = 120

    def setup(self):
        # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
        # client's delayed ACK of the headers, 40 ms on every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.ssl_ctx:
            # the handshake in the connection's thread, not in the accept loop
            self.request.settimeout(self.timeout)
            self.request = self.server.ssl_ctx.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.server.ssl_ctx:
                self.request.close()  # the server closes only the plain socket

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("kubeapi: %s\n" % (fmt % args))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = lambda self: self.dispatch()

    def send_json(self, code, obj, rec=None):
        self.send_text(code, json.dumps(obj), rec)

    def send_text(self, code, text, rec=None):
        data = text.encode()
        if rec is not None:
            rec["status"] = code
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def dispatch(self):
        srv = self.server
        srv.activity(+1)
        try:
            path, _, query = self.path.partition("?")
            if path.startswith("/_control/"):
                return self.control(path[len("/_control/"):], query)
            self.api(path, query)
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # a bug here: answer 500 so the client sees it, and log it
            import traceback
            traceback.print_exc()
            self.close_connection = True
            try:
                self.send_json(500, status_obj(500, f"kubeapi bug: {e!r}"))
            except OSError:
                pass
        finally:
            srv.activity(-1)

    def api(self, path, query):
        st, srv = self.server.state, self.server
        raw = self.body()
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        rec = {"method": self.command, "path": path, "query": query,
               "content_type": self.headers.get("Content-Type", ""), "time": time.time()}
        if raw:
            try:
                rec["body"] = json.loads(raw)
            except ValueError:
                rec["body_raw"] = raw.decode("utf-8", "replace")
        with st.cond:
            rec["seq"] = len(st.requests) + 1
            st.requests.append(rec)
            if st.is_down():
                rec["status"] = "dropped"
                self.close_connection = True
                return
            fault = None
            for f in st.faults:
                if f["times"] != 0 and f.get("method", self.command) == self.command and \
                        re.search(f.get("path_regex", ""), path) and \
                        re.search(f.get("query_regex", ""), query):
                    if f["skip"] > 0:  # let this many matching requests through first
                        f["skip"] -= 1
                        break
                    f["times"] -= 1
                    fault = f
                    break
        # a bearer token or (with --tls-client-ca) a client certificate, as the real server takes either
        by_cert = srv.ssl_ctx is not None and srv.client_ca and bool(self.request.getpeercert())
        if srv.token and self.headers.get("Authorization") != f"Bearer {srv.token}" and not by_cert:
            return self.send_json(401, status_obj(401, "Unauthorized"), rec)
        if fault and fault.get("stall"):
            time.sleep(fault["stall"])  # then answered as usual: a server too slow to wait for
        elif fault and fault.get("race") and self.command == "POST":
            pass  # create() makes the object twice
        elif fault:
            return self.send_json(fault.get("code", 500), status_obj(fault.get("code", 500), "injected fault"), rec)
        m = PATH_RE.match(path)
        if not m or m.group(3) not in KINDS or KINDS[m.group(3)][2] != m.group(1):
            return self.send_json(404, status_obj(404, f"the server could not find the requested resource ({path})"), rec)
        _, ns, kind, name = m.groups()
        api_version, kind_name, _ = KINDS[kind]
        if name is None and self.command == "GET":
            try:
                sel = parse_selector(q.get("labelSelector"))
            except ValueError as e:
                return self.send_json(400, status_obj(400, f"unable to parse requirement: {e}"), rec)
            if q.get("watch") in ("1", "true"):
                return self.watch(kind, ns, sel, q, rec)
            limit = int(q.get("limit") or 0)
            cont = q.get("continue") or ""
            md = {}
            with st.cond:
                keys = sorted(key for key, o in st.objects.items()
                              if key[0] == kind and key[1] == ns and matches(sel, o["metadata"].get("labels")))
                rv, after = str(st.rv), None
                if cont:  # opaque to clients, as the real one: the first page's rv and the last key sent
                    try:
                        tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                        rv, after = str(int(tok["rv"])), str(tok["start"])
                    except (ValueError, KeyError, TypeError):
                        return self.send_json(400, status_obj(400, f"continue key is not valid: {cont!r}"), rec)
                    if int(rv) < st.compacted:
                        return self.send_json(410, status_obj(
                            410, "The provided continue parameter is too old to display a consistent list "
                            "result. You can start a new list without the continue parameter.",
                            reason="Expired"), rec)
                if after is not None:  # by key, so an object deleted between pages moves nothing
                    keys = [key for key in keys if key[2] > after]
                page = keys[:limit] if limit > 0 else keys
                if len(page) < len(keys):
                    md["continue"] = base64.urlsafe_b64encode(json.dumps(
                        {"v": "meta.k8s.io/v1", "rv": int(rv), "start": page[-1][2]}).encode()).decode().rstrip("=")
                md["resourceVersion"] = rv
                text = encode({"kind": kind_name + "List", "apiVersion": api_version, "metadata": md,
                               "items": [st.objects[key] for key in page]})
            return self.send_text(200, text, rec)
        if name is None and self.command == "POST":
            return self.create(kind, ns, rec.get("body"), rec, race=bool(fault and fault.get("race")))
        if name is None:
            return self.send_json(405, status_obj(405, "method not allowed"), rec)
        if self.command == "GET":
            text = st.get_text(kind, ns, name)
            if text is None:
                return self.send_json(404, status_obj(404, f'{resource(kind)} "{name}" not found', name=name, kind=kind), rec)
            return self.send_text(200, text, rec)
        if self.command == "DELETE":
            # batch/v1 Jobs default to orphaning their pods (the API's
            # documented default for this kind); other kinds to Background
            policy = (q.get("propagationPolicy") or (rec.get("body") or {}).get("propagationPolicy")
                      or ("Orphan" if kind == "jobs" else "Background"))
            o = st.delete(kind, ns, name)
            if o is None:
                return self.send_json(404, status_obj(404, f'{resource(kind)} "{name}" not found', name=name, kind=kind), rec)
            if kind == "jobs" and policy in ("Background", "Foreground"):
                with st.cond:
                    pods = [n for (k, pns, n), p in st.objects.items() if k == "pods" and pns == ns
                            and (p["metadata"].get("labels") or {}).get("job-name") == name]
                for p in pods:
                    st.delete("pods", ns, p)
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                        "details": {"name": name, "kind": kind}}, rec)
        if self.command == "PATCH":
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/merge-patch+json":
                return self.send_json(415, status_obj(415, "only application/merge-patch+json here"), rec)
            patch = rec.get("body")
            if not isinstance(patch, dict):
                return self.send_json(400, status_obj(400, "patch body is not a JSON object"), rec)
            text = st.modify(kind, ns, name, lambda o: merge_patch(o, patch))  # in place: o is the stored object
            if text is None:
                return self.send_json(404, status_obj(404, f'{resource(kind)} "{name}" not found', name=name, kind=kind), rec)
            return self.send_text(200, text, rec)
        return self.send_json(405, status_obj(405, "method not allowed"), rec)

    def create(self, kind, ns, obj, rec, race=False):
        st = self.server.state
        api_version, kind_name, _ = KINDS[kind]
        if not isinstance(obj, dict):
            return self.send_json(400, status_obj(400, "the body is not a JSON object"), rec)
        md = obj.get("metadata")
        if obj.get("kind") != kind_name or obj.get("apiVersion") != api_version:
            return self.send_json(400, status_obj(400, f"the body is not a {api_version} {kind_name}"), rec)
        name = md.get("name") if isinstance(md, dict) else None
        if not isinstance(name, str) or not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", name):
            return self.send_json(422, status_obj(422, f"{kind_name} name {name!r}: a lowercase RFC 1123 "
                                                       "label must consist of ...", name=str(name), kind=kind), rec)
        if md.get("namespace") not in (None, ns):
            return self.send_json(400, status_obj(400, "the namespace of the object does not match the request"), rec)
        obj = json.loads(encode(obj))  # the recorded body stays as it was sent
        md = obj["metadata"]
        md.update({"namespace": ns, "uid": new_uid(), "creationTimestamp": now_iso(), "generation": 1})
        if kind == "jobs":
            obj["status"] = {}
            obj["spec"].setdefault("completions", 1)
            obj["spec"].setdefault("parallelism", 1)
        if kind == "persistentvolumeclaims":
            obj["status"] = {"phase": "Bound"}
        created = first = None
        with st.cond:
            if race and (kind, ns, name) not in st.objects:  # the other client's copy, its own uid
                first = st.put(kind, ns, dict(json.loads(encode(obj)), metadata=dict(md, uid=new_uid())), "ADDED")
            if (kind, ns, name) not in st.objects:
                created = st.put(kind, ns, obj, "ADDED")
        for text in (first, created):
            if text is not None and kind == "jobs":
                Player(self.server, ns, json.loads(text))
        if created is None:
            return self.send_json(409, status_obj(409, f'{resource(kind)} "{name}" already exists', name=name, kind=kind), rec)
        return self.send_text(201, created, rec)

    def watch(self, kind, ns, sel, q, rec):
        st, srv = self.server.state, self.server
        rv = q.get("resourceVersion") or ""
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        with st.cond:
            gen = st.drop_gen
            inj_seen = len(st.injected)
            expired = rv not in ("", "0") and (not rv.isdigit() or int(rv) < st.compacted)
            start = st.rv if rv in ("", "0") else (int(rv) if rv.isdigit() else 0)
            initial = [] if rv not in ("", "0") else [
                encode(o) for (k, n, _), o in sorted(st.objects.items())
                if k == kind and n == ns and matches(sel, o["metadata"].get("labels"))]
        rec["status"] = 200
        rec["watch"] = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def frame(line):
            """One watch line as one HTTP chunk."""
            data = line.encode() + b"\n"
            return b"%x\r\n%s\r\n" % (len(data), data)

        def event(etype, text):  # what json.dumps({"type": etype, "object": obj}) gives
            return frame('{"type": "%s", "object": %s}' % (etype, text))

        def send(frames):
            # every event ready now in one write: one system call, not one per event
            if frames:
                self.wfile.write(b"".join(frames))

        try:
            if expired:
                send([event("ERROR", json.dumps(status_obj(410, f"too old resource version: {rv} ({st.compacted})",
                                                           reason="Expired")))])
            else:
                send([event("ADDED", text) for text in initial])
                last = start
                while True:
                    with st.cond:
                        while True:
                            if st.drop_gen != gen or time.monotonic() >= deadline or srv.stopping:
                                pending = None
                                break
                            raw = st.injected[inj_seen:]
                            pending = st.events_after(last)
                            held = 1.0
                            if pending and st.lag.get(kind):
                                due = time.monotonic() - st.lag[kind]
                                n = 0
                                while n < len(pending) and pending[n][6] <= due:
                                    n += 1
                                if n < len(pending):
                                    held = pending[n][6] - due
                                pending = pending[:n]
                            if pending or raw:
                                inj_seen += len(raw)
                                break
                            st.cond.wait(min(1.0, held, max(0.01, deadline - time.monotonic())))
                        if pending is None:
                            break
                        if last < st.compacted:
                            pending = "expired"
                    frames = [frame(line) for line in raw]
                    if pending == "expired":
                        send(frames + [event("ERROR", json.dumps(status_obj(410, "too old resource version",
                                                                            reason="Expired")))])
                        break
                    for erv, k, n, etype, labels, text, _ in pending:
                        last = erv
                        if k == kind and n == ns and matches(sel, labels):
                            frames.append(event(etype, text))
                    send(frames)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (ConnectionError, BrokenPipeError, OSError):
            pass
        self.close_connection = True

    # ---- control

    def control(self, op, query):
        st, srv = self.server.state, self.server
        raw = self.body()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return self.send_json(400, {"error": "body is not JSON"})
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        if op == "health":
            return self.send_json(200, {"ok": True, "port": srv.server_address[1], "rv": st.rv})
        if op == "requests":
            since = int(q.get("since", 0))
            bodies = q.get("bodies") != "0"
            with st.cond:
                out = [r if bodies else {k: v for k, v in r.items() if k not in ("body", "body_raw")}
                       for r in st.requests if r["seq"] > since]
                return self.send_json(200, out)
        if op == "objects":
            with st.cond:
                out = {k: [] for k in KINDS}
                for (k, _, _), o in sorted(st.objects.items()):
                    if q.get("kind") in (None, k):
                        out[k].append(o)
                return self.send_json(200, out)
        if op == "scenario" and self.command == "POST":
            with st.cond:
                for k, v in data.items():
                    if isinstance(v, dict) and isinstance(st.scenario.get(k), dict):
                        st.scenario[k].update(v)
                    else:
                        st.scenario[k] = v
                return self.send_json(200, st.scenario)
        if op == "release" and self.command == "POST":
            with st.cond:
                if data.get("task"): st.released.add(data["task"])
                if data.get("job"): st.released.add(data["job"])
                if not data: st.release_all = True
            return self.send_json(200, {"ok": True})
        if op == "inject" and self.command == "POST":
            with st.cond:
                st.injected.extend(str(x) for x in data.get("lines", []))
                st.cond.notify_all()
            return self.send_json(200, {"ok": True})
        if op == "lag" and self.command == "POST":
            with st.cond:
                st.lag.update({k: float(v) for k, v in data.items()})
                st.cond.notify_all()
            return self.send_json(200, {"ok": True})
        if op == "down" and self.command == "POST":
            with st.cond:
                st.down_until = time.monotonic() + float(data.get("seconds", 10))
            srv.drop_watches(False)
            return self.send_json(200, {"ok": True})
        if op == "drop" and self.command == "POST":
            srv.drop_watches(bool(data.get("expire")))
            return self.send_json(200, {"ok": True})
        if op == "seed" and self.command == "POST":
            for o in data.get("objects", []):
                kind = {v[1]: k for k, v in KINDS.items()}.get(o.get("kind"))
                if not kind:
                    return self.send_json(400, {"error": f"unknown kind {o.get('kind')}"})
                o = json.loads(encode(o))
                md = o.setdefault("metadata", {})
                ns = md.setdefault("namespace", "default")
                md.setdefault("uid", new_uid())
                md.setdefault("creationTimestamp", now_iso())
                st.put(kind, ns, o, "ADDED")
            return self.send_json(200, {"ok": True})
        if op == "fault" and self.command == "POST":
            with st.cond:
                st.faults.append({"method": data.get("method", "GET"), "path_regex": data.get("path_regex", ""),
                                  "query_regex": data.get("query_regex", ""), "stall": float(data.get("stall", 0)),
                                  "race": bool(data.get("race")),
                                  "skip": int(data.get("skip", 0)),
                                  "code": int(data.get("code", 500)), "times": int(data.get("times", 1))})
            return self.send_json(200, {"ok": True})
        if op == "reset" and self.command == "POST":
            st.reset()
            return self.send_json(200, {"ok": True})
        return self.send_json(404, {"error": f"no control operation {op}"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr, args):
        super().__init__(addr, Handler)
        self.state = State(args.history)
        self.token, self.verbose, self.step = args.token, args.verbose, args.step
        self.stopping = False
        self._lock = threading.Lock()
        self.in_flight, self.last = 0, time.monotonic()
        self.ssl_ctx = None
        if args.tls_cert:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                # optional at the handshake: the control calls come without one
                self.ssl_ctx.verify_mode = ssl.CERT_OPTIONAL
                self.ssl_ctx.load_verify_locations(args.tls_client_ca)
        self.client_ca = args.tls_client_ca

    def activity(self, d):
        with self._lock:
            self.in_flight += d
            self.last = time.monotonic()

    def idle_for(self):
        with self._lock:
            return 0.0 if self.in_flight else time.monotonic() - self.last

    def drop_watches(self, expire):
        st = self.state
        with st.cond:
            st.drop_gen += 1
            if expire:
                st.compacted = st.rv
            st.cond.notify_all()

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


def parent_alive(parent_pid, original_ppid):
    if parent_pid is None:
        return os.getppid() == original_ppid
    try:
        return parent_pid == 0 or os.kill(parent_pid, 0) is None
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main():
    ap = argparse.ArgumentParser(description="Kubernetes API test server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token")
    ap.add_argument("--idle-exit", type=float, default=300)
    ap.add_argument("--parent-pid", type=int)
    ap.add_argument("--step", type=float, default=0.05, help="seconds between history steps")
    ap.add_argument("--history", type=int, default=100000, help="watch events kept (older: 410)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca")
    args = ap.parse_args()
    original_ppid = os.getppid()
    server = Server(("127.0.0.1", args.port), args)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    stop = threading.Event()

    def shutdown():
        server.stopping = True
        with server.state.cond:
            server.state.cond.notify_all()
        server.shutdown()

    def watchdog():
        while not stop.wait(0.25):
            if not parent_alive(args.parent_pid, original_ppid):
                sys.stderr.write("kubeapi: parent process is gone, exiting\n")
                break
            if args.idle_exit > 0 and server.idle_for() > args.idle_exit:
                sys.stderr.write(f"kubeapi: idle for {args.idle_exit}s, exiting\n")
                break
        shutdown()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: threading.Thread(target=shutdown, daemon=True).start())
    threading.Thread(target=watchdog, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()
    # Nothing is left to write: skip freeing the state object by object, which after a
    # 10,000-task benchmark (1.7 GiB of recordings and events) took minutes of CPU.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
