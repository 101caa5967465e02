# tests for: run (the process runner and the execute stage)
check_LTLIBRARIES += tests/fixtures/run_always.la
tests_fixtures_run_always_la_SOURCES = tests/fixtures/run_always.c
tests_fixtures_run_always_la_CFLAGS = $(KR_PLUGIN_COMPILE)
tests_fixtures_run_always_la_LDFLAGS = $(KT_FIXTURE_LINK) -export-symbols-regex '^keruta_plugin$$'

RUN_COMMON = tests/run_common.c tests/run_common.h

check_PROGRAMS += tests/run_execute tests/run_output tests/run_proc tests/run_taskfile tests/run_local
TESTS += tests/run_execute tests/run_output tests/run_proc tests/run_taskfile tests/run_local

tests_run_execute_SOURCES = tests/run_execute.c $(RUN_COMMON)
tests_run_execute_CFLAGS = $(KT_CFLAGS)
tests_run_execute_LDADD = $(KT_LIBS)

tests_run_taskfile_SOURCES = tests/run_taskfile.c $(RUN_COMMON)
tests_run_taskfile_CFLAGS = $(KT_CFLAGS)
tests_run_taskfile_LDADD = $(KT_LIBS)

tests_run_local_SOURCES = tests/run_local.c $(RUN_COMMON)
tests_run_local_CFLAGS = $(KT_CFLAGS)
tests_run_local_LDADD = $(KT_LIBS)

tests_run_output_SOURCES = tests/run_output.c $(RUN_COMMON)
tests_run_output_CFLAGS = $(KT_CFLAGS)
tests_run_output_LDADD = $(KT_LIBS)

# in-process: the runner linked from the core library
tests_run_proc_SOURCES = tests/run_proc.c
tests_run_proc_CFLAGS = $(KT_CFLAGS) $(YAML_CFLAGS)
tests_run_proc_LDADD = libkrcore.la $(KT_LIBS)
EXTRA_DIST += tests/readme-commands.sh
