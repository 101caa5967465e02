# Tests at the edges where planted bugs went unnoticed: secret masking,
# which failure is reported, the stages' own safety checks.
check_PROGRAMS += tests/edge_masking
TESTS += tests/edge_masking
tests_edge_masking_SOURCES = tests/edge_masking.c $(RUN_COMMON)
tests_edge_masking_CFLAGS = $(KT_CFLAGS)
tests_edge_masking_LDADD = $(KT_LIBS)
check_PROGRAMS += tests/edge_stages
TESTS += tests/edge_stages
tests_edge_stages_SOURCES = tests/edge_stages.c $(RUN_COMMON)
tests_edge_stages_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_edge_stages_LDADD = $(KT_LIBS) $(JSONC_LIBS)
check_PROGRAMS += tests/edge_api
TESTS += tests/edge_api
tests_edge_api_SOURCES = tests/edge_api.c
tests_edge_api_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_edge_api_LDADD = $(KT_LIBS) $(JSONC_LIBS)
