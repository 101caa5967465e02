# tests for: collect, cleanup (they share tests/init_harness.c), in local
# mode and against the reference keruta-api server
check_PROGRAMS += tests/collect_collect tests/collect_cleanup tests/collect_api tests/collect_area
TESTS += tests/collect_collect tests/collect_cleanup tests/collect_api tests/collect_area
tests_collect_collect_SOURCES = tests/collect_collect.c
tests_collect_collect_CFLAGS = $(KT_CFLAGS)
tests_collect_collect_LDADD = $(KT_LIBS)
tests_collect_cleanup_SOURCES = tests/collect_cleanup.c
tests_collect_cleanup_CFLAGS = $(KT_CFLAGS)
tests_collect_cleanup_LDADD = $(KT_LIBS)
tests_collect_api_SOURCES = tests/collect_api.c
tests_collect_api_CFLAGS = $(KT_CFLAGS)
tests_collect_api_LDADD = $(KT_LIBS)
tests_collect_area_SOURCES = tests/collect_area.c
tests_collect_area_CFLAGS = $(KT_CFLAGS)
tests_collect_area_LDADD = $(KT_LIBS)
