#!/usr/bin/env python3
"""check_render.py RENDERED.yaml OUT.json [EXPECT.json]

Reads keruta-agent render's output back with a YAML 1.1 loader (PyYAML,
as kubectl's would read it), checks the names and labels Kubernetes
requires, writes the documents as a JSON array to OUT.json (for the schema
validators), and, with EXPECT.json ({"env": {NAME: value}}), checks that
every container's literal env values equal the task's text exactly.
Exit 0 when all holds; else prints what does not and exits 1."""
import json
import re
import sys

import yaml

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def main():
    rendered, out = sys.argv[1], sys.argv[2]
    expect = json.load(open(sys.argv[3], encoding="utf-8")) if len(sys.argv) > 3 else {}
    problems = []
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        md = d.get("metadata", {})
        name = md.get("name", "")
        if not (DNS_LABEL.match(name) and len(name) <= 63):
            problems.append(f"name {name!r} is not a DNS-1123 label of at most 63 characters")
        labels = dict(md.get("labels") or {})
        labels.update(((d.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
        for k, v in labels.items():
            if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
                problems.append(f"{name}: label {k}={v!r} is not a valid label value")
        pod = ((d.get("spec") or {}).get("template") or {}).get("spec")
        if not pod:
            continue
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            env = {e["name"]: e.get("value") for e in c.get("env") or [] if "valueFrom" not in e}
            for k, v in (expect.get("env") or {}).items():
                if env.get(k) != v:
                    problems.append(f"{name}/{c['name']}: env {k} is {env.get(k)!r}, expected {v!r}")
            for e in c.get("env") or []:
                if "value" in e and not isinstance(e["value"], str):
                    problems.append(f"{name}/{c['name']}: env {e['name']} read back as {type(e['value']).__name__}")
        want = expect.get("job_name")
        if want and d.get("kind") == "Job" and name != want:
            problems.append(f"Job name {name!r}, expected {want!r}")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(docs, f)
    for p in problems:
        print(p)
    print(f"{len(docs)} documents, {len(problems)} problems")
    sys.exit(1 if problems else 0)


main()
