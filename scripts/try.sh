#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Checks a driver author's module on the kernel they run, in QEMU, and exits
# with `leaklab check`'s own status (0 clean, 1 leaks, 3 inconclusive; 2 and
# others: the check could not be done), which CI can tell apart:
#
#   scripts/try.sh [--arch x86_64|arm64] [--debian 6.1|6.12 | --kdir TREE]
#                  [--exercise SCRIPT]... [--cpus N] [--memory MIB]
#                  [--results PREFIX] SRC_DIR|MODULE.ko [-- CHECK_OPTIONS...]
#
#   --debian V   Debian 12's own kernel V (6.1: what most Debian 12 machines
#                run; 6.12: the newer series), image and headers fetched as
#                Debian packages into the cache (nothing installed); no
#                kmemleak there, so the allocation trace judges alone
#   --kdir TREE  a kernel tree of yours, built with kmemleak or tracing
#   (neither)    the project's own kernel (kmemleak and the trace)
#   SRC_DIR      the module's source (a Kbuild or Makefile with obj-m),
#                built against that kernel's headers (arm64 cross-built);
#                it must build exactly one module
#   MODULE.ko    a module built for that kernel already
#   --exercise   a shell script run each cycle while the module is loaded
#   --cpus N, --memory MIB  the guest's shape (leaklab vm's defaults)
#   --results PREFIX  where the console log, the check's JSON and its HTML
#                report go (PREFIX.log, .json, .html; default
#                build/results/try-ARCH, try-debian-VERSION-ARCH)
#   CHECK_OPTIONS  passed to `leaklab check` (--cycles 3, --param key=value,
#                --format json, ...)
#
# `make try` runs this (make turns any failure into its own status 2: use
# this script where the status matters). The console log goes to
# build/results/try-ARCH.log (try-debian-VERSION-ARCH.log on Debian's
# kernel); build steps talk on stderr, the verdict is on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'try: %s\n' "$*" >&2; }
usage="usage: scripts/try.sh [--arch x86_64|arm64] [--debian 6.1|6.12 | --kdir TREE] [--exercise SCRIPT]... [--results PREFIX] SRC_DIR|MODULE.ko [-- CHECK_OPTIONS...]"
die() { say "$*"; exit 2; }

arch=x86_64 debian= kdir= target= exercise=() shape=() results=
while [ $# -gt 0 ]; do
	case $1 in
	--arch) arch=${2:?$usage}; shift 2 ;;
	--debian) debian=${2:?$usage}; shift 2 ;;
	--kdir) kdir=${2:?$usage}; shift 2 ;;
	--exercise) exercise+=("${2:?$usage}"); shift 2 ;;
	--cpus | --memory) shape+=("$1" "${2:?$usage}"); shift 2 ;;
	--results) results=${2:?$usage}; shift 2 ;;
	--) shift; break ;;
	-h | --help) echo "$usage"; exit 0 ;;
	-*) die "unknown option '$1': $usage" ;;
	*) [ -z "$target" ] || die "one module at a time ('$target' and '$1'): $usage"
	   target=$1; shift ;;
	esac
done
[ -n "$target" ] || die "say which module (its source directory or its .ko): $usage"
case $arch in aarch64) arch=arm64 ;; x86_64 | arm64) ;; *) die "unknown --arch '$arch': x86_64 or arm64" ;; esac
case $debian in '' | 6.1 | 6.12) ;; *) die "unknown --debian '$debian': Debian 12 has 6.1 and 6.12" ;; esac
[ -z "$debian" ] || [ -z "$kdir" ] || die "--debian and --kdir name two kernels: give one"
[ -e "$target" ] || die "$target does not exist: give your module's source directory or its .ko"
for x in "${exercise[@]}"; do
	[ -f "$x" ] || die "the exercise script $x does not exist"
done

mk=(make -s --no-print-directory ARCH="$arch")
[ -z "$debian" ] || mk+=(DEBIAN="$debian")
[ -z "$kdir" ] || mk+=(KDIR="$kdir")
if [ -n "$kdir" ]; then
	bash scripts/check-kdir.sh "$kdir" "$arch"
	"${mk[@]}" tool >&2
	out=build/$arch
	case $arch in x86_64) image=$kdir/arch/x86/boot/bzImage ;; arm64) image=$kdir/arch/arm64/boot/Image ;; esac
else
	"${mk[@]}" kernel tool >&2
	out=build/${debian:+debian-$debian-}$arch
	kdir=$(cat "$out/kdir")
	image=$out/kernel-image
fi

if [ -d "$target" ]; then
	# Built from a copy: the source directory stays clean, and each kernel
	# keeps its own objects.
	src=$(cd "$target" && pwd)
	copy=$PWD/$out/try/$(basename "$src")
	rm -rf "$copy" && mkdir -p "$copy" && cp -a "$src/." "$copy/"
	kb=(ARCH="$arch")
	# The project's arm64 tree is cross-built here; Debian's headers name
	# their cross compiler themselves (scripts/debian-kernel.sh).
	[ "$arch" != arm64 ] || [ -n "$debian" ] || kb+=(CROSS_COMPILE=aarch64-linux-gnu-)
	say "building $src against $kdir"
	# Its DWARF names the sources where they are, not the copy.
	make -C "$kdir" M="$copy" "${kb[@]}" KCFLAGS="-fdebug-prefix-map=$copy=$src" \
		KRUSTFLAGS="--remap-path-prefix=$copy=$src" modules >&2 ||
		die "building $src against $kdir failed (see above): fix the build, then try again"
	mapfile -t kos < <(find "$copy" -name '*.ko' | sort)
	[ ${#kos[@]} = 1 ] || die "$src built ${#kos[@]} modules (${kos[*]##*/}): give the .ko to check"
	ko=${kos[0]}
else
	ko=$target
fi

results=${results:-build/results/try-${debian:+debian-$debian-}$arch}
mkdir -p "$(dirname "$results")"
vm=(build/leaklab vm --arch "$arch" --build-dir build --kernel "$image"
	--log "$results.log" "${shape[@]}" --module "$ko")
check=(check "/lib/modules/$(basename "$ko")")
for x in "${exercise[@]}"; do
	vm+=(--file "$x:/root/exercise/")
	check+=(--exercise "/root/exercise/$(basename "$x")")
done
# The check's document is kept (build/results/try-...json) and shown in
# the format asked for (human by default), with an HTML report beside it.
format=human options=()
while [ $# -gt 0 ]; do
	case $1 in
	--format) format=${2:?--format needs a value}; shift 2 ;;
	--format=*) format=${1#--format=}; shift ;;
	*) options+=("$1"); shift ;;
	esac
done
case $format in human | json | ktap) ;; *) die "unknown --format '$format': human, json or ktap" ;; esac
# check's own help goes to the terminal, not into the JSON file.
for o in "${options[@]}"; do
	case $o in -h | --help) exec "${vm[@]}" -- "${check[@]}" "$o" ;; esac
done
rm -f "$results.json" "$results.html"
status=0
"${vm[@]}" -- "${check[@]}" "${options[@]}" --format json > "$results.json" || status=$?
if [ -s "$results.json" ]; then
	build/leaklab show --format "$format" "$results.json" || true
	build/leaklab show --format html "$results.json" > "$results.html" || true
	say "results: $results.{log,json,html}"
fi
case $status in
0) ;;
1) say "leaklab check exited 1: $(basename "$ko") leaks (or would not unload)" ;;
3) say "leaklab check exited 3: inconclusive (the verdict above says why): run it again" ;;
*) say "leaklab check exited $status: the check could not be done (see the error above)" ;;
esac
exit $status
