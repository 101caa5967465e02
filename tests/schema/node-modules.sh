#!/bin/sh
# node-modules.sh: make sure the npm modules the schema checks use are
# installed, once per machine, and print the node_modules directory.
# Exit 0 ready, 77 when node, npm or the registry is unavailable (the
# reason is printed on stdout instead).  Concurrent callers wait for the
# first one's install instead of racing it; an install that failed is not
# tried again for 10 minutes, so a dead registry costs one timeout, not
# one per test.  scripts/install-deps runs this ahead of the tests.
# Directory: $KERUTA_NODE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/keruta-agent/test-node.
# KERUTA_NPM_TIMEOUT: seconds npm may take (default 90).
dir=${KERUTA_NODE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/keruta-agent/test-node}
limit=${KERUTA_NPM_TIMEOUT:-90}
mods="ajv@8 ajv-formats@3 js-yaml@4 kubernetes-models@4"
probe='for (const m of ["ajv","ajv-formats","js-yaml","kubernetes-models/v1/Pod"]) require(m)'

if ! command -v node >/dev/null 2>&1; then
	echo "node is not installed (apt-get install nodejs npm)"; exit 77
fi
ready() { NODE_PATH="$dir/node_modules" node -e "$probe" 2>/dev/null; }
failed_lately() { [ -n "$(find "$dir/npm-failed" -mmin -10 2>/dev/null)" ]; }
if ! ready; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "npm is not installed (apt-get install npm)"; exit 77
	fi
	mkdir -p "$dir" || { echo "cannot create $dir (set KERUTA_NODE_DIR)"; exit 77; }
	(
		flock 9
		ready || failed_lately ||
			timeout "$limit" npm install --no-save --no-audit --no-fund --loglevel=error \
				--fetch-retries=1 --fetch-timeout=30000 --prefix "$dir" $mods \
				>"$dir/npm-install.log" 2>&1 || touch "$dir/npm-failed"
	) 9>"$dir/.lock"
	if ! ready; then
		echo "npm could not install $mods (no registry? npm is given ${limit} s and not tried again for 10 minutes; see $dir/npm-install.log) $(tail -n 3 "$dir/npm-install.log" 2>/dev/null | tr '\n' ' ')"
		exit 77
	fi
	rm -f "$dir/npm-failed"
fi
echo "$dir/node_modules"
