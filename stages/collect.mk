# stage plugins: collect, cleanup
stage_LTLIBRARIES += stages/collect.la stages/cleanup.la
stages_collect_la_SOURCES = stages/collect.c
stages_collect_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_collect_la_LDFLAGS = $(KR_PLUGIN_LINK)
stages_cleanup_la_SOURCES = stages/cleanup.c
stages_cleanup_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_cleanup_la_LDFLAGS = $(KR_PLUGIN_LINK)
