#!/usr/bin/env python3
"""Clone and re-run benchmark: the clone stage against the git CLI.

    python3 bench/clone/bench.py --agent BUILD/keruta-agent \
        --plugins BUILD/stages/.libs [--runs 5] [--files 3000] [--commits 200]

Generates a repository with git fast-import (seeded, so every run is the
same), serves it over smart HTTP on loopback (nginx + git http-backend via
tests/gitserver/gitserve.py, TCP_NODELAY on), then times, alternating the two
tools run by run:
  clone:  `keruta-agent execute` with a pipeline of just the clone stage,
          against `git clone`;
  re-run: the same stage on an existing checkout one commit behind (fetch of
          one new commit + checkout), against `git fetch` + `git merge
          --ff-only` (the same end state: branch main at the new commit).
Each run starts from a fresh directory (re-run: a copy of the same checkout,
made outside the timing).  Prints medians (min-max) and the ratios.
"""
import argparse
import atexit
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GITSERVE = os.path.join(HERE, "..", "..", "tests", "gitserver", "gitserve.py")
ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
           GIT_TERMINAL_PROMPT="0")


def sh(cmd, cwd=None, **kw):
    return subprocess.run(cmd, cwd=cwd, env=ENV, check=True, **kw)


def generate(path, files, commits, seed=7, asset_size=20000):
    """A bare repository: `commits` commits on main; each after the first
    edits 20 text files and rewrites 1 binary asset of asset_size bytes."""
    rng = random.Random(seed)
    sh(["git", "init", "-q", "--bare", "-b", "main", path])
    ndirs = max(1, files // 50)
    names = ["d%02d/m%d/f%04d.txt" % (i % ndirs, i % 7, i) for i in range(files)]
    assets = ["assets/a%02d.bin" % i for i in range(10)]
    words = ["alpha", "beta", "gamma", "delta", "kappa", "omega", "sigma", "theta"]

    def text():
        return ("\n".join(" ".join(rng.choice(words) for _ in range(10))
                          for _ in range(rng.randint(5, 40))) + "\n").encode()

    out = []
    mark = 0
    for c in range(commits):
        changed = names if c == 0 else rng.sample(names, 20)
        blobs = []
        for n in changed:
            mark += 1
            data = text()
            out.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
            blobs.append((n, mark))
        for n in (assets if c == 0 else [rng.choice(assets)]):
            mark += 1
            data = rng.randbytes(asset_size)
            out.append(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
            blobs.append((n, mark))
        msg = b"commit %d\n" % c
        out.append(b"commit refs/heads/main\ncommitter b <b@e> %d +0000\ndata %d\n%s"
                   % (1700000000 + c * 60, len(msg), msg))
        for n, m in blobs:
            out.append(b"M 100644 :%d %s\n" % (m, n.encode()))
        out.append(b"\n")
        if c == commits - 2:
            out.append(b"reset refs/heads/prev\nfrom refs/heads/main\n\n")
    sh(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(out))
    sh(["git", "repack", "-a", "-d", "-q"], cwd=path)


def timed(cmd, cwd=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
    return dt


def fmt(xs):
    return "%.3f (%.3f-%.3f)" % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--commits", type=int, default=200)
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--scratch", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the clones are made (default /dev/shm, a tmpfs: ext4 on "
                         "a busy VM adds seconds of noise to creating thousands of files)")
    a = ap.parse_args()
    base = a.keep or tempfile.mkdtemp(prefix="bench-clone.")
    os.makedirs(base, exist_ok=True)
    srv = os.path.join(base, "srv")
    repo = os.path.join(srv, "repo.git")
    if not os.path.exists(repo):
        os.makedirs(srv, exist_ok=True)
        t = time.perf_counter()
        generate(repo, a.files, a.commits)
        print("generated %d files x %d commits in %.1f s" %
              (a.files, a.commits, time.perf_counter() - t))
        old = os.path.join(srv, "old.git")
        sh(["git", "clone", "-q", "--bare", "--branch", "prev", repo, old])
        sh(["git", "update-ref", "refs/heads/main", "refs/heads/prev"], cwd=old)
        sh(["git", "symbolic-ref", "HEAD", "refs/heads/main"], cwd=old)
    pack = sum(os.path.getsize(os.path.join(repo, "objects/pack", f))
               for f in os.listdir(os.path.join(repo, "objects/pack")))
    port_file = os.path.join(base, "port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    server = subprocess.Popen([sys.executable, GITSERVE, "http", "--root", srv, "--port-file",
                               port_file, "--workers", "4"], start_new_session=True)
    try:
        for _ in range(300):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        url = "http://127.0.0.1:%d/anon/repo.git" % port
        old_url = "http://127.0.0.1:%d/anon/old.git" % port
        pipe = os.path.join(base, "pipeline.yaml")
        with open(pipe, "w") as f:
            f.write("version: 1\nphases:\n  execute: [clone]\nstages:\n"
                    "  clone: { plugin: clone }\n")
        task = os.path.join(base, "task.yaml")
        with open(task, "w") as f:
            f.write('id: bench\nrepository: { url: "%s", ref: main }\n' % url)

        # A bare git_clone() program: the stage's own cost vs libgit2's.
        lg2 = os.path.join(base, "lg2clone")
        sh(["sh", "-c", 'cc -O2 -o "$1" "$2" $(pkg-config --cflags --libs libgit2)', "cc", lg2,
            os.path.join(HERE, "lg2clone.c")])

        def agent(wd):
            return [a.agent, "execute", "--pipeline", pipe, "--task-file", task, "--work-dir",
                    wd, "--backend", "local", "--termination-log", os.path.join(base, "tl"),
                    "--log-format", "json", "--plugin-dir", a.plugins]

        # The re-run's starting point: a checkout of main~1, origin = repo.git.
        seed = os.path.join(base, "seed")
        if not os.path.exists(seed):
            sh(["git", "clone", "-q", old_url, seed])
        sh(["git", "remote", "set-url", "origin", url], cwd=seed)  # the port changes
        work_base = tempfile.mkdtemp(prefix="bench-clone-w.", dir=a.scratch)
        atexit.register(shutil.rmtree, work_base, True)
        work = os.path.join(work_base, "w")
        n = 0
        res = {"clone_agent": [], "clone_git": [], "clone_lg2": [], "rerun_agent": [],
               "rerun_git": []}
        for i in range(a.runs + 1):  # the first round warms up and is dropped
            for kind in ("agent", "git", "lg2") if i % 2 == 0 else ("lg2", "git", "agent"):
                n += 1
                wd = os.path.join(work, "c%d" % n)
                os.makedirs(work, exist_ok=True)
                cmd = (agent(wd) if kind == "agent" else [lg2, url, wd] if kind == "lg2"
                       else ["git", "clone", "-q", url, wd])
                dt = timed(cmd)
                if i:
                    res["clone_" + kind].append(dt)
                if kind == "lg2":
                    continue
                n += 1
                wd = os.path.join(work, "r%d" % n)
                shutil.copytree(seed, wd, symlinks=True)
                subprocess.run(["sync"])
                if kind == "agent":
                    dt = timed(agent(wd))
                else:
                    t = time.perf_counter()
                    timed(["git", "fetch", "-q", "origin"], cwd=wd)
                    timed(["git", "merge", "-q", "--ff-only", "origin/main"], cwd=wd)
                    dt = time.perf_counter() - t
                head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=wd, env=ENV,
                                      capture_output=True, text=True).stdout.strip()
                want = subprocess.run(["git", "rev-parse", "main"], cwd=repo, env=ENV,
                                      capture_output=True, text=True).stdout.strip()
                if head != want:
                    sys.exit("re-run by %s ended on %s, not %s" % (kind, head, want))
                if i:
                    res["rerun_" + kind].append(dt)
            shutil.rmtree(work)  # old clones out of the way, outside the timing
        print("repository: %d files, %d commits, pack %.1f MiB; %d runs each, median (min-max) s"
              % (a.files, a.commits, pack / 1048576.0, a.runs))
        ca, cg = statistics.median(res["clone_agent"]), statistics.median(res["clone_git"])
        ra, rg = statistics.median(res["rerun_agent"]), statistics.median(res["rerun_git"])
        cl = statistics.median(res["clone_lg2"])
        print("clone   agent %s   git clone %s   ratio %.2f" %
              (fmt(res["clone_agent"]), fmt(res["clone_git"]), ca / cg))
        print("clone   bare libgit2 git_clone() %s   ratio to git %.2f, agent to it %.2f" %
              (fmt(res["clone_lg2"]), cl / cg, ca / cl))
        print("re-run  agent %s   git fetch+merge %s   ratio %.2f" %
              (fmt(res["rerun_agent"]), fmt(res["rerun_git"]), ra / rg))
        print("re-run share of a full clone: agent %.1f %%, git %.1f %%" %
              (100 * ra / ca, 100 * rg / cg))
        shutil.rmtree(work_base, ignore_errors=True)
    finally:
        os.killpg(server.pid, 15)
        server.wait()
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
