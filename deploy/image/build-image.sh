#!/bin/sh
# Build the keruta-agent image from a configured, built tree, offline:
#   deploy/image/build-image.sh BUILDDIR [TAG]     (make image runs this)
# TAG defaults to localhost/keruta-agent; the image gets :VERSION and :latest.
# Steps: base image (mkbase.sh, cached), `make install-strip DESTDIR=` into
# the build context, `podman build` (or buildah when podman is missing),
# then a smoke test: every shared object resolves in the image and the
# agent lists its stage plugins.  KERUTA_IMAGE_BASE names another base.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: build-image.sh BUILDDIR [TAG]}
build=$(cd "$build" && pwd)
tag=${2:-localhost/keruta-agent}
base=${KERUTA_IMAGE_BASE:-localhost/keruta-agent-base:bookworm}
make=${MAKE:-make}

die() { echo "build-image: $*" >&2; exit 1; }
[ -x "$build/keruta-agent" ] || die "$build/keruta-agent is missing; run make first"
if command -v podman >/dev/null; then tool=podman
elif command -v buildah >/dev/null; then tool=buildah
else die "neither podman nor buildah is installed (apt-get install podman runc)"; fi

sh "$here/mkbase.sh" "$base"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/keruta-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT INT TERM
echo "build-image: make install-strip DESTDIR=$ctx/root"
$make -s -C "$build" install-strip DESTDIR="$ctx/root" > "$ctx/install.log" 2>&1 ||
	{ cat "$ctx/install.log" >&2; die "make install-strip failed"; }
# The plugin SDK and manuals are for developers, not for a task pod.
for d in include share/man lib/pkgconfig; do
	find "$ctx/root" -depth -path "*/$d" -exec rm -rf {} + 2>/dev/null || true
done
find "$ctx/root" -name '*.la' -delete
bin=$(find "$ctx/root" -type f -name keruta-agent -path '*/bin/*' | head -n 1)
[ -n "$bin" ] || die "make install put no keruta-agent under $ctx/root"
bindir=$(dirname "${bin#"$ctx/root"}")
version=$("$build/keruta-agent" version 2>/dev/null | sed -n '1s/^keruta-agent \([^ ]*\).*/\1/p')
version=${version:-unknown}
cp "$here/Containerfile" "$ctx/Containerfile"

echo "build-image: $tool build $tag:$version (bindir $bindir, base $base)"
if [ "$tool" = podman ]; then
	podman build -q --network none -f "$ctx/Containerfile" --build-arg BASE="$base" \
		--build-arg BINDIR="$bindir" --build-arg VERSION="$version" \
		-t "$tag:$version" -t "$tag:latest" "$ctx" > /dev/null
else
	buildah bud -q --network none -f "$ctx/Containerfile" --build-arg BASE="$base" \
		--build-arg BINDIR="$bindir" --build-arg VERSION="$version" \
		-t "$tag:$version" -t "$tag:latest" "$ctx" > /dev/null
	exit 0   # no runtime to smoke-test with
fi

# Smoke test: nothing unresolved, the agent starts and sees its plugins.
missing=$(podman run --rm --network none --entrypoint /bin/sh "$tag:$version" -c \
	'for f in $(command -v keruta-agent) $(find / -xdev -path "*/keruta-agent/*.so"); do ldd "$f" | sed -n "s|^|$f: |; /not found/p"; done') ||
	die "cannot run $tag:$version"
[ -z "$missing" ] || die "unresolved libraries in the image:
$missing"
podman run --rm --network none "$tag:$version" version > "$ctx/version.out" 2>&1 ||
	{ cat "$ctx/version.out" >&2; die "keruta-agent version fails in the image"; }
podman run --rm --network none "$tag:$version" plugins > "$ctx/plugins.out" 2>&1 ||
	{ cat "$ctx/plugins.out" >&2; die "keruta-agent plugins fails in the image"; }
# The built-in default pipeline must name only installed plugins; a warning,
# not an error, so an image with a custom pipeline (via ConfigMap) still builds.
if ! podman run --rm --network none "$tag:$version" validate > "$ctx/validate.out" 2>&1; then
	echo "build-image: WARNING: the image's default pipeline does not validate; task pods must" >&2
	echo "  mount one (ConfigMap keruta-pipeline + KERUTA_PIPELINE).  keruta-agent validate said:" >&2
	sed 's/^/  /' "$ctx/validate.out" >&2
fi
n=$(grep -c '^[a-z][a-z0-9_-]* *[0-9]*\.[0-9]' "$ctx/plugins.out" || true)
size=$(podman image inspect "$tag:$version" --format '{{.Size}}')
echo "build-image: $tag:$version OK: $n stage plugins, $((size / 1000000)) MB"
