#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# scripts/debian-dbg.sh VERSION ARCH: prints the path of the modules' debug
# files of one of Debian 12's own kernels (the one scripts/debian-kernel.sh
# VERSION ARCH fetches), for `leaklab sweep --debug-dir`:
#
#   DIR/dbg/usr/lib/debug/lib/modules/RELEASE/   kernel/**/*.ko, each the
#       DWARF and symbols of the module of the same path in the image
#       package (Debian strips its modules; their lines ship apart)
#
# from the image's -dbg package (about 1 GB, nothing installed; the
# vmlinux in it is left out). DIR is the kernel's cache directory; the
# package is downloaded and unpacked beside it, then renamed into place,
# and the package itself is not kept. Idempotent: a tree already there is
# only checked. Bad arguments: exit 2; a failed download or unpack: exit 1.
set -euo pipefail

# shellcheck source=scripts/apt-download.sh
. "$(dirname "$0")/apt-download.sh"

say() { printf 'debian-dbg: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

[ $# = 2 ] || { say "usage: scripts/debian-dbg.sh 6.1|6.12 x86_64|arm64"; exit 2; }
dir=$(bash "$(dirname "$0")/debian-kernel.sh" "$1" "$2") || exit $?
release=$(<"$dir/release")
tree=$dir/dbg/usr/lib/debug/lib/modules/$release
if [ -f "$dir/dbg/.leaklab-fetched" ]; then
	[ -d "$tree/kernel" ] || fail "$tree has no kernel/ (remove $dir/dbg and run again)"
	printf '%s\n' "$tree"
	exit 0
fi
image=$(grep '^linux-image-' "$dir/packages") || fail "$dir/packages names no image package"
dbg="linux-image-$release-dbg=${image##*=}"
tmp=$(mktemp -d "$dir/.dbg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
say "downloading ${dbg%%=*} (about 1 GB)"
apt_download "$tmp" "$dbg" || fail "apt-get download of $dbg failed (apt-get update, then run again)"
mkdir -p "$tmp/root"
say "unpacking the modules' debug files (a minute or two)"
dpkg-deb --fsys-tarfile "$tmp"/linux-image-*-dbg_*.deb |
	tar -x -C "$tmp/root" --wildcards "./usr/lib/debug/lib/modules/$release/*" ||
	fail "cannot unpack usr/lib/debug/lib/modules/$release from $(basename "$tmp"/*.deb)"
rm -f "$tmp"/*.deb
[ -d "$tmp/root/usr/lib/debug/lib/modules/$release/kernel" ] || fail "the -dbg package holds no modules' debug files"
rm -rf "$dir/dbg"
mv "$tmp/root" "$dir/dbg"
touch "$dir/dbg/.leaklab-fetched"
printf '%s\n' "$tree"
