# tests for: git (clone, git-exclude).  Real git servers on loopback come
# from tests/gitserver/gitserve.py (git daemon; nginx + fcgiwrap + git
# http-backend).  Debian packages: git nginx fcgiwrap openssl python3.
EXTRA_DIST += tests/gitserver/gitserve.py
check_PROGRAMS += tests/git_clone tests/git_exclude tests/git_cache tests/git_checkout
TESTS += tests/git_clone tests/git_exclude tests/git_cache tests/git_checkout
tests_git_clone_SOURCES = tests/git_clone.c tests/git_helpers.c tests/git_helpers.h
tests_git_clone_CFLAGS = $(KT_CFLAGS)
tests_git_clone_LDADD = $(KT_LIBS)
tests_git_exclude_SOURCES = tests/git_exclude.c tests/git_helpers.c tests/git_helpers.h
tests_git_exclude_CFLAGS = $(KT_CFLAGS)
tests_git_exclude_LDADD = $(KT_LIBS)
tests_git_cache_SOURCES = tests/git_cache.c tests/git_helpers.c tests/git_helpers.h
tests_git_cache_CFLAGS = $(KT_CFLAGS)
tests_git_cache_LDADD = $(KT_LIBS)
tests_git_checkout_SOURCES = tests/git_checkout.c tests/git_helpers.c tests/git_helpers.h
tests_git_checkout_CFLAGS = $(KT_CFLAGS)
tests_git_checkout_LDADD = $(KT_LIBS)
