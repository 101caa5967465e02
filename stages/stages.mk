# Stage plugins: one shared object each, installed to $(stagedir).  They
# include only <keruta/plugin.h> (and stage_util.h, with task_env.c
# compiled into each stage that uses it), never the core's headers.

# clone is the only part of keruta-agent that links libgit2.
stage_LTLIBRARIES += stages/clone.la
stages_clone_la_SOURCES = stages/clone.c stages/clone_net.c stages/clone_cache.c \
	stages/clone_checkout.c stages/clone.h \
	stages/stage_util.h
stages_clone_la_CFLAGS = $(KR_PLUGIN_COMPILE) $(GIT2_CFLAGS)
stages_clone_la_LDFLAGS = $(KR_PLUGIN_LINK)
stages_clone_la_LIBADD = $(GIT2_LIBS)

# git-exclude is plain file work: no libgit2, so it stays cheap to load.
stage_LTLIBRARIES += stages/git-exclude.la
stages_git_exclude_la_SOURCES = stages/git_exclude.c stages/stage_util.h
stages_git_exclude_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_git_exclude_la_LDFLAGS = $(KR_PLUGIN_LINK)

stage_LTLIBRARIES += stages/install.la
stages_install_la_SOURCES = stages/install.c stages/task_env.c stages/stage_util.h
stages_install_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_install_la_LDFLAGS = $(KR_PLUGIN_LINK)

stage_LTLIBRARIES += stages/document.la
stages_document_la_SOURCES = stages/document.c stages/stage_util.h
stages_document_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_document_la_LDFLAGS = $(KR_PLUGIN_LINK)

stage_LTLIBRARIES += stages/execute.la
stages_execute_la_SOURCES = stages/execute.c stages/task_env.c stages/stage_util.h
stages_execute_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_execute_la_LDFLAGS = $(KR_PLUGIN_LINK)

stage_LTLIBRARIES += stages/collect.la
stages_collect_la_SOURCES = stages/collect.c stages/stage_util.h
stages_collect_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_collect_la_LDFLAGS = $(KR_PLUGIN_LINK)

stage_LTLIBRARIES += stages/cleanup.la
stages_cleanup_la_SOURCES = stages/cleanup.c stages/stage_util.h
stages_cleanup_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_cleanup_la_LDFLAGS = $(KR_PLUGIN_LINK)
