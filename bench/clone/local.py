#!/usr/bin/env python3
"""Clone of a large repository from a local path: the clone stage against
`git clone --no-local` (the git CLI copying through a pack, as libgit2's
own local transport would).

    python3 bench/clone/local.py --agent BUILD/keruta-agent \\
        --plugins BUILD/stages/.libs [--runs 3] [--mib 150]

Generates (seeded) a bare repository of about --mib MiB of pack, mostly
incompressible binary history, then times, alternating the two tools run
by run, a fresh clone into a directory on the same file system as the
repository (so the stage may hard-link, as `git clone` of a path does).
Prints medians (min-max) and the ratio stage / git (the aim: <= 1.0).
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import fmt, generate, sh, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=150, help="about this much pack")
    ap.add_argument("--keep", help="work in this directory and keep it")
    a = ap.parse_args()
    base = a.keep or tempfile.mkdtemp(prefix="bench-clone-local.")
    os.makedirs(base, exist_ok=True)
    repo = os.path.join(base, "big.git")
    commits = 300
    asset = a.mib * 1024 * 1024 // commits
    if not os.path.exists(repo):
        t = time.perf_counter()
        generate(repo, 3000, commits, asset_size=asset)
        print("generated 3000 files x %d commits (%d KiB assets) in %.1f s"
              % (commits, asset // 1024, time.perf_counter() - t))
    pack = sum(os.path.getsize(os.path.join(repo, "objects/pack", f))
               for f in os.listdir(os.path.join(repo, "objects/pack")))
    pipe = os.path.join(base, "pipeline.yaml")
    with open(pipe, "w") as f:
        f.write("version: 1\nphases:\n  execute: [clone]\nstages:\n  clone: { plugin: clone }\n")
    task = os.path.join(base, "task.yaml")
    with open(task, "w") as f:
        f.write('id: bench\nrepository: { url: "%s", ref: main }\n' % repo)
    work = os.path.join(base, "w")
    res = {"agent": [], "git": []}
    try:
        n = 0
        for i in range(a.runs + 1):  # the first round warms the page cache; dropped
            for kind in ("agent", "git") if i % 2 == 0 else ("git", "agent"):
                n += 1
                wd = os.path.join(work, "c%d" % n)
                os.makedirs(work, exist_ok=True)
                cmd = ([a.agent, "execute", "--pipeline", pipe, "--task-file", task,
                        "--work-dir", wd, "--backend", "local", "--termination-log", "",
                        "--log-format", "json", "--plugin-dir", a.plugins]
                       if kind == "agent" else ["git", "clone", "-q", "--no-local", repo, wd])
                dt = timed(cmd)
                if i:
                    res[kind].append(dt)
                shutil.rmtree(wd)
                sh(["sync"])
        print("repository: pack %.1f MiB, %d commits; %d runs each, median (min-max) s"
              % (pack / 1048576.0, commits, a.runs))
        ca, cg = statistics.median(res["agent"]), statistics.median(res["git"])
        print("local clone   agent %s   git clone --no-local %s   ratio %.2f"
              % (fmt(res["agent"]), fmt(res["git"]), ca / cg))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
