#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# scripts/busybox.sh ARCH...: prints the path of a static busybox for the
# guest of each ARCH (x86_64, arm64), one a line: Debian's busybox-static of
# that architecture, fetched once with `apt-get download` and unpacked with
# `dpkg-deb -x` into the cache,
# $LEAKLAB_CACHE/busybox/<package version>/<arch>/busybox.
#
# Nothing is installed. For arm64 apt needs the arm64 package lists: the
# first run adds arm64 as a foreign architecture of dpkg (`dpkg
# --add-architecture arm64`, then `apt-get update`); that only lets apt see
# arm64 packages, it installs none.
#
# Idempotent and quick: with the binaries cached and apt's lists unchanged it
# only checks the files.
set -euo pipefail

# shellcheck source=scripts/apt-download.sh
. "$(dirname "$0")/apt-download.sh"

say() { printf 'busybox: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

# shellcheck source=scripts/as-root.sh
. "$(dirname "$0")/as-root.sh"

[ $# -gt 0 ] || die "usage: scripts/busybox.sh x86_64|arm64..."
cache=${LEAKLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leaklab}/busybox

# Fails unless $1 is a statically linked ELF executable for ARCH $2.
check() {
	local machine
	case $2 in x86_64) machine=X86-64 ;; arm64) machine=AArch64 ;; esac
	readelf -h "$1" 2>/dev/null | grep -q "Machine:.*$machine" ||
		die "$1 is not an $2 ELF executable"
	! readelf -l "$1" | grep -q 'program interpreter' ||
		die "$1 is not statically linked"
}

# "DEB_ARCH VERSION" lines: the candidate of busybox-static for each
# architecture apt knows it for (one apt-cache call: without apt's binary
# cache, as in some container images, each call takes half a second).
candidates() {
	apt-cache show --no-all-versions "${@/#/busybox-static:}" 2>/dev/null |
		awk '/^Version: /{v=$2} /^Architecture: /{a=$2} /^$/{if (a && v) print a, v; a=v=""} END{if (a && v) print a, v}'
}

archs=() deb_archs=()
for a in "$@"; do
	case $a in
	x86_64) archs+=(x86_64) deb_archs+=(amd64) ;;
	arm64 | aarch64) archs+=(arm64) deb_archs+=(arm64) ;;
	*) die "unknown ARCH '$a' (x86_64 or arm64)" ;;
	esac
done

# The fast path: each ARCH's binary as resolved last time, while apt's lists
# have not changed since (apt-get update renames new lists into that
# directory): the candidate version cannot have changed either.
lists=$(apt_lists_dir)
fast=()
for arch in "${archs[@]}"; do
	stamp=$cache/resolved-$arch
	[ -f "$stamp" ] && [ -d "$lists" ] && [ "$stamp" -nt "$lists" ] && out=$(<"$stamp") && [ -f "$out" ] || break
	fast+=("$out")
done
if [ ${#fast[@]} = ${#archs[@]} ]; then
	for i in "${!archs[@]}"; do
		check "${fast[$i]}" "${archs[$i]}"
		printf '%s\n' "${fast[$i]}"
	done
	exit 0
fi

found=$(candidates "${deb_archs[@]}")
version_for() { awk -v a="$1" '$1 == a {print $2; exit}' <<<"$found"; }
added=0
for d in "${deb_archs[@]}"; do
	[ -z "$(version_for "$d")" ] && [ "$d" != "$(dpkg --print-architecture)" ] || continue
	if ! dpkg --print-foreign-architectures | grep -qx "$d"; then
		say "adding $d as a foreign dpkg architecture (to download busybox-static:$d; nothing $d gets installed)"
		as_root dpkg --add-architecture "$d"
	fi
	added=1
done
if [ "$added" = 1 ]; then
	say "apt-get update (for the foreign package lists)"
	as_root apt-get update -qq
	found=$(candidates "${deb_archs[@]}")
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in "${!archs[@]}"; do
	arch=${archs[$i]} deb_arch=${deb_archs[$i]}
	pkg=busybox-static:$deb_arch
	version=$(version_for "$deb_arch")
	[ -n "$version" ] || die "apt knows no $pkg: is this Debian 12 (bookworm) with its main archive?"
	# The version's epoch colon, as apt writes it in file names.
	out=$cache/${version//:/%3a}/$arch/busybox
	if [ ! -f "$out" ]; then
		say "downloading $pkg $version"
		rm -rf "${tmp:?}"/*
		apt_download "$tmp" "$pkg=$version" ||
			die "apt-get download $pkg=$version failed"
		dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/root"
		check "$tmp/root/bin/busybox" "$arch"
		mkdir -p "$(dirname "$out")"
		# Another build may fetch the same file at once: rename into place.
		cp "$tmp/root/bin/busybox" "$out.$$"
		chmod 755 "$out.$$"
		mv -f "$out.$$" "$out"
	fi
	check "$out" "$arch"
	printf '%s\n' "$out" >"$cache/resolved-$arch.$$"
	mv -f "$cache/resolved-$arch.$$" "$cache/resolved-$arch"
	printf '%s\n' "$out"
done
