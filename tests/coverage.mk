# `make coverage` (configure --enable-coverage): the whole suite, then line
# and branch coverage of the product code (core/, stages/, backends/,
# launcher/) per file, with the totals last.  The suite's verdict is the
# target's: the table is printed even when a test fails.  coverage.info
# stays behind for genhtml.
KR_COV_RC = --rc lcov_branch_coverage=1
# lcov records paths with `..` resolved; abs_top_srcdir keeps them
# (../configure gives BUILD/..), so the patterns use the resolved source dir.
KR_COV_PRODUCT = "$$src/core/*" "$$src/stages/*" "$$src/backends/*" "$$src/launcher/*"

.PHONY: coverage coverage-report
if KR_COVERAGE
coverage:
	$(LCOV) -q --zerocounters -d .
	@st=0; $(MAKE) $(AM_MAKEFLAGS) check || st=$$?; \
	$(MAKE) $(AM_MAKEFLAGS) coverage-report || st=1; exit $$st

coverage-report:
	$(LCOV) -q $(KR_COV_RC) --capture -d . -o coverage-all.info
	src=$$(cd $(top_srcdir) && pwd -P); \
	$(LCOV) -q $(KR_COV_RC) --extract coverage-all.info $(KR_COV_PRODUCT) -o coverage.info
	$(LCOV) $(KR_COV_RC) --list coverage.info
	$(LCOV) $(KR_COV_RC) --summary coverage.info
else
coverage coverage-report:
	@echo "make coverage: configure with --enable-coverage first (lcov needed: apt-get install lcov)" >&2; exit 1
endif
CLEANFILES += coverage-all.info coverage.info
clean-local: clean-coverage
clean-coverage:
	-find . -name '*.gcda' -o -name '*.gcno' | xargs rm -f
.PHONY: clean-coverage
