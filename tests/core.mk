# Tests of the core: pipeline reader, loader, runner, settings, SDK.

# Fixture plugins: one good one, and one source built six broken ways.
check_LTLIBRARIES += tests/fixtures/fx_ok.la tests/fixtures/fx_major.la \
	tests/fixtures/fx_minor.la tests/fixtures/fx_nodesc.la \
	tests/fixtures/fx_initfail.la tests/fixtures/fx_norun.la \
	tests/fixtures/fx_small.la tests/fixtures/fx_oldproc.la tests/fixtures/fx_opttype.la \
	tests/fixtures/hello.la tests/fixtures/stale_module.la tests/fixtures/fx_coreref.la
KT_FX_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
tests_fixtures_fx_ok_la_SOURCES = tests/fixtures/fx_ok.c
tests_fixtures_fx_ok_la_CFLAGS = $(KT_FX_CFLAGS)
tests_fixtures_fx_ok_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_major_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_major_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=1 -DFX_NAME='"fx_major"'
tests_fixtures_fx_major_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_minor_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_minor_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=2 -DFX_NAME='"fx_minor"'
tests_fixtures_fx_minor_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_nodesc_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_nodesc_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=3 -DFX_NAME='"fx_nodesc"'
tests_fixtures_fx_nodesc_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_initfail_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_initfail_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=4 -DFX_NAME='"fx_initfail"'
tests_fixtures_fx_initfail_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_norun_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_norun_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=5 -DFX_NAME='"fx_norun"'
tests_fixtures_fx_norun_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_small_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_small_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=6 -DFX_NAME='"fx_small"'
tests_fixtures_fx_small_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_oldproc_la_SOURCES = tests/fixtures/fx_oldproc.c
tests_fixtures_fx_oldproc_la_CFLAGS = $(KT_FX_CFLAGS)
tests_fixtures_fx_oldproc_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_stale_module_la_SOURCES = tests/fixtures/stale_module.c
tests_fixtures_stale_module_la_CFLAGS = $(KT_FX_CFLAGS)
tests_fixtures_stale_module_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_opttype_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_opttype_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=7 -DFX_NAME='"fx_opttype"'
tests_fixtures_fx_opttype_la_LDFLAGS = $(KT_FIXTURE_LINK)
# calls kr_log, which the executable does not export
tests_fixtures_fx_coreref_la_SOURCES = tests/fixtures/fx_coreref.c
tests_fixtures_fx_coreref_la_CFLAGS = $(KT_FX_CFLAGS)
tests_fixtures_fx_coreref_la_LDFLAGS = $(KT_FIXTURE_LINK)
# the SDK example, also built in tree so the in-tree tests can use it
tests_fixtures_hello_la_SOURCES = plugins/example/hello.c
tests_fixtures_hello_la_CFLAGS = $(KT_FX_CFLAGS)
tests_fixtures_hello_la_LDFLAGS = $(KT_FIXTURE_LINK)

# Option rows across ABI minors (tests/core_loader_rows.c): rows of the
# 1.0 layout, rows larger than the agent's, bound options, a bad default.
check_LTLIBRARIES += tests/fixtures/fx_oldrows.la tests/fixtures/fx_bind.la \
	tests/fixtures/fx_bigrows.la tests/fixtures/fx_baddefault.la
tests_fixtures_fx_oldrows_la_SOURCES = tests/fixtures/fx_oldrows.c
tests_fixtures_fx_oldrows_la_CFLAGS = $(KT_FX_CFLAGS)
tests_fixtures_fx_oldrows_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_bind_la_SOURCES = tests/fixtures/fx_bind.c
tests_fixtures_fx_bind_la_CFLAGS = $(KT_FX_CFLAGS)
tests_fixtures_fx_bind_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_bigrows_la_SOURCES = tests/fixtures/fx_bind.c
tests_fixtures_fx_bigrows_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_BIG
tests_fixtures_fx_bigrows_la_LDFLAGS = $(KT_FIXTURE_LINK)
tests_fixtures_fx_baddefault_la_SOURCES = tests/fixtures/fx_bad.c
tests_fixtures_fx_baddefault_la_CFLAGS = $(KT_FX_CFLAGS) -DFX_CASE=8 -DFX_NAME='"fx_baddefault"'
tests_fixtures_fx_baddefault_la_LDFLAGS = $(KT_FIXTURE_LINK)

# Unit tests link the core's objects directly.
KT_CORE_LIBS = libkrcore.la $(KT_LIBS)
check_PROGRAMS += tests/core_pipeline tests/core_loader tests/core_runner \
	tests/core_settings tests/core_sdk tests/core_edges
TESTS += tests/core_pipeline tests/core_loader tests/core_runner \
	tests/core_settings tests/core_sdk tests/core_edges
check_PROGRAMS += tests/core_loader_rows tests/stages_init
TESTS += tests/core_loader_rows tests/stages_init
tests_core_pipeline_SOURCES = tests/core_pipeline.c
tests_core_pipeline_CFLAGS = $(KT_CFLAGS) $(YAML_CFLAGS)
tests_core_pipeline_LDADD = $(KT_CORE_LIBS)
tests_core_loader_SOURCES = tests/core_loader.c
tests_core_loader_CFLAGS = $(KT_CFLAGS)
tests_core_loader_LDADD = $(KT_CORE_LIBS)
tests_core_runner_SOURCES = tests/core_runner.c
tests_core_runner_CFLAGS = $(KT_CFLAGS)
tests_core_runner_LDADD = $(KT_LIBS)
tests_core_settings_SOURCES = tests/core_settings.c
tests_core_settings_CFLAGS = $(KT_CFLAGS)
tests_core_settings_LDADD = $(KT_CORE_LIBS)
tests_core_loader_rows_SOURCES = tests/core_loader_rows.c
tests_core_loader_rows_CFLAGS = $(KT_CFLAGS)
tests_core_loader_rows_LDADD = $(KT_CORE_LIBS)
tests_stages_init_SOURCES = tests/stages_init.c
tests_stages_init_CFLAGS = $(KT_CFLAGS)
tests_stages_init_LDADD = $(KT_LIBS)
tests_core_sdk_SOURCES = tests/core_sdk.c
tests_core_sdk_CFLAGS = $(KT_CFLAGS)
tests_core_sdk_LDADD = $(KT_LIBS)
# the core's checks at their edges, through the binary (local and API mode)
tests_core_edges_SOURCES = tests/core_edges.c
tests_core_edges_CFLAGS = $(KT_CFLAGS) $(JSONC_CFLAGS)
tests_core_edges_LDADD = $(KT_LIBS) $(JSONC_LIBS)

# The boundary around the core: what the executable exports, what its
# modules and the stages import, a module's check of the core's table.
check_PROGRAMS += tests/core_module_boundary
TESTS += tests/core_module_boundary tests/core_exports.sh
EXTRA_DIST += tests/core_exports.sh
tests_core_module_boundary_SOURCES = tests/core_module_boundary.c
tests_core_module_boundary_CFLAGS = $(KT_CFLAGS)
tests_core_module_boundary_LDADD = $(KT_CORE_LIBS)

# The seeds' init / run / cleanup flow against the API and a git server.
check_PROGRAMS += tests/seed_flow
TESTS += tests/seed_flow
tests_seed_flow_SOURCES = tests/seed_flow.c tests/git_helpers.c tests/git_helpers.h
tests_seed_flow_CFLAGS = $(KT_CFLAGS)
tests_seed_flow_LDADD = $(KT_LIBS)
