# stage plugins: git
# clone is the only part of keruta-agent that links libgit2.
stage_LTLIBRARIES += stages/clone.la
stages_clone_la_SOURCES = stages/clone.c stages/clone_net.c stages/clone_cache.c stages/clone.h
stages_clone_la_CFLAGS = $(KR_PLUGIN_COMPILE) $(GIT2_CFLAGS)
stages_clone_la_LDFLAGS = $(KR_PLUGIN_LINK)
stages_clone_la_LIBADD = $(GIT2_LIBS)

# git-exclude is plain file work: no libgit2, so it stays cheap to load.
stage_LTLIBRARIES += stages/git-exclude.la
stages_git_exclude_la_SOURCES = stages/git_exclude.c
stages_git_exclude_la_CFLAGS = $(KR_PLUGIN_COMPILE)
stages_git_exclude_la_LDFLAGS = $(KR_PLUGIN_LINK)
