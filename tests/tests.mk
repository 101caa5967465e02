# Tests: Criterion unit tests, fixture plugins, and end-to-end tests that
# run the real binary against real peers on loopback.  Each part of the
# product keeps its tests in its own fragment (tests/*.mk).

check_LTLIBRARIES += tests/lib/libkrtest.la
tests_lib_libkrtest_la_SOURCES = tests/lib/krtest.c tests/lib/krtest.h tests/lib/fixture.c \
	tests/lib/fixture.h

# Flags for Criterion test programs.
KT_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) -D_GNU_SOURCE -I$(srcdir)/tests/lib
KT_LIBS = tests/lib/libkrtest.la $(CRITERION_LIBS)

# Fixture plugins are built as real shared objects (-rpath forces that).
KT_FIXTURE_LINK = -module -avoid-version -shared -rpath $(abs_builddir)/tests/fixtures

AM_TESTS_ENVIRONMENT = \
	KR_SRCDIR='$(abs_top_srcdir)'; export KR_SRCDIR; \
	KR_BUILDDIR='$(abs_top_builddir)'; export KR_BUILDDIR; \
	KR_OPENAPI='$(abs_top_srcdir)/tests/reference/keruta-api.openapi.yaml'; export KR_OPENAPI; \
	KERUTA_PLUGIN_PATH='$(abs_top_builddir)/stages/.libs'; export KERUTA_PLUGIN_PATH; \
	KERUTA_API_MODULE='$(abs_top_builddir)/.libs/backend-api.so'; export KERUTA_API_MODULE; \
	MAKE='$(MAKE)'; export MAKE; \
	CRITERION_NO_EARLY_EXIT=1; export CRITERION_NO_EARLY_EXIT; \
	CRITERION_VERBOSITY_LEVEL=1; export CRITERION_VERBOSITY_LEVEL;

EXTRA_DIST += tests/refapi tests/reference tests/schema/node-modules.sh \
	tests/mutation/run tests/mutation/map tests/mutation/equivalent tests/README.md
EXTRA_DIST += tests/valgrind/run tests/valgrind/libraries.supp

# The man page names every option and environment variable of the
# settings table, and no other option.
TESTS += tests/man_options.sh
EXTRA_DIST += tests/man_options.sh

# Every product file has its test programs in tests/mutation/map, and
# tests/README.md's table is the one made from it.
TESTS += tests/test_map.sh
EXTRA_DIST += tests/test_map.sh
# No import cycle between the product's files (the symbols their objects
# define and use); tests/import_cycles.known lists the ones not yet broken.
TESTS += tests/import_cycles.sh
EXTRA_DIST += tests/import_cycles.sh tests/import_cycles.py tests/import_cycles.known

# Test programs (and the agent they start) under valgrind: tests/README.md.
check-valgrind: all
	$(MAKE) $(AM_MAKEFLAGS) $(check_PROGRAMS) $(check_LTLIBRARIES)
	$(SHELL) $(srcdir)/tests/valgrind/run -b $(abs_top_builddir)
.PHONY: check-valgrind

include $(srcdir)/tests/core.mk
include $(srcdir)/tests/api.mk
include $(srcdir)/tests/git.mk
include $(srcdir)/tests/init.mk
include $(srcdir)/tests/run.mk
include $(srcdir)/tests/collect.mk
include $(srcdir)/tests/deploy.mk
include $(srcdir)/tests/launcher.mk
include $(srcdir)/tests/edge.mk
include $(srcdir)/tests/coverage.mk
