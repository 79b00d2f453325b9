#!/usr/bin/env bash
# scripts/debian-kernel.sh VERSION ARCH: prints the path of a cache directory
# holding one of Debian 12's own kernels and its headers, ready to boot under
# `leaklab vm --kernel` and to build an out-of-tree module against:
#
#   VERSION  6.1 or 6.12: Debian 12's two kernel series
#            (linux-image-6.1.0-NN-* and linux-image-6.12.NNN+deb12-*)
#   ARCH     x86_64 or arm64 (arm64 is cross-built from an x86_64 host)
#
#   DIR/kernel-image   boot/vmlinuz: a bzImage on x86_64, a plain Image on arm64
#   DIR/config         boot/config-RELEASE
#   DIR/System.map     only when the package has a real one (Debian's holds a
#                      one-line stub; the real one is in linux-image-*-dbg)
#   DIR/kdir           one line: the headers tree to build against, as in
#                      make -C $(cat DIR/kdir) M=$PWD [ARCH=arm64] modules
#   DIR/release        one line: the kernel release (6.12.118+deb12-amd64),
#                      the first word of a module's vermagic built against it
#   DIR/root           the unpacked headers, common headers and kbuild packages
#   DIR/.leaklab-fetched  written last
#
# DIR is $LEAKLAB_CACHE/debian/<abi>-<arch>-<key>, the key a hash of the
# packages' names and versions and of this script. The ABI is the newest the
# archive offers for that series and ARCH, or DEBIAN_KERNEL_ABI's
# (DEBIAN_KERNEL_ABI=6.12.117+deb12 or 6.1.0-56).
#
# Nothing is installed: the packages are fetched with `apt-get download` and
# unpacked with dpkg-deb into DIR; no dpkg -i, no initramfs, no boot loader.
# Only boot/ is taken from the image package (its modules are most of its
# 60-110 MB). For arm64 apt needs the arm64 package lists: the first run
# adds arm64 as a foreign architecture of dpkg (as scripts/busybox.sh does),
# which installs nothing. kbuild's scripts are host programs, so
# linux-kbuild is always the host's (amd64) package, whatever ARCH is.
#
# Idempotent and quick: with DIR cached and apt's lists unchanged it only
# checks the files, without apt or the network. Bad arguments: exit 2;
# a failed download or unpack: exit 1. Messages go to stderr.
set -euo pipefail

# shellcheck source=scripts/apt-download.sh
. "$(dirname "$0")/apt-download.sh"
# shellcheck source=scripts/as-root.sh
. "$(dirname "$0")/as-root.sh"

say() { printf 'debian-kernel: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }
fail() { say "$*"; exit 1; }

usage="usage: scripts/debian-kernel.sh 6.1|6.12 x86_64|arm64 (DEBIAN_KERNEL_ABI=... pins an ABI)"
[ $# = 2 ] || die "expected VERSION and ARCH, got $# argument(s): $usage"
case $1 in
6.1 | 6.12) series=$1 ;;
*) die "unknown VERSION '$1': Debian 12 has the series 6.1 and 6.12; $usage" ;;
esac
case $2 in
x86_64 | amd64) arch=x86_64 darch=amd64 ;;
arm64 | aarch64) arch=arm64 darch=arm64 ;;
*) die "unknown ARCH '$2' (x86_64 or arm64); $usage" ;;
esac
# The ABI part of the package names: 6.1.0-57 or 6.12.118+deb12.
case $series in
6.1) abi_re='6\.1\.0-[0-9]+' abi_example=6.1.0-57 ;;
6.12) abi_re='6\.12\.[0-9]+\+deb12' abi_example=6.12.118+deb12 ;;
esac
pin=${DEBIAN_KERNEL_ABI:-}
if [ -n "$pin" ] && ! grep -Eqx "$abi_re" <<<"$pin"; then
	die "DEBIAN_KERNEL_ABI=$pin is not a $series ABI: set it like $abi_example, or unset it for the newest"
fi

cache=${LEAKLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leaklab}/debian
host_darch=$(dpkg --print-architecture)
self_hash=$(sha256sum <"$0" | cut -c1-12)

# Fails unless $1 is a kernel image for ARCH: a bzImage has "HdrS" at 0x202,
# an arm64 Image "ARM\x64" at 0x38 (neither is an ELF file).
check_image() {
	local magic
	case $arch in
	x86_64) magic=$(od -An -c -j 514 -N 4 "$1" 2>/dev/null | tr -d ' ') && [ "$magic" = HdrS ] ;;
	arm64) magic=$(od -An -tx1 -j 56 -N 4 "$1" 2>/dev/null | tr -d ' ') && [ "$magic" = 41524d64 ] ;;
	esac || fail "$1 is not an $arch kernel image (remove $(dirname "$1") and run again)"
}

# Fails unless DIR $1 is complete: the files, kbuild's host programs, and the
# headers' Makefile including a common tree that exists.
check() {
	local dir=$1 kdir inc
	[ -f "$dir/.leaklab-fetched" ] && [ -f "$dir/config" ] && [ -s "$dir/release" ] && [ -s "$dir/kdir" ] ||
		fail "$dir is incomplete (remove it and run again)"
	check_image "$dir/kernel-image"
	kdir=$(<"$dir/kdir")
	inc=$(sed -n 's/^include //p' "$kdir/Makefile" 2>/dev/null)
	[ -n "$inc" ] && [ -f "$inc" ] && [ -x "$kdir/scripts/basic/fixdep" ] && [ -f "$kdir/.config" ] ||
		fail "the headers in $kdir are incomplete (remove $dir and run again)"
}

# The fast path: the directory resolved last time for these arguments and
# this script, while apt's lists have not changed since (apt-get update
# renames new lists into their directory): the archive's answer is the same.
lists=$(apt_lists_dir)
stamp=$cache/resolved-$series-$arch${pin:+-$pin}-$self_hash
if [ -f "$stamp" ] && [ -d "$lists" ] && [ "$stamp" -nt "$lists" ] && out=$(<"$stamp") && [ -f "$out/.leaklab-fetched" ]; then
	check "$out"
	printf '%s\n' "$out"
	exit 0
fi

updated=0
update() {
	if [ "$darch" != "$host_darch" ] && ! dpkg --print-foreign-architectures | grep -qx "$darch"; then
		say "adding $darch as a foreign dpkg architecture (to download $darch kernel packages; nothing $darch gets installed)"
		as_root dpkg --add-architecture "$darch"
	fi
	say "apt-get update (${1})"
	as_root apt-get update -qq || fail "apt-get update failed"
	updated=1
}

# "PACKAGE:ARCH=VERSION" for each package apt knows (one apt-cache call).
versions_of() {
	apt-cache show --no-all-versions "$@" 2>/dev/null |
		awk '/^Package: /{p=$2} /^Architecture: /{a=$2} /^Version: /{v=$2}
			/^$/{if (p && v) print p":"a"="v; p=a=v=""} END{if (p && v) print p":"a"="v}'
}

# ABIs of the series with an image package for ARCH, newest first.
abis() {
	apt-cache pkgnames "linux-image-$series." 2>/dev/null |
		sed -En "s/^linux-image-($abi_re)-$darch-unsigned\$/\1/p" | sort -rV
}

# Sets abi, version, packages (PACKAGE:ARCH=VERSION, for apt-get download),
# or returns 1 when apt does not know them (yet). Each apt-cache call takes
# about 1.5 s here (no binary cache), so one call asks for all four.
resolve() {
	local candidates a found image headers common kbuild v kbuild_v
	if [ -n "$pin" ]; then candidates=$pin; else candidates=$(abis | head -n 3); fi
	[ -n "$candidates" ] || return 1
	for a in $candidates; do
		image=linux-image-$a-$darch-unsigned:$darch
		headers=linux-headers-$a-$darch:$darch
		# Both series name the common headers (Architecture: all) after the ABI.
		common=linux-headers-$a-common
		case $series in 6.1) kbuild=linux-kbuild-6.1 ;; 6.12) kbuild=linux-kbuild-$a ;; esac
		kbuild=$kbuild:$host_darch
		found=$(versions_of "$image" "$headers" "$common" "$kbuild")
		v=$(grep -F "linux-image-$a-$darch-unsigned:$darch=" <<<"$found") || continue
		version=${v#*=}
		# The image and its headers come from one upload.
		grep -qxF "${headers}=$version" <<<"$found" && grep -qxF "$common:all=$version" <<<"$found" || continue
		kbuild_v=$(sed -n "s/^${kbuild%:*}:$host_darch=//p" <<<"$found")
		[ -n "$kbuild_v" ] || continue
		# linux-kbuild-6.1 serves every 6.1 ABI: for an older ABI take its
		# own upload while the archive has it, else the newest (the headers
		# ask for >=).
		if [ "$kbuild_v" != "$version" ] && [ -n "$(versions_of "$kbuild=$version")" ]; then
			kbuild_v=$version
		fi
		abi=$a
		packages=("$image=$version" "$headers=$version" "$common=$version" "$kbuild=$kbuild_v")
		return 0
	done
	return 1
}

if ! ls "$lists"/*_Packages* >/dev/null 2>&1; then
	update "apt's package lists are missing"
fi
if ! resolve; then
	[ "$updated" = 1 ] && fail "apt knows no $series kernel for $darch${pin:+ with ABI $pin}: is this Debian 12 (bookworm) with its security archive?"
	update "no $series kernel for $darch${pin:+ with ABI $pin} in apt's lists"
	resolve || fail "apt knows no $series kernel for $darch${pin:+ with ABI $pin} even after apt-get update: is this Debian 12 (bookworm) with its security archive?${pin:+ (old ABIs leave the archive: unset DEBIAN_KERNEL_ABI for the newest)}"
fi

release=$abi-$darch
key=$(sha256sum <<<"${packages[*]}$(cat "$0")" | cut -c1-12)
out=$cache/$abi-$arch-$key

if [ ! -f "$out/.leaklab-fetched" ]; then
	# The downloads (60-110 MB for the image) go beside the cache, not into
	# a /tmp that may be a small tmpfs.
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/.download.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	say "downloading ${packages[*]}"
	if ! apt_download "$tmp" "${packages[@]}"; then
		# The archive moves: a stale list names an upload it no longer has.
		[ "$updated" = 0 ] || fail "apt-get download of ${packages[*]} failed"
		update "the download failed: refreshing the lists"
		resolve || fail "apt knows no $series kernel for $darch${pin:+ with ABI $pin} after apt-get update"
		release=$abi-$darch
		key=$(sha256sum <<<"${packages[*]}$(cat "$0")" | cut -c1-12)
		out=$cache/$abi-$arch-$key
		rm -f "$tmp"/*.deb
		apt_download "$tmp" "${packages[@]}" || fail "apt-get download of ${packages[*]} failed"
	fi
	for deb in "$tmp"/*.deb; do say "$(du -h "$deb" | cut -f1) $(basename "$deb")"; done
	rm -rf "$out"
	# Unpacked beside its final place and renamed into it at the end: another
	# run may fetch the same kernel at once, and a half-made DIR never shows.
	work=$out.$$
	rm -rf "$work" && mkdir -p "$work/root" "$tmp/image"
	trap 'rm -rf "$tmp" "$work"' EXIT

	# boot/ comes first in the image's data.tar: with --occurrence tar stops
	# once it has the named files, instead of unpacking ~100 MB of modules
	# (dpkg-deb then dies of a broken pipe, which is expected). A package
	# without one of the names makes tar read to the end and fail: then take
	# the whole of ./boot.
	image_deb=$(echo "$tmp"/linux-image-*.deb)
	if ! { dpkg-deb --fsys-tarfile "$image_deb" 2>/dev/null || true; } |
		tar -x -C "$tmp/image" --occurrence "./boot/vmlinuz-$release" "./boot/config-$release" \
			"./boot/System.map-$release" 2>/dev/null; then
		dpkg-deb --fsys-tarfile "$image_deb" | tar -x -C "$tmp/image" ./boot ||
			fail "cannot unpack boot/ from $(basename "$image_deb")"
	fi
	[ -f "$tmp/image/boot/vmlinuz-$release" ] && [ -f "$tmp/image/boot/config-$release" ] ||
		fail "$(basename "$image_deb") has no boot/vmlinuz-$release and boot/config-$release"
	cp "$tmp/image/boot/vmlinuz-$release" "$work/kernel-image"
	cp "$tmp/image/boot/config-$release" "$work/config"
	map=$tmp/image/boot/System.map-$release
	# Debian ships a one-line stub that points at the -dbg package.
	if [ -f "$map" ] && [ "$(head -n 2 "$map" | wc -l)" -gt 1 ]; then
		cp "$map" "$work/System.map"
	fi
	rm -f "$image_deb"

	for deb in "$tmp"/*.deb; do
		dpkg-deb -x "$deb" "$work/root" || fail "cannot unpack $(basename "$deb")"
	done
	kdir=$work/root/usr/src/linux-headers-$release
	# The Makefile is one line, `include /usr/src/linux-headers-<abi>-common/
	# Makefile`: point it into DIR (its final path), so that nothing under
	# /usr/src is needed. `scripts` and `tools` are relative links into
	# usr/lib/linux-kbuild-*, which stay valid inside root/.
	grep -q '^include /usr/src/' "$kdir/Makefile" ||
		fail "unexpected $kdir/Makefile (no 'include /usr/src/...'): $(head -c 200 "$kdir/Makefile")"
	sed -i "s|^include /usr/src/|include $out/root/usr/src/|" "$kdir/Makefile"
	# 6.1's .kernelvariables picks CROSS_COMPILE from DEB_HOST_ARCH and
	# DEB_HOST_GNU_TYPE, which only dpkg-buildpackage's environment had: left
	# empty, an arm64 module is built with the host's gcc-12 and fails. Give
	# them the values of the headers' architecture (the environment still
	# wins), as 6.12's file does by itself (override CROSS_COMPILE).
	vars=$kdir/.kernelvariables
	if grep -q 'DEB_HOST_GNU_TYPE' "$vars" && ! grep -q '^DEB_HOST_GNU_TYPE' "$vars"; then
		case $darch in amd64) gnu_type=x86_64-linux-gnu ;; arm64) gnu_type=aarch64-linux-gnu ;; esac
		{
			printf '# Added by leaklab (scripts/debian-kernel.sh): set by dpkg-buildpackage when Debian built it.\n'
			printf 'DEB_HOST_ARCH ?= %s\nDEB_HOST_GNU_TYPE ?= %s\n' "$darch" "$gnu_type"
			# shellcheck disable=SC2016 # make's $(shell), not the shell's
			printf 'DEB_BUILD_ARCH ?= $(shell dpkg --print-architecture)\n'
			cat "$vars"
		} >"$vars.new"
		mv "$vars.new" "$vars"
	fi
	# lib/modules/<release>/{build,source} are absolute links to /usr/src: make
	# them relative, so they point into root/ too.
	for link in build source; do
		l=$work/root/lib/modules/$release/$link
		[ -L "$l" ] || continue
		ln -sfn "../../../usr/src/$(basename "$(readlink "$l")")" "$l"
	done
	# UTS_RELEASE is what a module's vermagic starts with (6.1's
	# include/config/kernel.release holds the upstream 6.1.NNN instead; the
	# Debian release comes from .kernelvariables' KERNELRELEASE).
	got=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$kdir/include/generated/utsrelease.h" 2>/dev/null || true)
	[ "$got" = "$release" ] ||
		fail "the headers' UTS_RELEASE is '$got', not $release"
	[ -x "$kdir/scripts/basic/fixdep" ] ||
		fail "no kbuild host programs under $kdir/scripts (linux-kbuild not unpacked?)"
	printf '%s\n' "$out/root/usr/src/linux-headers-$release" >"$work/kdir"
	printf '%s\n' "$release" >"$work/release"
	printf '%s\n' "${packages[@]}" >"$work/packages"
	touch "$work/.leaklab-fetched"
	mv -T "$work" "$out" 2>/dev/null || rm -rf "$work"
	say "unpacked $release into $out"
	# The same kernel unpacked by an older version of this script (another
	# key) is stale, and each takes 90-140 MB: remove it. (Names with a
	# .PID tail are another run's work in progress; the glob skips them.)
	for old in "$cache/$abi-$arch-"????????????; do
		[ "$old" = "$out" ] || [ ! -f "$old/.leaklab-fetched" ] || rm -rf "$old"
	done
fi
check "$out"
mkdir -p "$cache"
printf '%s\n' "$out" >"$stamp.$$"
mv -f "$stamp.$$" "$stamp"
# Stamps left by older versions of this script name directories removed above.
for old in "${stamp%-*}-"????????????; do
	[ "$old" = "$stamp" ] || rm -f "$old"
done
printf '%s\n' "$out"
