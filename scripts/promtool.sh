#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# scripts/promtool.sh: prints the path of a promtool, the checker of
# Prometheus files, one line: the one in Debian's prometheus package of the
# host's architecture, fetched once with `apt-get download` and unpacked with
# `dpkg-deb -x` into the cache,
# $LEAKLAB_CACHE/promtool/<package version>/promtool.
#
# Nothing is installed. The VM tests run `promtool check metrics` on the
# Prometheus textfile `leaklab watch` writes.
#
# Idempotent and quick: with the binary cached and apt's lists unchanged it
# only checks the file.
set -euo pipefail

# shellcheck source=scripts/apt-download.sh
. "$(dirname "$0")/apt-download.sh"

say() { printf 'promtool: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

[ $# = 0 ] || die "usage: scripts/promtool.sh"
cache=${LEAKLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leaklab}/promtool

# Fails unless $1 runs: `promtool --version` exits 0.
check() {
	"$1" --version >/dev/null 2>&1 || die "$1 does not run ('$1 --version' fails)"
}

# The fast path: the binary as resolved last time, while apt's lists have not
# changed since (apt-get update renames new lists into that directory): the
# candidate version cannot have changed either.
lists=$(apt_lists_dir)
stamp=$cache/resolved
if [ -f "$stamp" ] && [ -d "$lists" ] && [ "$stamp" -nt "$lists" ] && out=$(<"$stamp") && [ -f "$out" ]; then
	check "$out"
	printf '%s\n' "$out"
	exit 0
fi

pkg=prometheus
version=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version: /{print $2; exit}')
[ -n "$version" ] || die "apt knows no $pkg: is this Debian 12 (bookworm) with its main archive?"
# The version's epoch colon, as apt writes it in file names.
out=$cache/${version//:/%3a}/promtool
if [ ! -f "$out" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	say "downloading $pkg $version"
	apt_download "$tmp" "$pkg=$version" ||
		die "apt-get download $pkg=$version failed"
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/root"
	[ -f "$tmp/root/usr/bin/promtool" ] || die "$pkg $version has no usr/bin/promtool"
	check "$tmp/root/usr/bin/promtool"
	mkdir -p "$(dirname "$out")"
	# Another build may fetch the same file at once: rename into place.
	cp "$tmp/root/usr/bin/promtool" "$out.$$"
	chmod 755 "$out.$$"
	mv -f "$out.$$" "$out"
fi
check "$out"
printf '%s\n' "$out" >"$stamp.$$"
mv -f "$stamp.$$" "$stamp"
printf '%s\n' "$out"
