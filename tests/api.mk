# Tests of the keruta-api backend module (backends/), end to end against
# the reference server (tests/refapi), plus unit tests of its helpers.

# A stage that ships numbered log lines and uses the backend services.
check_LTLIBRARIES += tests/fixtures/api_lines.la
tests_fixtures_api_lines_la_SOURCES = tests/fixtures/api_lines.c
tests_fixtures_api_lines_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
tests_fixtures_api_lines_la_LDFLAGS = $(KT_FIXTURE_LINK)

KT_API_COMMON = tests/api_util.c tests/api_util.h

check_PROGRAMS += tests/api_unit tests/api_faults tests/api_logs tests/api_tls \
	tests/api_backends tests/api_noload tests/api_script tests/api_token
TESTS += tests/api_unit tests/api_faults tests/api_logs tests/api_tls \
	tests/api_backends tests/api_noload tests/api_script tests/api_token

# The module's helpers compiled in, over the core's objects.
tests_api_unit_SOURCES = tests/api_unit.c backends/http.c backends/http.h \
	backends/logship.c backends/logship.h
tests_api_unit_CFLAGS = $(KT_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS) -I$(srcdir)/backends
tests_api_unit_LDADD = libkrcore.la $(KT_LIBS) $(CURL_LIBS) $(JSONC_LIBS) $(PTHREAD_LIBS)

tests_api_faults_SOURCES = tests/api_faults.c $(KT_API_COMMON)
tests_api_faults_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_api_faults_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_api_token_SOURCES = tests/api_token.c $(KT_API_COMMON)
tests_api_token_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_api_token_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_api_script_SOURCES = tests/api_script.c $(KT_API_COMMON)
tests_api_script_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_api_script_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_api_logs_SOURCES = tests/api_logs.c $(KT_API_COMMON)
tests_api_logs_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_api_logs_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_api_tls_SOURCES = tests/api_tls.c $(KT_API_COMMON)
tests_api_tls_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_api_tls_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_api_backends_SOURCES = tests/api_backends.c $(KT_API_COMMON)
tests_api_backends_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_api_backends_LDADD = $(KT_LIBS) $(JSONC_LIBS)
tests_api_noload_SOURCES = tests/api_noload.c $(KT_API_COMMON)
tests_api_noload_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_api_noload_LDADD = $(KT_LIBS) $(JSONC_LIBS)
