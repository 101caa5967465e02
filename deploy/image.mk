# deploy/: example Kubernetes manifests for operators, and the agent image.
# `make image` builds localhost/keruta-agent:VERSION (and :latest) from this
# build tree with podman, offline, on a Debian minbase made locally by
# debootstrap (needs root; see deploy/image/build-image.sh).
KERUTA_IMAGE = localhost/keruta-agent

image: all
	MAKE='$(MAKE)' $(SHELL) $(srcdir)/deploy/image/build-image.sh '$(abs_top_builddir)' '$(KERUTA_IMAGE)'
.PHONY: image

EXTRA_DIST += deploy/README.md deploy/kustomization.yaml deploy/namespace.yaml \
	deploy/serviceaccounts.yaml deploy/rbac.yaml deploy/secret-api-token.yaml \
	deploy/pipeline-configmap.yaml deploy/networkpolicy.yaml \
	deploy/gen-pipeline-configmap.sh \
	deploy/image/Containerfile deploy/image/mkbase.sh deploy/image/build-image.sh
