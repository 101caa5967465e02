# stage plugins: run (execute; collect and cleanup are in collect.mk)
stage_LTLIBRARIES += stages/execute.la
stages_execute_la_SOURCES = stages/execute.c stages/task_env.c stages/stage_util.h
stages_execute_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_execute_la_LDFLAGS = $(KR_PLUGIN_LINK)
