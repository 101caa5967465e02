# Tests of the launcher (render, dispatch): manifests checked against the
# Kubernetes schemas (tests/schema) and parsed back, and dispatch against
# the Kubernetes API test server (tests/kubeapi) and tests/refapi.
KT_LAUNCHER_COMMON = tests/launcher_util.c tests/launcher_util.h

check_PROGRAMS += tests/launcher_render tests/launcher_dispatch tests/launcher_answers
TESTS += tests/launcher_render tests/launcher_schema.sh tests/launcher_dispatch \
	tests/launcher_answers
# validates the manifests launcher_render leaves; SKIP (77) without npm
TEST_EXTENSIONS = .test .sh
SH_LOG_COMPILER = $(SHELL)
tests/launcher_schema.log: tests/launcher_render.log
clean-local: clean-launcher-manifests
clean-launcher-manifests:
	rm -rf tests/launcher_render.manifests

tests_launcher_render_SOURCES = tests/launcher_render.c $(KT_LAUNCHER_COMMON)
tests_launcher_render_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_launcher_render_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_launcher_answers_SOURCES = tests/launcher_answers.c $(KT_LAUNCHER_COMMON)
tests_launcher_answers_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_launcher_answers_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_launcher_dispatch_SOURCES = tests/launcher_dispatch.c $(KT_LAUNCHER_COMMON)
tests_launcher_dispatch_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_launcher_dispatch_LDADD = $(KT_LIBS) $(JSONC_LIBS)

EXTRA_DIST += tests/kubeapi/kube_api_server.py tests/schema/validate.sh tests/launcher_schema.sh \
	tests/schema/validate.js tests/schema/check_render.py launcher/OPERATOR.md

# Kubernetes events beyond the happy path (own file: merges stay easy).
check_PROGRAMS += tests/launcher_events
TESTS += tests/launcher_events
tests_launcher_events_SOURCES = tests/launcher_events.c $(KT_LAUNCHER_COMMON)
tests_launcher_events_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_launcher_events_LDADD = $(KT_LIBS) $(JSONC_LIBS)

# How dispatch finds the Kubernetes API and rides out its errors.
check_PROGRAMS += tests/launcher_kube
TESTS += tests/launcher_kube
tests_launcher_kube_SOURCES = tests/launcher_kube.c $(KT_LAUNCHER_COMMON)
tests_launcher_kube_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_launcher_kube_LDADD = $(KT_LIBS) $(JSONC_LIBS)
