#!/bin/sh
# man_options.sh: doc/keruta-agent.1 documents exactly the options the
# agent has.  The settings table (core/settings.c) is the one list of
# options; `keruta-agent COMMAND --help` prints it, and this test fails
# when the man page misses a flag or an environment variable of it, or
# names a flag the agent does not have.
src=${KR_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
agent=${KR_BUILDDIR:-.}/keruta-agent
man=$src/doc/keruta-agent.1
[ -x "$agent" ] || { echo "FAIL: no agent at $agent (build it first)"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/man-options.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
commands=$("$agent" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 { print $1 }')
[ -n "$commands" ] || { echo "FAIL: keruta-agent --help lists no commands"; exit 1; }
for c in $commands; do
	"$agent" "$c" --help > "$tmp/help.$c" 2>&1 || true
done
cat "$tmp"/help.* | grep -o -E '^  --[a-z0-9-]+' | sed 's/^ *//' | grep -v -x -e '--help' | sort -u > "$tmp/flags"
cat "$tmp"/help.* | grep -o -E '\[env [^]]*\]' | sed 's/^\[env //; s/\]$//' | tr ',' '\n' |
	sed 's/^ *//; s/ *$//' | grep -v '^$' | sort -u > "$tmp/envs"
# the man page's text with troff's escaped hyphens made plain
sed 's/\\-/-/g' "$man" > "$tmp/man"

fail=0
n_flags=$(wc -l < "$tmp/flags")
n_envs=$(wc -l < "$tmp/envs")
[ "$n_flags" -ge 20 ] || { echo "FAIL: only $n_flags flags found in --help; the parser is broken"; exit 1; }
while IFS= read -r f; do
	grep -q -e "$f\\b" "$tmp/man" || { echo "FAIL: $f is an option of keruta-agent but not in doc/keruta-agent.1"; fail=1; }
done < "$tmp/flags"
while IFS= read -r e; do
	grep -q -w -e "$e" "$tmp/man" || { echo "FAIL: environment variable $e is read by keruta-agent but not in doc/keruta-agent.1"; fail=1; }
done < "$tmp/envs"
# every flag the man page names must exist (--help itself aside)
grep -o -E -e '--[a-z][a-z0-9-]*[a-z0-9]' "$tmp/man" | sort -u | grep -v -x -e '--help' > "$tmp/manflags"
while IFS= read -r f; do
	grep -q -x -e "$f" "$tmp/flags" || { echo "FAIL: doc/keruta-agent.1 names $f, which no command has"; fail=1; }
done < "$tmp/manflags"
[ "$fail" = 0 ] && echo "PASS: doc/keruta-agent.1 documents all $n_flags options and $n_envs environment variables, and no other option"
exit "$fail"
