#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# scripts/debian-modules.sh VERSION ARCH: prints the path of the module tree
# of one of Debian 12's own kernels (the one scripts/debian-kernel.sh VERSION
# ARCH fetches), for `leaklab sweep --modules-dir`:
#
#   DIR/modules/lib/modules/RELEASE/   the image package's modules, each
#       kernel/**/*.ko decompressed (Debian's 6.12 ships them as .ko.xz; the
#       guest's leaklab reads a module's sections and symbols from its ELF),
#       with the package's modules.order and modules.builtin, and the
#       modules.dep that the package's postinst would make (depmod -b).
#
# DIR is the kernel's cache directory (scripts/debian-kernel.sh); the image
# package is downloaded again (60-110 MB, nothing installed) and unpacked
# beside it, then renamed into place. Idempotent: a tree already there is
# only checked. Bad arguments: exit 2; a failed download or unpack: exit 1.
set -euo pipefail

# shellcheck source=scripts/apt-download.sh
. "$(dirname "$0")/apt-download.sh"

say() { printf 'debian-modules: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

[ $# = 2 ] || { say "usage: scripts/debian-modules.sh 6.1|6.12 x86_64|arm64"; exit 2; }
dir=$(bash "$(dirname "$0")/debian-kernel.sh" "$1" "$2") || exit $?
release=$(<"$dir/release")
tree=$dir/modules/lib/modules/$release
if [ -f "$dir/modules/.leaklab-fetched" ]; then
	[ -f "$tree/modules.dep" ] || fail "$tree has no modules.dep (remove $dir/modules and run again)"
	printf '%s\n' "$tree"
	exit 0
fi
image=$(grep '^linux-image-' "$dir/packages") || fail "$dir/packages names no image package"
tmp=$(mktemp -d "$dir/.modules.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
say "downloading ${image%%=*} (its modules)"
apt_download "$tmp" "$image" || fail "apt-get download of $image failed (apt-get update, then run again)"
mkdir -p "$tmp/root"
dpkg-deb --fsys-tarfile "$tmp"/linux-image-*.deb | tar -x -C "$tmp/root" "./lib/modules/$release" ||
	fail "cannot unpack lib/modules/$release from $(basename "$tmp"/linux-image-*.deb)"
rm -f "$tmp"/*.deb
n=$(find "$tmp/root" -name '*.ko.xz' | wc -l)
say "decompressing $n modules"
find "$tmp/root" -name '*.ko.xz' -print0 | xargs -0 -r -n 200 xz -d
PATH=$PATH:/sbin:/usr/sbin depmod -b "$tmp/root" "$release" || fail "depmod -b of $release failed"
[ -f "$tmp/root/lib/modules/$release/modules.dep" ] || fail "depmod made no modules.dep"
rm -rf "$dir/modules"
mv "$tmp/root" "$dir/modules"
touch "$dir/modules/.leaklab-fetched"
printf '%s\n' "$tree"
