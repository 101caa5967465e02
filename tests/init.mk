# tests for: init (install, document), in local mode and against the
# reference keruta-api server
EXTRA_DIST += tests/init_harness.c
check_PROGRAMS += tests/init_install tests/init_document tests/init_api
TESTS += tests/init_install tests/init_document tests/init_api
tests_init_install_SOURCES = tests/init_install.c
tests_init_install_CFLAGS = $(KT_CFLAGS)
tests_init_install_LDADD = $(KT_LIBS)
tests_init_document_SOURCES = tests/init_document.c
tests_init_document_CFLAGS = $(KT_CFLAGS)
tests_init_document_LDADD = $(KT_LIBS)
tests_init_api_SOURCES = tests/init_api.c
tests_init_api_CFLAGS = $(KT_CFLAGS)
tests_init_api_LDADD = $(KT_LIBS)
