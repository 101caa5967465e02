#!/bin/sh
# Build the agent image's base locally, with no container registry:
# a Debian minbase root file system made by debootstrap, with the agent's
# runtime libraries already in it, imported into podman as one layer.
#   deploy/image/mkbase.sh [TAG]       (default localhost/keruta-agent-base:bookworm)
# Needs root, debootstrap and podman, and a Debian mirror (DEBIAN_MIRROR,
# default http://deb.debian.org/debian).  Does nothing when TAG exists unless
# REBUILD=1.  Takes 30 s to a few minutes, depending on the mirror.
set -eu
tag=${1:-localhost/keruta-agent-base:bookworm}
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What keruta-agent, its stage plugins and the keruta-api module link
# (libgit2 brings libmbedtls, libcurl4 brings OpenSSL), plus the CA bundle
# that HTTPS clones and API calls verify against.  No git CLI: clone uses
# libgit2, and git with perl would triple the image.
pkgs=${KERUTA_IMAGE_PACKAGES:-libyaml-0-2,libcurl4,libgit2-1.5,libjson-c5,ca-certificates}

die() { echo "mkbase: $*" >&2; exit 1; }
if podman image exists "$tag" 2>/dev/null && [ "${REBUILD:-0}" != 1 ]; then
	echo "mkbase: $tag exists (REBUILD=1 to make it again)"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root; run as root or build $tag elsewhere and 'podman load' it"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
command -v podman >/dev/null || die "podman is not installed (apt-get install podman runc)"

work=$(mktemp -d "${TMPDIR:-/tmp}/keruta-base.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/root
echo "mkbase: debootstrap --variant=minbase $suite from $mirror (log: $work/debootstrap.log)"
if ! debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1; then
	tail -n 20 "$work/debootstrap.log" >&2
	trap - EXIT
	die "debootstrap failed; full log in $work/debootstrap.log"
fi
# Drop what a container never reads: the package cache and lists (derived
# images run apt-get update first anyway), documentation and translations.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
	"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
	"$root"/usr/share/locale/* "$root"/var/log/* "$root"/var/cache/debconf/*-old \
	"$root"/var/lib/dpkg/*-old
tar -C "$root" -c . | podman import -q \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'CMD ["/bin/bash"]' \
	--message "debootstrap --variant=minbase $suite + $pkgs" - "$tag" > /dev/null
echo "mkbase: built $tag ($(podman image inspect "$tag" --format '{{.Size}}') bytes)"
