#!/bin/sh
# test_map.sh: tests/mutation/map names the test programs of every product
# .c file (core/, backends/, launcher/, stages/), only files and programs
# that exist, and the table in tests/README.md is the one made from it.
#
#   sh tests/test_map.sh          check (part of make check)
#   sh tests/test_map.sh --write  remake the README table from the map
#
# The map is the one place to edit; a failure says which line to add,
# change or remove there.
src=${KR_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
map=$src/tests/mutation/map
readme=$src/tests/README.md
begin='<!-- begin: made from tests/mutation/map by sh tests/test_map.sh --write; edit the map, not this table -->'
end='<!-- end of the table made from tests/mutation/map -->'

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-map.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# "FILE PROGRAM..." a line, comments and blank lines dropped
sed 's/#.*//; s/:/ /' "$map" | awk 'NF' > "$tmp/map"

# the table rows, in the map's order
awk '{ printf "| `%s` |", $1; for (i = 2; i <= NF; i++) printf " %s", $i; print " |" }' \
	"$tmp/map" > "$tmp/rows"
{
	echo "$begin"
	echo
	echo '| product file | test programs (`make check TESTS=...`) |'
	echo '|---|---|'
	cat "$tmp/rows"
	echo
	echo "$end"
} > "$tmp/table"

if [ "$1" = --write ]; then
	grep -q -F -x -e "$begin" "$readme" && grep -q -F -x -e "$end" "$readme" || {
		echo "tests/README.md has no table markers; put these two lines where the table goes:"
		echo "$begin"
		echo "$end"
		exit 1
	}
	awk -v b="$begin" -v e="$end" -v t="$tmp/table" '
		$0 == b { while ((getline l < t) > 0) print l; skip = 1; next }
		$0 == e { skip = 0; next }
		!skip' "$readme" > "$tmp/readme" && cat "$tmp/readme" > "$readme"
	echo "tests/README.md: table remade from tests/mutation/map"
	exit 0
fi

fail=0
say() { echo "FAIL: $*"; fail=1; }

# the product files, and the test programs of tests/*.mk (TESTS += ...)
(cd "$src" && ls core/*.c backends/*.c launcher/*.c stages/*.c 2>/dev/null) | sort > "$tmp/files"
[ -s "$tmp/files" ] || { echo "FAIL: no product .c files under $src"; exit 1; }
awk '/^TESTS[ \t]*\+?=/ { on = 1; sub(/^TESTS[ \t]*\+?=/, "") }
	on { c = sub(/\\[ \t]*$/, ""); for (i = 1; i <= NF; i++) print $i; on = c }' \
	"$src"/tests/*.mk | sort -u > "$tmp/programs"

# the programs a new file's line should start from: those of the mapped
# file of its directory whose name its own extends (core/proc_env.c from
# core/proc.c) or the other way round; else those of all the directory's
# files, each once
suggest() {
	dir=${1%/*} stem=${1##*/}
	stem=${stem%.c}
	awk -v d="$dir" -v s="$stem" '
		substr($1, 1, length(d) + 1) != d "/" { next }
		{ n = $1; sub(/^.*\//, "", n); sub(/\.c$/, "", n) }
		(index(s, n "_") == 1 || index(n, s "_") == 1) && length(n) > best {
			best = length(n); line = $0 }
		{ for (i = 2; i <= NF; i++) if (!seen[$i]++) all = all " " $i }
		END {
			if (line != "") { $0 = line; $1 = ""; print "split " substr($0, 2) }
			else if (all != "") print "dir " substr(all, 2)
		}' "$tmp/map"
}

while IFS= read -r f; do
	awk -v f="$f" '$1 == f { found = 1 } END { exit !found }' "$tmp/map" && continue
	progs=$(suggest "$f")
	case $progs in
	split*) say "$f has no line in tests/mutation/map; add this one (the programs of the file whose name it extends; keep those that test it):" ;;
	dir*) say "$f has no line in tests/mutation/map; add this one (the programs of the other files of ${f%/*}/; keep those that test it):" ;;
	*) say "$f has no line in tests/mutation/map; add one naming the test programs (tests/*.mk) that test it:" ;;
	esac
	echo "    $f: ${progs#* }"
done < "$tmp/files"

n=0
while IFS= read -r line; do
	n=$((n + 1))
	set -- $line
	f=$1
	shift
	case $f in
	*'*'* | *'?'* | *'['*) say "tests/mutation/map: '$f' is a pattern; name each file on a line of its own" ;;
	esac
	grep -q -x -F -e "$f" "$tmp/files" ||
		say "tests/mutation/map names $f, which is not a product .c file (any more); remove its line, or rename it to the file's new name"
	[ "$(awk -v f="$f" '$1 == f' "$tmp/map" | wc -l)" -le 1 ] ||
		say "tests/mutation/map names $f more than once; keep one line"
	[ $# -gt 0 ] || say "tests/mutation/map: $f names no test program"
	for p in "$@"; do
		grep -q -x -F -e "$p" "$tmp/programs" ||
			say "tests/mutation/map: $f names $p, which is no test program of tests/*.mk (TESTS +=); remove it from the line"
	done
done < "$tmp/map"
[ "$n" -gt 0 ] || say "tests/mutation/map has no lines"

awk -v b="$begin" -v e="$end" '$0 == b { on = 1 } on { print } $0 == e { on = 0 }' \
	"$readme" > "$tmp/current"
if ! cmp -s "$tmp/table" "$tmp/current"; then
	say "the table in tests/README.md is not the one made from tests/mutation/map; run: sh tests/test_map.sh --write"
	diff -u "$tmp/current" "$tmp/table" | sed -n '3,40p'
fi

[ "$fail" -eq 0 ] && echo "PASS: tests/mutation/map names the tests of all $(wc -l < "$tmp/files") product files; tests/README.md shows it"
exit "$fail"
