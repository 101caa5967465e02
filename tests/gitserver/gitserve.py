#!/usr/bin/env python3
"""Real git servers on loopback for keruta-agent's tests and benchmarks.

    gitserve.py daemon --root DIR --port-file F      git daemon (git://)
    gitserve.py http   --root DIR --port-file F      nginx + fcgiwrap + git http-backend
                [--basic USER:PASSWORD] [--bearer TOKEN] [--tls CERT KEY]
    gitserve.py ssh    --root DIR --port-file F --host-key KEY --authorized-keys FILE
                                                     sshd (needs root and /usr/sbin/sshd);
                                                     URLs: ssh://USER@localhost:PORT/ABS/PATH
    gitserve.py cut    --to PORT --after BYTES --port-file F
                                                     TCP proxy that forwards to PORT and
                                                     cuts each connection after BYTES
                                                     sent to the client

Every server picks a free port on 127.0.0.1, writes it to the port file once
it accepts connections, and runs until SIGTERM/SIGINT or until its parent
process goes away (so a crashed test leaves nothing behind).  http serves
/anon/<repo>, /basic/<repo> (basic auth) and /bearer/<repo>.  nginx sets
TCP_NODELAY (its default), so timings are not distorted by Nagle.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, procs, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        for p in procs:
            if p.poll() is not None:
                return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def write_port(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


def supervise(procs, cleanup=None):
    """Run until a signal, the parent's death, or a child's death."""
    stop = threading.Event()
    parent = os.getppid()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *a: stop.set())
    while not stop.is_set():
        if os.getppid() != parent or any(p.poll() is not None for p in procs):
            break
        stop.wait(0.2)
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if cleanup:
        cleanup()


def start(argv, log, env=None):
    return subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)


def cmd_daemon(a):
    for _ in range(5):
        port = free_port()
        log = open(os.path.join(a.state, "daemon.log"), "ab")
        p = start(["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", "--port=%d" % port,
                   "--base-path=" + a.root, "--export-all", "--informative-errors", a.root], log)
        if wait_listening(port, [p]):
            write_port(a.port_file, port)
            supervise([p])
            return 0
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    print("git daemon did not start; see daemon.log", file=sys.stderr)
    return 1


NGINX_CONF = """
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 128; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body; fastcgi_temp_path {d}/fcgi;
  proxy_temp_path {d}/proxy; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  client_max_body_size 0;
  tcp_nodelay on;
  server {{
    listen 127.0.0.1:{port}{ssl};
    {tls}
    location ~ ^/anon(/.*)$ {{
      {backend}
    }}
    location ~ ^/basic(/.*)$ {{
      auth_basic "git"; auth_basic_user_file {d}/htpasswd;
      {backend}
      fastcgi_param REMOTE_USER $remote_user;
    }}
    location ~ ^/bearer(/.*)$ {{
      if ($http_authorization != "Bearer {bearer}") {{
        add_header WWW-Authenticate 'Bearer realm="git"' always;
        return 401;
      }}
      {backend}
    }}
  }}
}}
"""

BACKEND = """include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME {be};
      fastcgi_param GIT_PROJECT_ROOT {root};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $1;
      fastcgi_buffering off;
      fastcgi_pass unix:{d}/fcgiwrap.sock;"""


def cmd_http(a):
    d = a.state
    for sub in ("body", "fcgi", "proxy", "uwsgi", "scgi"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    user, _, pw = (a.basic or "alice:wonderland").partition(":")
    hashed = subprocess.run(["openssl", "passwd", "-apr1", pw], check=True,
                            capture_output=True, text=True).stdout.strip()
    with open(os.path.join(d, "htpasswd"), "w") as f:
        f.write("%s:%s\n" % (user, hashed))
    log = open(os.path.join(d, "servers.log"), "ab")
    sock = os.path.join(d, "fcgiwrap.sock")
    fcgi = start(["fcgiwrap", "-c", str(a.workers), "-s", "unix:" + sock], log)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    for _ in range(5):
        port = free_port()
        tls = ""
        if a.tls:
            tls = "ssl_certificate %s; ssl_certificate_key %s;" % (a.tls[0], a.tls[1])
        conf = NGINX_CONF.format(d=d, port=port, ssl=" ssl" if a.tls else "", tls=tls,
                                 bearer=a.bearer or "s3cr3t-token",
                                 backend=BACKEND.format(be=HTTP_BACKEND, root=a.root, d=d))
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        ngx = start(["nginx", "-c", os.path.join(d, "nginx.conf"), "-e",
                     os.path.join(d, "error.log")], log)
        if wait_listening(port, [ngx, fcgi]):
            write_port(a.port_file, port)
            supervise([ngx, fcgi])
            return 0
        if ngx.poll() is None:
            os.killpg(ngx.pid, signal.SIGKILL)
        ngx.wait()
    supervise([fcgi])
    print("nginx did not start; see %s/error.log" % d, file=sys.stderr)
    return 1


SSHD_CONF = """ListenAddress 127.0.0.1
Port {port}
HostKey {key}
PidFile {d}/sshd.pid
AuthorizedKeysFile {auth}
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
"""


def cmd_ssh(a):
    d = a.state
    os.makedirs("/run/sshd", exist_ok=True)
    log = open(os.path.join(d, "sshd.log"), "ab")
    for _ in range(5):
        port = free_port()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(SSHD_CONF.format(port=port, key=os.path.abspath(a.host_key), d=d,
                                     auth=os.path.abspath(a.authorized_keys)))
        p = start(["/usr/sbin/sshd", "-D", "-e", "-f", conf], log)
        if wait_listening(port, [p]):
            write_port(a.port_file, port)
            supervise([p])
            return 0
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    print("sshd did not start; see %s/sshd.log" % d, file=sys.stderr)
    return 1


def cmd_cut(a):
    """Forward to --to; after --after bytes towards the client, drop both sides."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    write_port(a.port_file, lsock.getsockname()[1])
    parent = os.getppid()

    def pump(src, dst, limit, done):
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        done.set()

    def handle(c):
        try:
            up = socket.create_connection(("127.0.0.1", a.to))
        except OSError:
            c.close()
            return
        for s in (c, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done = threading.Event()
        threading.Thread(target=pump, args=(c, up, None, done), daemon=True).start()
        threading.Thread(target=pump, args=(up, c, a.after, done), daemon=True).start()
        done.wait()
        for s in (c, up):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    lsock.settimeout(0.2)
    signal.signal(signal.SIGTERM, lambda *x: sys.exit(0))
    while os.getppid() == parent:
        try:
            c, _ = lsock.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(c,), daemon=True).start()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    for name in ("daemon", "http", "ssh"):
        p = sp.add_parser(name)
        p.add_argument("--root", required=True)
        p.add_argument("--port-file", required=True)
        p.add_argument("--state", help="directory for configs and logs (default: temporary)")
        if name == "http":
            p.add_argument("--basic", help="USER:PASSWORD for /basic (default alice:wonderland)")
            p.add_argument("--bearer", help="token for /bearer (default s3cr3t-token)")
            p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
            p.add_argument("--workers", type=int, default=2)
        if name == "ssh":
            p.add_argument("--host-key", required=True)
            p.add_argument("--authorized-keys", required=True)
    p = sp.add_parser("cut")
    p.add_argument("--to", type=int, required=True)
    p.add_argument("--after", type=int, required=True)
    p.add_argument("--port-file", required=True)
    a = ap.parse_args()
    if a.cmd == "cut":
        return cmd_cut(a)
    a.root = os.path.abspath(a.root)
    made = a.state is None
    a.state = os.path.abspath(a.state or tempfile.mkdtemp(prefix="gitserve."))
    os.makedirs(a.state, exist_ok=True)
    try:
        return {"daemon": cmd_daemon, "http": cmd_http, "ssh": cmd_ssh}[a.cmd](a)
    finally:
        if made:
            shutil.rmtree(a.state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
