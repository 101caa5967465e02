#!/usr/bin/env python3
"""job-to-pod.py JOB.yaml POD_NAME SECRET_NAME [TOKEN_DIR]

Turns what `keruta-agent render` printed (a Job, the task's Job or its
cleanup Job, and the PersistentVolumeClaim of a parent task) into what
podman 4.3 can play (`podman kube play` runs no Jobs; their pod template is
the part that matters).  A PersistentVolumeClaim is kept as is: kube play
makes it a named volume of the claim's name, and a pod volume's
`persistentVolumeClaim.claimName` mounts the named volume of that name, so
the cleanup Job and a child task's Job (claim git-repo-pvc-{parentId})
mount the parent's volume with no change.  The Job becomes a Pod, changed
only where podman and this test's rules differ from a cluster:
  - hostNetwork: true (the pod reaches the test servers on 127.0.0.1 only);
  - emptyDir volumes renamed after the pod (podman makes an emptyDir a
    named volume shared by every pod using that name);
  - the token Secret renamed (podman secrets are per host, not per
    namespace); a volume from it (the agent's --api-token-file) becomes a
    read-only hostPath of TOKEN_DIR, a directory holding the file `token`
    (podman's secret volumes want a Kubernetes Secret stored as the podman
    secret, this test stores the flat form secretKeyRef reads);
  - restartPolicy Never, and init containers kept after they succeed so
    that their exit codes and logs can be checked.
Prints the claims and then the Pod as YAML documents.  Everything else is
the rendered spec as is (a child's nodeAffinity too: podman ignores it).
"""
import sys

import yaml


def main():
    job_file, pod_name, secret = sys.argv[1:4]
    token_dir = sys.argv[4] if len(sys.argv) > 4 else None
    docs = [d for d in yaml.safe_load_all(open(job_file)) if d]
    jobs = [d for d in docs if d.get("kind") == "Job"]
    if len(jobs) != 1:
        sys.exit("job-to-pod: want exactly one Job in %s, found %d" % (job_file, len(jobs)))
    claims = [d for d in docs if d.get("kind") == "PersistentVolumeClaim"]
    other = [d.get("kind") for d in docs if d not in jobs and d not in claims]
    if other:
        sys.exit("job-to-pod: %s holds objects this test does not play: %s" % (job_file, other))
    job = jobs[0]
    template = job["spec"]["template"]
    meta = dict(template.get("metadata") or {})
    meta["name"] = pod_name
    meta["labels"] = dict(meta.get("labels") or {}, **{"job-name": job["metadata"]["name"]})
    meta["annotations"] = dict(meta.get("annotations") or {},
                               **{"io.podman.annotations.init.container.type": "always"})
    spec = dict(template["spec"])
    spec["hostNetwork"] = True
    spec["restartPolicy"] = "Never"
    renamed = {}
    for vol in spec.get("volumes", []):
        if "emptyDir" in vol:
            renamed[vol["name"]] = "%s-%s" % (pod_name, vol["name"])
            vol["name"] = renamed[vol["name"]]
        sec = vol.get("secret")
        if sec and sec.get("secretName") == "keruta-api-token":
            if not token_dir:
                sys.exit("job-to-pod: the Job mounts the token Secret; give TOKEN_DIR")
            del vol["secret"]
            vol["hostPath"] = {"path": token_dir, "type": "Directory"}
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for m in c.get("volumeMounts", []):
            m["name"] = renamed.get(m["name"], m["name"])
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref.get("name") == "keruta-api-token":
                ref["name"] = secret
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    sys.stdout.write(yaml.safe_dump_all(claims + [pod], sort_keys=False))


if __name__ == "__main__":
    main()
