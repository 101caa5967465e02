# libFuzzer harnesses: built by `make` after ./configure --enable-fuzzing
# CC=clang, run by tests/fuzz/run (tests/README.md).  Each harness links
# the product's own objects (libkrcore, backends/http.c, ...); the ones
# that reach static functions include the source file itself.
EXTRA_DIST += tests/fuzz/run tests/fuzz/corpus tests/fuzz/fuzz.h tests/fuzz/masker.dict \
	tests/fuzz/fuzz_pipeline.c tests/fuzz/fuzz_task.c tests/fuzz/fuzz_api_answers.c \
	tests/fuzz/fuzz_watch.c tests/fuzz/fuzz_numbers.c tests/fuzz/fuzz_http_text.c \
	tests/fuzz/fuzz_json_escape.c tests/fuzz/fuzz_masker.c

if FUZZING
FUZZ_HARNESSES = tests/fuzz/fuzz_pipeline tests/fuzz/fuzz_task tests/fuzz/fuzz_api_answers \
	tests/fuzz/fuzz_watch tests/fuzz/fuzz_numbers tests/fuzz/fuzz_http_text \
	tests/fuzz/fuzz_json_escape tests/fuzz/fuzz_masker
noinst_PROGRAMS = $(FUZZ_HARNESSES)
FUZZ_CFLAGS = $(AM_CFLAGS) -I$(srcdir)/backends -I$(srcdir)/launcher -I$(srcdir)/tests/fuzz \
	$(YAML_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS)
FUZZ_LINK = -fsanitize=fuzzer
FUZZ_LIBS = libkrcore.la $(YAML_LIBS) $(CURL_LIBS) $(JSONC_LIBS) $(PTHREAD_LIBS)

tests_fuzz_fuzz_pipeline_SOURCES = tests/fuzz/fuzz_pipeline.c
tests_fuzz_fuzz_pipeline_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_pipeline_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_pipeline_LDADD = $(FUZZ_LIBS)

tests_fuzz_fuzz_task_SOURCES = tests/fuzz/fuzz_task.c
tests_fuzz_fuzz_task_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_task_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_task_LDADD = $(FUZZ_LIBS)

tests_fuzz_fuzz_api_answers_SOURCES = tests/fuzz/fuzz_api_answers.c backends/api_paths.c backends/http.c \
	backends/logship.c
tests_fuzz_fuzz_api_answers_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_api_answers_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_api_answers_LDADD = $(FUZZ_LIBS)

tests_fuzz_fuzz_watch_SOURCES = tests/fuzz/fuzz_watch.c backends/http.c
tests_fuzz_fuzz_watch_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_watch_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_watch_LDADD = $(FUZZ_LIBS)

tests_fuzz_fuzz_numbers_SOURCES = tests/fuzz/fuzz_numbers.c backends/http.c
tests_fuzz_fuzz_numbers_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_numbers_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_numbers_LDADD = $(FUZZ_LIBS)

tests_fuzz_fuzz_http_text_SOURCES = tests/fuzz/fuzz_http_text.c backends/http.c
tests_fuzz_fuzz_http_text_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_http_text_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_http_text_LDADD = $(FUZZ_LIBS)

tests_fuzz_fuzz_json_escape_SOURCES = tests/fuzz/fuzz_json_escape.c
tests_fuzz_fuzz_json_escape_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_json_escape_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_json_escape_LDADD = $(FUZZ_LIBS)

tests_fuzz_fuzz_masker_SOURCES = tests/fuzz/fuzz_masker.c
tests_fuzz_fuzz_masker_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_masker_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_masker_LDADD = $(FUZZ_LIBS)
endif
