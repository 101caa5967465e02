#!/bin/sh
# import_cycles.sh: no import cycle between the product's source files,
# read from the built objects (tests/import_cycles.py says how).
src=${KR_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${KR_BUILDDIR:-.}
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3 to read the graph"; exit 77; }
command -v nm >/dev/null 2>&1 || { echo "SKIP: no nm (binutils) to read the objects"; exit 77; }
exec python3 "$src/tests/import_cycles.py" "$build" "$src"
