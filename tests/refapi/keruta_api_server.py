#!/usr/bin/env python3
"""Reference keruta-api server for the keruta-agent tests: a test peer, not a product.
Standard library only; PyYAML is imported only to read --openapi.  Python >= 3.11.

CLI: keruta_api_server.py [--port 0] [--port-file FILE] [--tls-cert C --tls-key K] [--token T]
       [--idle-exit SECONDS(300; 0=never)] [--state-dir DIR] [--openapi FILE]
       [--prefix P ...(default /api/v1 and /api)] [--status-values A,B] [--parent-pid PID] [--verbose]
  Listens on 127.0.0.1; writes the port to FILE (FILE.tmp + rename) once listening.  Exits after
  --idle-exit seconds with no request in flight, on SIGTERM/INT/HUP, and when its parent dies
  (ppid changes; --parent-pid PID watches PID instead, 0 disables): start it from the test process
  itself, not from a subshell that exits at once.  Without --state-dir, uploads go to a temp dir
  removed at exit.  With --token, API requests need "Authorization: Bearer T" (else 401).
  Per request: record -> outage (down) -> injected fault -> token -> route -> body checks.

API (each path under every --prefix, so /api/v1/... and /api/... both work)
  GET  /tasks, /tasks/status/{S}   seeded tasks (the second filtered on "status";
                                   like keruta-api, /tasks takes no ?status=)
  GET  /tasks/{id}                            seeded task
  GET  /tasks/{id}/script  seeded scripts[id] {installScript,executeScript,cleanupScript,environment}:
                               keruta-api's ScriptResponse {"taskId":id,"script":{"installScript",
                               "executeScript","cleanupScript"},"environment":{..},"createdAt",
                               "updatedAt"}; seeded {content,..}: the original Go agent's shape
                               {"success":true,"taskId":id,"script":{"content","language"(bash),
                               "filename"(script.sh),"parameters":{"env":{..}}}}; a seed holding
                               "success" or "script" is the whole answer; flatScripts[id] verbatim
  PUT  /tasks/{id}/status   POST /tasks/{id}/logs     see BODY SHAPES; both answer the task
  POST /tasks/{id}/documents   multipart/form-data; file part(s) named "file" with a filename, streamed
                               to disk -> {"taskId":..,"documents":[{"id","title","size","sha256"}]}
  GET  /repositories/{id}   /repositories/{id}/script (text/plain: installScripts[id], else the
                               repository's "installScript"; 404 if none)
  GET  /documents/{id} (Document JSON)   /documents/{id}/content (bytes; Content-Disposition:
                               attachment; filename="<name>" when the document has a name)

BODY SHAPES, from keruta-api.openapi.yaml: PUT .../status and POST .../logs share the request schema
  {"type":"object","additionalProperties":{"type":"string"}}: a flat object of strings.  Checked even
  without --openapi (stricter than keruta-api, whose JSON reader also turns a number into a string:
  the agent sends the published strings), and Content-Type must be application/json (else 415):
  status  {"status":"IN_PROGRESS","message":"...","progress":"50","errorCode":"EXECUTION_ERROR"}
          (the original agent's fields); "status" required, one of keruta-api's TaskStatus names
          (PENDING IN_PROGRESS COMPLETED CANCELLED FAILED WAITING_FOR_INPUT; --status-values
          replaces them), in any case, as keruta-api upper-cases it; "progress" an integer
          0-100, "errorCode" UPPER_SNAKE, when present.
  logs    {"message":"line1\nline2","stream":"stdout","level":"INFO"}: one request = one batch, its
          lines joined by "\n" in "message" (required; one trailing "\n" ignored); the other fields are
          copied onto every line.  A {"lines":[...]} array is not schema-valid: 400.
  Errors, as keruta-api answers them (the OpenAPI has no error schema): a refusal by its controllers
  (unknown id: 404; missing or unknown "status": 400) has no body (ResponseEntity...build()); an
  error before a controller (no route 404, 405, wrong Content-Type 415, unreadable or schema-invalid
  JSON 400, no token 401) is Spring Boot's error document {"timestamp","status","error"(reason
  phrase),"path"}.  Body-check failures are recorded with "invalid": reason.  Injected faults answer
  {"error":{"code":"SERVICE_UNAVAILABLE","message":"injected fault"}} unless given a "body".

CONTROL (/_control/..., JSON, no token, never recorded or faulted)
  GET  health    {"ok":true,"port":N,"validation":bool,"stateDir":".."}
  POST seed      {"tasks":[{"id":..}],"repositories":[{"id":..}],"scripts":{taskId:{content,..}},"flatScripts":{taskId:{..}},
                  "installScripts":{repoId:"text"},"documents":{docId:{"name":"x.md","content_b64":"..",
                  or "content":"text", opt. "content_type", "disposition" (raw header, for hostile names)}}}
                 merged by id
  GET  requests[?since=N]  [{"seq","method","path","query"(raw),"headers"{lowercase},"time"(epoch s),
                  "body"|"body_b64"|"parts":[{name,filename,content_type,size,sha256|value}],
                  "invalid"?,"fault"?,"response_status": code|"dropped"}]
  GET  state     {"statuses":{taskId:[body..]},"logs":{taskId:[{"line",..}]},
                  "uploads":{taskId:[{name,size,sha256,path}]},"tasks":{..},"faults_pending":N}
  POST fault     {"match":{"method":"PUT","path_regex":"/status$"} (optional; regex searched in the path),
                  "action": "status" ("code":503, "retry_after":2|"date", "body":obj|str, "content_type")
                          | "garbage" (200, invalid JSON) | "oversize" ("bytes":N: 200, a JSON string)
                          | "stall" ("seconds":S, then answer normally) | "drop" (close, no response),
                  "times":1 (-1 = forever), "skip":0 (let the first N matches through)}
                 the first pending fault matching a request applies.
  POST down      {"seconds":S}: API connections are closed right after their headers (an outage).
  POST reset     clears seeds, state, faults, recordings and uploaded files.
"""
import argparse
import base64
import email.message
import hashlib
import http
import json
import mimetypes
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

CHUNK = 256 * 1024          # streaming unit for bodies and uploads
MAX_JSON_BODY = 32 << 20    # bodies other than uploads are held in memory; cap them
MAX_FIELD = 64 << 10        # non-file multipart fields kept in memory up to this size
# The OpenAPI request schema of both PUT /tasks/{id}/status and POST /tasks/{id}/logs, used
# as is when no --openapi file is given, so the body contract holds either way.
FLAT_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
# keruta-api's TaskStatus enum: PUT .../status takes one of these, in any case
TASK_STATUSES = ["PENDING", "IN_PROGRESS", "COMPLETED", "CANCELLED", "FAILED", "WAITING_FOR_INPUT"]


def error_body(code, message, **extra):
    err = {"code": http.HTTPStatus(code).name if isinstance(code, int) else code, "message": message}
    err.update(extra)
    return {"error": err}


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class BadRequest(Exception):
    """Request rejected before a handler could answer it."""
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


# --------------------------------------------------------------------------- request bodies

class BodyReader:
    """Reads a request body framed by Content-Length or chunked transfer coding.
    libcurl sends chunked bodies for uploads of unknown size, so both must work."""

    def __init__(self, rfile, headers):
        self.rfile, self.done, self.remaining = rfile, False, 0
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        cl = headers.get("Content-Length") or "0"
        if not self.chunked:
            if not cl.isdigit():
                raise BadRequest(400, "bad Content-Length")
            self.remaining = int(cl)

    def read(self, n=CHUNK):
        if not self.chunked:
            if self.remaining <= 0:
                return b""
        else:
            if self.done:
                return b""
            if self.remaining == 0:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("client closed the connection inside a chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest(400, "bad chunk size line") from None
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self.done = True
                    return b""
                self.remaining = size
        data = self.rfile.read(min(n, self.remaining))
        if not data:
            raise ConnectionError("client closed the connection inside the body")
        self.remaining -= len(data)
        if self.chunked and self.remaining == 0:
            self.rfile.readline(8)  # CRLF closing the chunk
        return data

    def read_all(self, limit=MAX_JSON_BODY):
        parts, total = [], 0
        while chunk := self.read():
            total += len(chunk)
            if total > limit:
                self.drain()
                raise BadRequest(413, f"body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def drain(self):
        while self.read():
            pass


def mime_header(name, value):
    """A header parsed by the email package, which handles quoting and RFC 2231 parameters."""
    m = email.message.Message()
    m[name] = value
    return m


def read_multipart(reader, boundary, store_dir):
    """Stream-parse multipart/form-data without holding it in memory.  Parts with a filename go
    to files under store_dir (size and sha256 computed on the way); other fields are kept in
    memory (capped).  Returns [{"name","filename","content_type","size","sha256"|"value","path"}]."""
    delim = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # so the first boundary matches delim like the others
    eof = False

    def fill():
        nonlocal eof
        chunk = reader.read()
        if not chunk:
            eof = True
        buf.extend(chunk)

    while (i := buf.find(delim)) < 0:  # preamble
        if eof:
            raise BadRequest(400, "multipart body has no opening boundary")
        if len(buf) > len(delim):
            del buf[:len(buf) - len(delim)]
        fill()
    del buf[:i + len(delim)]
    parts = []
    while True:
        while len(buf) < 2 and not eof:
            fill()
        if buf[:2] == b"--":
            break  # closing delimiter
        while (j := buf.find(b"\r\n")) < 0:
            if eof or len(buf) > 1024:
                raise BadRequest(400, "multipart boundary line not terminated")
            fill()
        if buf[:j].strip(b" \t"):
            raise BadRequest(400, "garbage after a multipart boundary")
        del buf[:j + 2]
        while True:  # part headers
            if buf.startswith(b"\r\n"):
                raw, hdr_end = b"", 2
                break
            if (j := buf.find(b"\r\n\r\n")) >= 0:
                raw, hdr_end = bytes(buf[:j]), j + 4
                break
            if eof or len(buf) > 16384:
                raise BadRequest(400, "multipart part headers not terminated")
            fill()
        del buf[:hdr_end]
        headers = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        cd = mime_header("content-disposition", headers.get("content-disposition", ""))
        part = {"name": cd.get_param("name", header="content-disposition"),
                "filename": cd.get_filename(),
                "content_type": headers.get("content-type", "text/plain")}
        sha, size, out, mem = hashlib.sha256(), 0, None, bytearray()
        if part["filename"] is not None:
            fd, part["path"] = tempfile.mkstemp(dir=store_dir, prefix="part-")
            out = os.fdopen(fd, "wb")
        try:
            while True:  # part body: everything up to the next delimiter
                i = buf.find(delim)
                end = i if i >= 0 else max(0, len(buf) - len(delim) + 1)
                if end:
                    data = bytes(buf[:end])
                    size += len(data)
                    if out:
                        sha.update(data)
                        out.write(data)
                    elif len(mem) < MAX_FIELD:
                        mem.extend(data[:MAX_FIELD - len(mem)])
                    del buf[:end]
                if i >= 0:
                    del buf[:len(delim)]
                    break
                if eof:
                    raise BadRequest(400, "multipart body truncated (no closing boundary)")
                fill()
        finally:
            if out:
                out.close()
        part["size"] = size
        if out:
            part["sha256"] = sha.hexdigest()
        else:
            part["value"] = mem.decode("utf-8", "replace")
        parts.append(part)
    reader.drain()  # epilogue
    return parts


# --------------------------------------------------------------------------- OpenAPI validation

class OpenAPI:
    """Small JSON-schema subset validator over the OpenAPI request bodies: type, required,
    properties, additionalProperties, enum, items, $ref, minimum/maximum, allOf/anyOf/oneOf."""

    def __init__(self, path=None):
        self.doc, self.ops = {}, []
        if path is None:  # no description: check() still works for the built-in schemas
            return
        import yaml  # python3-yaml; only needed here
        with open(path, "rb") as f:
            self.doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for p, item in (self.doc.get("paths") or {}).items():
            segs = p.strip("/").split("/")
            rx = "^/" + "/".join("[^/]+" if "{" in s else re.escape(s) for s in segs) + "$"
            templated = sum("{" in s for s in segs)
            for method, op in item.items():
                if isinstance(op, dict):
                    self.ops.append((templated, method.upper(), re.compile(rx), op))
        self.ops.sort(key=lambda o: o[0])  # literal paths win over templated ones

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 20:
            cur = self.doc
            for key in node["$ref"].lstrip("#/").split("/"):
                cur = cur[key]
            node, seen = cur, seen + 1
        return node

    def body_schema(self, method, path):
        for _, m, rx, op in self.ops:
            if m == method and rx.match(path):
                content = (self.resolve(op.get("requestBody")) or {}).get("content") or {}
                for ctype, media in content.items():
                    if "json" in ctype:
                        return media.get("schema")
                return None
        return None

    def check(self, schema, value, where="$", depth=0):
        """Return None if value fits schema, else "<path>: <reason>"."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or depth > 60:
            return None
        if value is None and schema.get("nullable"):
            return None
        t = schema.get("type")
        if t and not type_ok(t, value):
            return f"{where}: expected {t}, got {json_type(value)}"
        if "enum" in schema and value not in schema["enum"]:
            return f"{where}: {json.dumps(value)} is not one of {schema['enum']}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                return f"{where}: {value} is below the minimum {schema['minimum']}"
            if "maximum" in schema and value > schema["maximum"]:
                return f"{where}: {value} is above the maximum {schema['maximum']}"
        for sub in schema.get("allOf", []):
            if err := self.check(sub, value, where, depth + 1):
                return err
        for key in ("anyOf", "oneOf"):  # oneOf checked leniently, as anyOf
            if key in schema:
                errs = [self.check(s, value, where, depth + 1) for s in schema[key]]
                if all(errs):
                    return errs[0]
        if isinstance(value, dict):
            for r in schema.get("required", []):
                if r not in value:
                    return f"{where}.{r}: required field missing"
            props, extra = schema.get("properties") or {}, schema.get("additionalProperties", True)
            for k, v in value.items():
                err = None
                if k in props:
                    err = self.check(props[k], v, f"{where}.{k}", depth + 1)
                elif extra is False:
                    err = f"{where}.{k}: unknown field"
                elif isinstance(extra, dict):
                    err = self.check(extra, v, f"{where}.{k}", depth + 1)
                if err:
                    return err
        if isinstance(value, list) and "items" in schema:
            for i, v in enumerate(value):
                if err := self.check(schema["items"], v, f"{where}[{i}]", depth + 1):
                    return err
        return None


def json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(v), "unknown")


def type_ok(t, v):
    actual = json_type(v)
    return actual == t or (t == "number" and actual == "integer")


# --------------------------------------------------------------------------- state

class State:
    """Everything tests seed and observe.  One lock; handlers hold it only briefly."""

    def __init__(self, state_dir):
        self.lock = threading.Lock()
        self.upload_root = os.path.join(state_dir, "uploads")
        os.makedirs(self.upload_root, exist_ok=True)
        self.clear()

    def clear(self):
        self.tasks, self.repositories, self.scripts = {}, {}, {}
        self.install_scripts, self.documents = {}, {}
        self.statuses, self.logs, self.uploads = {}, {}, {}
        self.requests, self.faults = [], []
        self.down_until = 0.0
        self.seq = 0

    def reset(self):
        with self.lock:
            self.clear()
            shutil.rmtree(self.upload_root, ignore_errors=True)
            os.makedirs(self.upload_root, exist_ok=True)

    def seed(self, body):
        docs = {}
        for doc_id, d in (body.get("documents") or {}).items():
            if not isinstance(d, dict):
                raise BadRequest(400, f"documents.{doc_id}: expected an object")
            try:
                data = base64.b64decode(d["content_b64"], validate=True) if "content_b64" in d \
                    else str(d.get("content", "")).encode()
            except (ValueError, TypeError) as e:
                raise BadRequest(400, f"documents.{doc_id}.content_b64: {e}") from None
            docs[str(doc_id)] = dict(d, data=data)
        with self.lock:
            for key, table in (("tasks", self.tasks), ("repositories", self.repositories)):
                for obj in body.get(key) or []:
                    if not isinstance(obj, dict) or "id" not in obj:
                        raise BadRequest(400, f"{key}: every entry needs an \"id\"")
                    table[str(obj["id"])] = obj
            self.scripts.update({str(k): v for k, v in (body.get("scripts") or {}).items()})
            self.scripts.update({str(k): dict(v, _flat=True) if isinstance(v, dict) else v
                                 for k, v in (body.get("flatScripts") or {}).items()})
            self.install_scripts.update({str(k): str(v) for k, v in (body.get("installScripts") or {}).items()})
            self.documents.update(docs)

    def record(self, rec):
        with self.lock:
            rec["seq"] = len(self.requests)
            self.requests.append(rec)

    def note(self, rec, **kw):
        with self.lock:
            rec.update(kw)

    def take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                m = f["match"]
                if m.get("method") and m["method"].upper() != method:
                    continue
                if f["rx"] and not f["rx"].search(path):
                    continue
                if f["skip"] > 0:  # this match is let through untouched
                    f["skip"] -= 1
                    return None
                if f["times"] > 0:
                    f["times"] -= 1
                    if f["times"] == 0:
                        self.faults.remove(f)
                return f
        return None

    def is_down(self):
        return time.monotonic() < self.down_until


# --------------------------------------------------------------------------- HTTP handler

ROUTES = [(m, re.compile("^" + rx + "$"), name) for m, rx, name in [
    ("GET", r"/tasks", "list_tasks"),
    ("GET", r"/tasks/status/([^/]+)", "list_tasks"),
    ("GET", r"/tasks/([^/]+)", "get_task"),
    ("GET", r"/tasks/([^/]+)/script", "get_task_script"),
    ("PUT", r"/tasks/([^/]+)/status", "put_status"),
    ("POST", r"/tasks/([^/]+)/logs", "post_logs"),
    ("POST", r"/tasks/([^/]+)/documents", "upload"),
    ("GET", r"/repositories/([^/]+)", "get_repository"),
    ("GET", r"/repositories/([^/]+)/script", "get_install_script"),
    ("GET", r"/documents/([^/]+)", "get_document"),
    ("GET", r"/documents/([^/]+)/content", "get_document_content"),
]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive; every response carries Content-Length
    server_version = "keruta-refapi/1"
    timeout = 120                     # per socket operation: a silent client cannot pin a thread
    rec = None

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.ssl_ctx:
            # Handshake here, in the connection's thread, not in the accept loop.
            self.request.settimeout(self.timeout)
            self.request = self.server.ssl_ctx.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.server.ssl_ctx:
                self.request.close()  # the server only closes the (detached) plain socket

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("refapi: %s %s\n" % (self.address_string(), fmt % args))

    def handle_expect_100(self):
        if not self.path.startswith("/_control/") and self.server.state.is_down():
            self.close_connection = True  # outage: no "100 Continue" either
            return False
        return super().handle_expect_100()

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = lambda self: self.dispatch()

    # ---- responses

    def send_bytes(self, code, data, ctype="application/json", headers=None):
        if self.rec is not None:
            self.server.state.note(self.rec, response_status=code)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, code, obj, headers=None):
        self.send_bytes(code, json.dumps(obj, ensure_ascii=False).encode(), headers=headers)

    def send_error_json(self, code, message, headers=None, **extra):
        self.send_json(code, error_body(code, message, **extra), headers)

    def send_empty(self, code):
        """What keruta-api's controllers answer when they refuse: ResponseEntity.badRequest()
        or notFound() .build(), no body."""
        self.send_bytes(code, b"")

    def send_spring_error(self, code, headers=None):
        """What Spring Boot answers for an error raised before or outside a controller (no
        route, unreadable JSON, wrong Content-Type, no token): its default error document."""
        self.send_json(code, {"timestamp": now_iso(), "status": code,
                              "error": http.HTTPStatus(code).phrase, "path": self.path.partition("?")[0]},
                       headers)

    # ---- main flow

    def dispatch(self):
        srv = self.server
        srv.activity(+1)
        self.rec, self.canonical = None, None  # one handler object serves a whole keep-alive connection
        try:
            path, _, query = self.path.partition("?")
            if path.startswith("/_control/"):
                self.control(path, query)
            else:
                self.api(path, query)
        except BadRequest as e:
            self.close_connection = True  # the body may be half read
            self.send_error_json(e.code, e.message)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
        except Exception:  # a bug here: answer 500 rather than drop, so the client does not retry
            traceback.print_exc()
            self.close_connection = True
            try:
                self.send_error_json(500, "reference server bug: " + repr(sys.exc_info()[1]))
            except OSError:
                pass
        finally:
            srv.activity(-1)

    def api(self, path, query):
        st = self.server.state
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        self.rec = {"method": self.command, "path": path, "query": query,
                    "headers": headers, "time": time.time()}
        st.record(self.rec)
        if st.is_down():
            st.note(self.rec, response_status="dropped")
            self.close_connection = True
            return
        # Python's server turns a leading "//" into "/" before we see it;
        # the real keruta-api (Spring's StrictHttpFirewall) refuses it
        raw = self.requestline.split(" ")[1] if self.requestline.count(" ") >= 2 else path
        if "//" in raw.partition("?")[0]:
            st.note(self.rec, raw_path=raw)
            return self.send_spring_error(400)
        fault = st.take_fault(self.command, path)
        if fault:
            st.note(self.rec, fault=fault["action"])
            if fault["action"] == "stall":
                time.sleep(float(fault.get("seconds", 5)))
                fault = None  # then answer normally
        reader = BodyReader(self.rfile, self.headers)
        route, params = self.route(path)
        if route == "upload":
            if not fault and self.authorised():
                return self.upload(params[0], reader)
            reader.drain()  # never hold a big upload in memory just to refuse it
        body = reader.read_all()
        if body:
            try:
                st.note(self.rec, body=body.decode("utf-8"))
            except UnicodeDecodeError:
                st.note(self.rec, body_b64=base64.b64encode(body).decode())
        if fault:
            return self.apply_fault(fault)
        if not self.authorised():
            return self.send_spring_error(401, {"WWW-Authenticate": 'Bearer realm="keruta-api"'})
        if route is None:
            return self.send_spring_error(404)
        if route == "METHOD":
            return self.send_spring_error(405)
        getattr(self, route)(*params, body=body, query=query)

    def route(self, path):
        suffix = None
        for prefix in self.server.prefixes:  # longest first
            if path.startswith(prefix + "/"):
                suffix = path[len(prefix):]
                break
        if suffix is None:
            return None, ()
        other_method = False
        for method, rx, name in ROUTES:
            if m := rx.match(suffix):
                if method == self.command:
                    self.canonical = "/api/v1" + suffix  # how the OpenAPI spells it
                    return name, tuple(unquote(g) for g in m.groups())
                other_method = True
        return ("METHOD" if other_method else None), ()

    def authorised(self):
        token = self.server.token
        if token is None:
            return True
        scheme, _, value = self.headers.get("Authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and value.strip() == token

    def apply_fault(self, f):
        action = f["action"]
        if action == "drop":
            self.server.state.note(self.rec, response_status="dropped")
            self.close_connection = True
        elif action == "garbage":
            self.send_bytes(200, b'{"id": "garbage", <<< this is not JSON')
        elif action == "oversize":
            n = max(2, int(f.get("bytes", 64 << 20)))
            self.server.state.note(self.rec, response_status=200)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(b'"')  # one valid JSON string, just too big
            left, pad = n - 2, b"x" * CHUNK
            while left > 0:
                self.wfile.write(pad[:min(left, CHUNK)])
                left -= CHUNK
            self.wfile.write(b'"')
        else:  # "status"
            code = int(f.get("code", 503))
            hdrs = {}
            if f.get("retry_after") is not None:
                ra = f["retry_after"]
                hdrs["Retry-After"] = str(int(ra)) if isinstance(ra, (int, float)) else str(ra)
            body = f.get("body")
            if body is None:
                self.send_error_json(code, "injected fault", hdrs)
            elif isinstance(body, str):
                self.send_bytes(code, body.encode(), f.get("content_type", "application/json"), hdrs)
            else:
                self.send_json(code, body, hdrs)

    # ---- request body checks (recorded as "invalid" so tests can assert none happened)

    def reject(self, code, reason, spring=True):
        """A body keruta-api does not take: recorded with the reason; answered as Spring answers
        a body it cannot read (spring) or as the controller refuses one (no body)."""
        self.server.state.note(self.rec, invalid=reason)
        if spring:
            self.send_spring_error(code)
        else:
            self.send_empty(code)

    def json_body(self, body, fallback=FLAT_STRINGS):
        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            self.reject(415, f"Content-Type must be application/json, got {ctype or 'none'!r}")
            return None
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self.reject(400, f"body is not valid JSON: {e}")
            return None
        api = self.server.openapi or OpenAPI()
        schema = api.body_schema(self.command, self.canonical) or fallback
        if schema is not None and (err := api.check(schema, data)):
            self.reject(400, err)
            return None
        if not isinstance(data, dict):
            self.reject(400, f"$: expected object, got {json_type(data)}")
            return None
        return data

    def string_field(self, data, name):
        if not isinstance(data.get(name), str) or (name == "status" and not data[name]):
            self.reject(400, f"$.{name}: required string field missing or empty", spring=False)
            return False
        return True

    # ---- API handlers

    def found(self, table, key, what):
        """The seeded object (a deep copy), or None after answering 404."""
        with self.server.state.lock:
            obj = getattr(self.server.state, table).get(key)
            obj = json.loads(json.dumps(obj)) if obj is not None and table != "documents" else obj
        if obj is None:
            self.send_empty(404)
        return obj

    def task_or_404(self, task_id):
        return self.found("tasks", task_id, "task")

    def list_tasks(self, status=None, body=b"", query=""):
        with self.server.state.lock:
            out = json.dumps([t for t in self.server.state.tasks.values()
                              if status is None or t.get("status") == status], ensure_ascii=False)
        self.send_bytes(200, out.encode())

    def get_task(self, task_id, body=b"", query=""):
        if (task := self.task_or_404(task_id)) is not None:
            self.send_json(200, task)

    def get_task_script(self, task_id, body=b"", query=""):
        """A seed of installScript/executeScript/cleanupScript/environment gets keruta-api's
        ScriptResponse (its TaskController): {taskId, script: {installScript, executeScript,
        cleanupScript}, environment, createdAt, updatedAt}.  A seed with "content" gets the shape
        the original Go agent reads: {success, taskId, script: {content, language, filename,
        parameters}}.  A seed holding "success" or "script", or a flatScripts seed, is sent as is."""
        if (script := self.found("scripts", task_id, "script for task")) is None:
            return
        if isinstance(script, dict) and script.get("_flat"):
            script = {k: v for k, v in script.items() if k != "_flat"}
        elif not isinstance(script, dict) or "success" in script or "script" in script:
            pass
        elif "content" not in script:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            script = {"taskId": task_id,
                      "script": {k: script.get(k, "") for k in
                                 ("installScript", "executeScript", "cleanupScript")},
                      "environment": script.get("environment", {}),
                      "createdAt": stamp, "updatedAt": stamp}
        else:
            script = {"success": True, "taskId": task_id,
                      "script": dict({"language": "bash", "filename": "script.sh",
                                      "parameters": {}}, **script)}
        self.send_json(200, script)

    def put_status(self, task_id, body=b"", query=""):
        st = self.server.state
        if (data := self.json_body(body)) is None or not self.string_field(data, "status"):
            return
        # keruta-api takes TaskStatus.valueOf(status.uppercase()) and answers 400 to anything else
        allowed = self.server.status_values
        if data["status"].upper() not in allowed:
            return self.reject(400, f"$.status: {data['status']!r} is not one of {allowed}",
                               spring=False)
        # the original agent's body {status, message, progress, errorCode}
        progress = data.get("progress")
        if progress is not None and not (str(progress).isdigit() and 0 <= int(progress) <= 100):
            return self.reject(400, f"$.progress: {progress!r} is not an integer 0-100",
                               spring=False)
        code = data.get("errorCode")
        if code is not None and not re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", str(code)):
            return self.reject(400, f"$.errorCode: {code!r} is not an UPPER_SNAKE code",
                               spring=False)
        with st.lock:
            task = st.tasks.get(task_id)
            if task is not None:
                task["status"], task["updatedAt"] = data["status"], now_iso()
                st.statuses.setdefault(task_id, []).append(data)
                task = json.loads(json.dumps(task))
        if task is None:
            return self.send_empty(404)
        self.send_json(200, task)

    def post_logs(self, task_id, body=b"", query=""):
        st = self.server.state
        if (data := self.json_body(body)) is None or not self.string_field(data, "message"):
            return
        message = data["message"]
        lines = message[:-1].split("\n") if message.endswith("\n") else message.split("\n")
        common = {k: v for k, v in data.items() if k != "message"}
        if (task := self.task_or_404(task_id)) is None:
            return
        with st.lock:
            st.logs.setdefault(task_id, []).extend(dict(common, line=line) for line in lines)
        self.send_json(200, task)

    def upload(self, task_id, reader):
        st = self.server.state
        with st.lock:
            known = task_id in st.tasks
        if not known:
            reader.drain()
            return self.send_empty(404)
        ctm = mime_header("content-type", self.headers.get("Content-Type", ""))
        boundary = ctm.get_param("boundary") if ctm.get_content_type() == "multipart/form-data" else None
        if not boundary or not 0 < len(boundary) <= 200:
            reader.drain()
            return self.reject(415, "Content-Type must be multipart/form-data with a boundary")
        work = tempfile.mkdtemp(dir=st.upload_root, prefix="incoming-")
        try:
            try:
                parts = read_multipart(reader, boundary.encode("latin-1"), work)
            except BadRequest as e:
                reader.drain()  # so the client reads our 400 instead of a reset
                return self.reject(e.code, e.message)
            st.note(self.rec, parts=[{k: v for k, v in p.items() if k != "path"} for p in parts])
            files = [p for p in parts if p["name"] == "file"]
            if not files or any(p["filename"] is None for p in files):
                return self.reject(400, "multipart field \"file\" with a filename is required")
            docs = []
            with st.lock:
                for p in files:
                    st.seq += 1
                    safe = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(p["filename"])) or "file"
                    dest_dir = os.path.join(st.upload_root, re.sub(r"[^A-Za-z0-9._-]", "_", task_id))
                    os.makedirs(dest_dir, exist_ok=True)
                    dest = os.path.join(dest_dir, f"{st.seq:04d}-{safe}")
                    os.replace(p["path"], dest)
                    st.uploads.setdefault(task_id, []).append(
                        {"name": p["filename"], "size": p["size"], "sha256": p["sha256"], "path": dest})
                    docs.append({"id": f"upload-{st.seq}", "title": p["filename"],
                                 "size": p["size"], "sha256": p["sha256"]})
            self.send_json(200, {"taskId": task_id, "documents": docs})
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def get_repository(self, repo_id, body=b"", query=""):
        if (repo := self.found("repositories", repo_id, "repository")) is not None:
            self.send_json(200, repo)

    def get_install_script(self, repo_id, body=b"", query=""):
        st = self.server.state
        text = st.install_scripts.get(repo_id)
        if text is None:
            text = (st.repositories.get(repo_id) or {}).get("installScript") or None
        if text is None:
            return self.send_empty(404)
        self.send_bytes(200, text.encode(), "text/plain; charset=utf-8")

    def get_document(self, doc_id, body=b"", query=""):
        if (d := self.found("documents", doc_id, "document")) is None:
            return
        self.send_json(200, {"id": doc_id, "title": d.get("name", doc_id),
                             "content": d["data"].decode("utf-8", "replace"), "tags": d.get("tags", []),
                             "createdAt": d.get("createdAt", now_iso()), "updatedAt": d.get("updatedAt", now_iso())})

    def get_document_content(self, doc_id, body=b"", query=""):
        if (d := self.found("documents", doc_id, "document")) is None:
            return
        hdrs, name = {}, d.get("name")
        if d.get("disposition") is not None:  # raw value, to test hostile names
            hdrs["Content-Disposition"] = d["disposition"]
        elif name:
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            hdrs["Content-Disposition"] = f'attachment; filename="{quoted}"'
        ctype = d.get("content_type") or (name and mimetypes.guess_type(name)[0]) or "application/octet-stream"
        self.send_bytes(200, d["data"], ctype, hdrs)

    # ---- control API

    def control(self, path, query):
        st = self.server.state
        body = BodyReader(self.rfile, self.headers).read_all(1 << 30)
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError as e:
            raise BadRequest(400, f"control body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise BadRequest(400, "control body must be a JSON object")
        key = (self.command, path.rstrip("/"))
        if key == ("GET", "/_control/health"):
            self.send_json(200, {"ok": True, "port": self.server.server_address[1],
                                 "validation": self.server.openapi is not None,
                                 "stateDir": self.server.state_dir})
        elif key == ("POST", "/_control/seed"):
            st.seed(data)
            self.send_json(200, {"ok": True})
        elif key == ("GET", "/_control/requests"):
            since = (parse_qs(query).get("since") or ["0"])[-1]
            if not since.isdigit():
                raise BadRequest(400, "since must be a request index")
            since = int(since)
            with st.lock:
                out = json.dumps(st.requests[since:], ensure_ascii=False).encode()
            self.send_bytes(200, out)
        elif key == ("GET", "/_control/state"):
            with st.lock:
                out = json.dumps({"statuses": st.statuses, "logs": st.logs, "uploads": st.uploads,
                                  "tasks": st.tasks, "faults_pending": len(st.faults)},
                                 ensure_ascii=False).encode()
            self.send_bytes(200, out)
        elif key == ("POST", "/_control/fault"):
            self.send_json(200, {"ok": True, "pending": self.add_fault(data)})
        elif key == ("POST", "/_control/down"):
            with st.lock:
                st.down_until = time.monotonic() + float(data.get("seconds", 5))
            self.send_json(200, {"ok": True})
        elif key == ("POST", "/_control/reset"):
            st.reset()
            self.send_json(200, {"ok": True})
        else:
            self.send_error_json(404, f"no control endpoint {self.command} {path}")

    def add_fault(self, data):
        action = data.get("action")
        if action not in ("status", "garbage", "oversize", "stall", "drop"):
            raise BadRequest(400, f"fault action {action!r} is not status/garbage/oversize/stall/drop")
        match = data.get("match") or {}
        try:
            rx = re.compile(match["path_regex"]) if match.get("path_regex") else None
            times, skip = int(data.get("times", 1)), int(data.get("skip", 0))
        except (re.error, ValueError, TypeError) as e:
            raise BadRequest(400, f"bad fault: {e}") from None
        if times == 0 or times < -1:
            raise BadRequest(400, "times must be >= 1, or -1 for forever")
        fault = dict(data, match=match, rx=rx, times=times, skip=skip)
        with self.server.state.lock:
            self.server.state.faults.append(fault)
            return len(self.server.state.faults)


# --------------------------------------------------------------------------- server and lifetime

class Server(ThreadingHTTPServer):
    daemon_threads = True      # never wait for a stalled connection at exit
    request_queue_size = 128   # concurrency tests open many connections at once

    def __init__(self, addr, args, state_dir, openapi):
        super().__init__(addr, Handler)
        self.state_dir, self.state, self.openapi = state_dir, State(state_dir), openapi
        self.token, self.verbose = args.token, args.verbose
        self.prefixes = sorted({p.rstrip("/") for p in args.prefix or ["/api/v1", "/api"]}, key=len, reverse=True)
        self.status_values = [s.upper() for s in (args.status_values or "").split(",") if s] \
            or TASK_STATUSES
        self.ssl_ctx = None
        if args.tls_cert:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        self._act_lock = threading.Lock()
        self.in_flight, self.last_activity = 0, time.monotonic()

    def activity(self, delta):
        with self._act_lock:
            self.in_flight += delta
            self.last_activity = time.monotonic()

    def idle_for(self):
        with self._act_lock:
            return 0.0 if self.in_flight else time.monotonic() - self.last_activity

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            traceback.print_exc()


def parent_alive(parent_pid, original_ppid):
    if parent_pid is None:
        return os.getppid() == original_ppid
    try:
        return parent_pid == 0 or os.kill(parent_pid, 0) is None
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def watchdog(server, args, original_ppid, stop):
    while not stop.wait(0.25):
        if not parent_alive(args.parent_pid, original_ppid):
            sys.stderr.write("refapi: parent process is gone, exiting\n")
            break
        if args.idle_exit > 0 and server.idle_for() > args.idle_exit:
            sys.stderr.write(f"refapi: idle for {args.idle_exit}s, exiting\n")
            break
    server.shutdown()


def main():
    ap = argparse.ArgumentParser(description="Reference keruta-api server for tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--token")
    ap.add_argument("--idle-exit", type=float, default=300)
    ap.add_argument("--state-dir")
    ap.add_argument("--openapi", help="validate request bodies against this OpenAPI file")
    ap.add_argument("--prefix", action="append", help="API path prefix (repeatable; default /api/v1 and /api)")
    ap.add_argument("--status-values", help="comma-separated accepted status values, in any case "
                    "(default: keruta-api's TaskStatus names)")
    ap.add_argument("--parent-pid", type=int, help="exit when this pid dies (0: never; default: our parent)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    original_ppid = os.getppid()

    openapi = None
    if args.openapi:
        try:
            openapi = OpenAPI(args.openapi)
        except Exception as e:  # documented: unreadable -> no validation, but say so
            sys.stderr.write(f"refapi: cannot load {args.openapi} ({e}); request validation is off\n")
    own_dir = args.state_dir is None
    state_dir = tempfile.mkdtemp(prefix="keruta-refapi-") if own_dir else args.state_dir
    os.makedirs(state_dir, exist_ok=True)

    server = Server(("127.0.0.1", args.port), args, state_dir, openapi)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    if args.verbose:
        sys.stderr.write(f"refapi: listening on {'https' if server.ssl_ctx else 'http'}://127.0.0.1:{port}\n")

    stop = threading.Event()

    def on_signal(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()  # not from this thread

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    threading.Thread(target=watchdog, args=(server, args, original_ppid, stop), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
