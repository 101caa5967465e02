#!/bin/sh
# readme-commands.sh: the README's two commands ("Two commands") work in
# any order, any number of times, in one checkout: run them as the README
# gives them, demo -> tests -> demo -> tests, in a fresh clone of this
# checkout, and fail on the first that fails or on configure's
# "cannot remove 'core'" noise.  Slow (two full `make check`), so not part
# of `make check`:
#
#     sh tests/readme-commands.sh        (as root, or with sudo, like the README)
#
# PREFIX and DEMO are passed to scripts/local-demo (defaults /usr/local and
# /tmp/keruta-demo); KEEP=1 keeps the clone.  Exit 0 pass, 1 fail, 77 skip.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
readme=$src/README.md
demo_cmd=$(awk '/^## Two commands/{on=1} on && /^    sh scripts\/local-demo/{sub(/^    /,""); print; exit}' "$readme")
test_cmd=$(awk '/^## Two commands/{on=1} on && /^    sh scripts\/install-deps/{sub(/^    /,""); print; exit}' "$readme")
if [ -z "$demo_cmd" ] || [ -z "$test_cmd" ]; then
	echo "FAIL: cannot find the two commands under '## Two commands' in $readme"
	exit 1
fi
if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
	echo "SKIP: the README's commands install packages: run as root or with sudo"
	exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/readme-commands.XXXXXX")
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
# the checkout as it is, uncommitted changes included, without build output
git -C "$src" ls-files -z --cached --others --exclude-standard |
	(cd "$src" && xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$work" || exit 1
cd "$work" || exit 1
fails=0
step() { # NAME COMMAND
	echo "=== $1: $2"
	log=$work.$1.log
	if (sh -c "$2") > "$log" 2>&1; then
		echo "    ok"
	else
		echo "FAIL: $1 exited $?; the end of its output:"
		tail -n 30 "$log"
		fails=$((fails + 1))
	fi
	if grep -q "cannot remove 'core'" "$log"; then
		echo "FAIL: $1 printed \"cannot remove 'core'\""
		fails=$((fails + 1))
	fi
	rm -f "$log"
}
step demo-1 "$demo_cmd"
step tests-1 "$test_cmd"
step demo-2 "$demo_cmd"
step tests-2 "$test_cmd"
[ "$fails" -eq 0 ] || exit 1
echo "PASS: demo, tests, demo, tests in one checkout"
