#!/usr/bin/env python3
"""The repository cache (git_cache) against `git clone`, same server, same run.

    python3 bench/clone/cache.py --agent BUILD/keruta-agent \
        --plugins BUILD/stages/.libs [--runs 5] [--tasks 4]

The repository is bench.py's (generated with git fast-import, seeded), served
over smart HTTP on loopback (tests/gitserver/gitserve.py).  Cases, the tools
alternating run by run, after one dropped warm-up round:
  warm:       a new task whose cache mirror is one commit behind the remote
              (the mirror restored from a snapshot outside the timing), against
              `git clone` of the same remote;
  cold:       a new task with an empty cache dir (mirror made, then the clone
              taken from it), against `git clone`;
  concurrent: --tasks tasks started at once on one warm cache, against as many
              `git clone`s at once (wall time of the whole batch).
Wall time, and CPU time (user+sys of the processes, less sensitive to a
loaded machine).  Every clone is checked to end on the remote's main.  Clones and the cache are
made on --scratch (one file system: objects are hard-linked).
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ENV, GITSERVE, fmt, generate, sh  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--commits", type=int, default=200)
    ap.add_argument("--scratch", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="bench-cache.")
    srv = os.path.join(base, "srv")
    os.makedirs(srv)
    repo = os.path.join(srv, "repo.git")
    generate(repo, a.files, a.commits)
    new = subprocess.run(["git", "rev-parse", "main"], cwd=repo, env=ENV, capture_output=True,
                         text=True).stdout.strip()
    port_file = os.path.join(base, "port")
    server = subprocess.Popen([sys.executable, GITSERVE, "http", "--root", srv, "--port-file",
                               port_file, "--workers", str(max(4, a.tasks))],
                              start_new_session=True)
    work = tempfile.mkdtemp(prefix="bench-cache-w.", dir=a.scratch)
    try:
        for _ in range(300):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        url = "http://127.0.0.1:%d/anon/repo.git" % port
        pipe = os.path.join(base, "pipeline.yaml")
        with open(pipe, "w") as f:
            f.write("version: 1\nphases:\n  execute: [clone]\nstages:\n"
                    "  clone: { plugin: clone }\n")
        task = os.path.join(base, "task.yaml")
        with open(task, "w") as f:
            f.write('id: bench\nrepository: { url: "%s", ref: main }\n' % url)

        def agent(wd, cache):
            return [a.agent, "execute", "--pipeline", pipe, "--task-file", task, "--work-dir",
                    wd, "--backend", "local", "--termination-log", "", "--log-format", "json",
                    "--plugin-dir", a.plugins, "--git-cache", cache]

        # The warm snapshot: a cache made while the remote's main was one
        # commit behind.
        snap = os.path.join(work, "snap")
        sh(["git", "update-ref", "refs/heads/main", "refs/heads/prev"], cwd=repo)
        sh(agent(os.path.join(work, "seed"), snap), stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        sh(["git", "update-ref", "refs/heads/main", new], cwd=repo)
        shutil.rmtree(os.path.join(work, "seed"))

        def start(cmd):
            return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)

        def cpu():
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            return ru.ru_utime + ru.ru_stime

        def batch(cmds, wds):
            c0 = cpu()
            t = time.perf_counter()
            procs = [start(c) for c in cmds]
            errs = [p.communicate()[1] for p in procs]
            dt = time.perf_counter() - t
            cpus.append(cpu() - c0)
            for p, e, c in zip(procs, errs, cmds):
                if p.returncode:
                    sys.exit("failed: %s\n%s" % (" ".join(c), e.decode(errors="replace")))
            for wd in wds:
                head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=wd, env=ENV,
                                      capture_output=True, text=True).stdout.strip()
                if head != new:
                    sys.exit("%s ended on %s, not %s" % (wd, head, new))
            return dt

        res = {k + cpu_: [] for k in ("warm_agent", "warm_git", "cold_agent", "cold_git",
                                      "conc_agent", "conc_git") for cpu_ in ("", "_cpu")}
        n = 0
        for i in range(a.runs + 1):  # the first round warms up and is dropped
            for kind in ("agent", "git") if i % 2 == 0 else ("git", "agent"):
                for case in ("warm", "cold", "conc"):
                    cache = os.path.join(work, "cache")
                    shutil.rmtree(cache, ignore_errors=True)
                    if case != "cold":
                        shutil.copytree(snap, cache, symlinks=True)
                    count = a.tasks if case == "conc" else 1
                    wds = []
                    for _ in range(count):
                        n += 1
                        wds.append(os.path.join(work, "c%d" % n))
                    cmds = [agent(wd, cache) if kind == "agent" else
                            ["git", "clone", "-q", url, wd] for wd in wds]
                    subprocess.run(["sync"])
                    cpus = []
                    dt = batch(cmds, wds)
                    if i:
                        res["%s_%s" % (case, kind)].append(dt)
                        res["%s_%s_cpu" % (case, kind)].append(cpus[0])
                    for wd in wds:
                        shutil.rmtree(wd)
        pack = sum(os.path.getsize(os.path.join(repo, "objects/pack", f))
                   for f in os.listdir(os.path.join(repo, "objects/pack")))
        print("repository: %d files, %d commits, pack %.1f MiB; %d runs each, median (min-max) s"
              % (a.files, a.commits, pack / 1048576.0, a.runs))
        names = {"warm": "warm cache, 1 new commit", "cold": "cold cache",
                 "conc": "%d tasks at once, warm" % a.tasks}
        for case in ("warm", "cold", "conc"):
            ag, gi = res[case + "_agent"], res[case + "_git"]
            print("%-26s agent %s   git clone %s   ratio %.2f" %
                  (names[case], fmt(ag), fmt(gi), statistics.median(ag) / statistics.median(gi)))
            ag, gi = res[case + "_agent_cpu"], res[case + "_git_cpu"]
            print("%-26s agent %s   git clone %s   ratio %.2f  (CPU s, user+sys)" %
                  ("", fmt(ag), fmt(gi), statistics.median(ag) / statistics.median(gi)))
    finally:
        os.killpg(server.pid, 15)
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
