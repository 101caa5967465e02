# stage plugins: init (install, document; clone and git-exclude are in git.mk)
stage_LTLIBRARIES += stages/install.la stages/document.la
stages_install_la_SOURCES = stages/install.c stages/task_env.c stages/stage_util.h
stages_install_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_install_la_LDFLAGS = $(KR_PLUGIN_LINK)
stages_document_la_SOURCES = stages/document.c
stages_document_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_document_la_LDFLAGS = $(KR_PLUGIN_LINK)
