#!/usr/bin/env python3
"""import_cycles.py: no import cycle between the product's source files.

For each thing the build links (the executable with libkrcore, the two
modules, each stage plugin) the make variables name its objects; `nm`
says which global symbols each object defines and which it uses.  File A
imports file B when A uses a symbol B defines, within one linked unit.
Every strongly connected set of two or more files is a cycle: printed
with the symbols that close it, and a failure unless
tests/import_cycles.known lists exactly that set of files (cycles known
and due to be broken; the list is meant to be empty).

Usage: import_cycles.py BUILDDIR SRCDIR   (KR_BUILDDIR, KR_SRCDIR)
"""
import os
import subprocess
import sys
import tempfile

UNITS_MK = r"""
kr-print-units:
	@echo 'kr-unit keruta-agent $(keruta_agent_OBJECTS) $(libkrcore_la_OBJECTS)'
	@echo 'kr-unit backend-api.so $(backend_api_la_OBJECTS)'
	@echo 'kr-unit launcher.so $(launcher_la_OBJECTS)'
	@$(foreach l,$(stage_LTLIBRARIES),echo 'kr-unit $(l) $($(subst -,_,$(subst /,_,$(subst .,_,$(l))))_OBJECTS)';)
"""


def units(build):
    with tempfile.NamedTemporaryFile("w", suffix=".mk", delete=False) as f:
        f.write(UNITS_MK)
        mk = f.name
    try:
        out = subprocess.run(
            [os.environ.get("MAKE", "make").split()[0], "-s", "--no-print-directory", "-C", build,
             "-f", "Makefile", "-f", mk, "kr-print-units"],
            check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(mk)
    result = {}
    for line in out.splitlines():  # make may add "Entering directory" lines
        words = line.split()
        if len(words) > 1 and words[0] == "kr-unit":
            result[words[1]] = words[2:]
    return result


def source_of(obj, src):
    """core/libkrcore_la-agent.lo -> core/agent.c (the target prefix ends at the first '-')."""
    d, base = os.path.split(obj)
    stem = base.rsplit(".", 1)[0]
    if "-" in stem:
        stem = stem.split("-", 1)[1]
    name = os.path.join(d, stem + ".c")
    return name if os.path.exists(os.path.join(src, name)) else obj


def object_file(build, obj):
    d, base = os.path.split(obj)
    stem = base.rsplit(".", 1)[0]
    for cand in (os.path.join(build, d, ".libs", stem + ".o"), os.path.join(build, d, stem + ".o")):
        if os.path.exists(cand):
            return cand
    sys.exit(f"FAIL: no object for {obj} in {build} (build first)")


def symbols(path):
    out = subprocess.run(["nm", "-g", "-P", path], check=True, capture_output=True,
                         text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        (used if kind in "Uw" else defined).add(name)
    return defined, used


def cycles(graph):
    """Strongly connected sets of two or more nodes (Tarjan, iterative)."""
    index, low, on, stack, found = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    n = stack.pop()
                    on.discard(n)
                    scc.append(n)
                    if n == node:
                        break
                if len(scc) > 1:
                    found.append(sorted(scc))
    return found


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KR_BUILDDIR", ".")
    src = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("KR_SRCDIR", ".")
    known_file = os.path.join(src, "tests", "import_cycles.known")
    known = set()
    if os.path.exists(known_file):
        with open(known_file) as f:
            for line in f:
                line = line.split("#", 1)[0].split()
                if line:
                    known.add(tuple(sorted(line)))

    graph = {}  # file -> {file it imports: symbols}
    n_units = 0
    for unit, objs in sorted(units(build).items()):
        if not objs:
            continue
        n_units += 1
        defs, uses = {}, {}
        for obj in objs:
            f = source_of(obj, src)
            d, u = symbols(object_file(build, obj))
            uses[f] = u
            for s in d:
                defs[s] = f
        for f, u in uses.items():
            edges = graph.setdefault(f, {})
            for s in u:
                g = defs.get(s)
                if g and g != f:
                    edges.setdefault(g, set()).add(s)
    if n_units < 3:
        sys.exit(f"FAIL: found only {n_units} linked units in {build}; the make variables changed?")

    fail = 0
    seen = set()
    for scc in cycles({f: set(e) for f, e in graph.items()}):
        key = tuple(scc)
        seen.add(key)
        tag = "KNOWN" if key in known else "FAIL"
        print(f"{tag}: import cycle between {', '.join(scc)}:")
        for f in scc:
            for g in sorted(graph[f]):
                if g in scc:
                    syms = sorted(graph[f][g])
                    more = f" and {len(syms) - 4} more" if len(syms) > 4 else ""
                    print(f"  {f} -> {g}: {', '.join(syms[:4])}{more}")
        if key not in known:
            fail = 1
    for key in sorted(known - seen):
        print(f"FAIL: tests/import_cycles.known lists {' '.join(key)}, which is no longer a "
              "cycle: remove that line")
        fail = 1
    if not fail:
        print(f"PASS: no import cycle between the {len(graph)} files of {n_units} linked units"
              + (f" ({len(seen)} known, listed in tests/import_cycles.known)" if seen else ""))
    return fail


if __name__ == "__main__":
    sys.exit(main())
