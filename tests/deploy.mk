# Tests of deploy/ and the agent image (tests/e2e/).
#  - deploy-check.sh (in `make check`): the pipeline ConfigMap is in sync with
#    conf/pipeline.yaml; every manifest validates against the strict
#    Kubernetes schemas and kubernetes-models; RBAC and network policies are
#    what deploy/ promises.  Skips its node part without node and npm.
#  - `make e2e-podman`: the agent image run by `podman kube play` against
#    loopback git and keruta-api servers, in the emptyDir layout and the
#    seeds' PVC layout with cleanup Jobs and a child task (root, podman; two
#    or three minutes once the image exists).  Not part of `make check`.
TESTS += tests/e2e/deploy-check.sh
EXTRA_DIST += tests/e2e/deploy-check.sh tests/e2e/podman-e2e.sh \
	tests/e2e/job-to-pod.py tests/e2e/schema/k8s-validate.js tests/e2e/schema/deploy-policy.js

e2e-podman: image
	KR_SRCDIR='$(abs_top_srcdir)' KR_BUILDDIR='$(abs_top_builddir)' \
	KERUTA_E2E_IMAGE='$(KERUTA_IMAGE):latest' \
	$(SHELL) $(srcdir)/tests/e2e/podman-e2e.sh
.PHONY: e2e-podman
