# Tests at the edges where planted bugs went unnoticed: secret masking,
# which failure is reported, the stages' own safety checks.
check_PROGRAMS += tests/edge_masking
TESTS += tests/edge_masking
tests_edge_masking_SOURCES = tests/edge_masking.c $(RUN_COMMON)
tests_edge_masking_CFLAGS = $(KT_CFLAGS)
tests_edge_masking_LDADD = $(KT_LIBS)
