#!/usr/bin/env bash
# Builds (or finds in the cache) a minimal Rust + kmemleak kernel for one ARCH.
#
#   qemu/build-kernel.sh x86_64|arm64 [VARIANT]   prints the build directory (KDIR)
#
# The build lives outside the clone, under $LEAKLAB_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/leaklab), in a directory named by a hash of
# everything that changes the result: the kernel source package version, the
# config fragments, this script, the toolchain versions, ARCH and LLVM. A second
# call with nothing changed returns at once.
set -euo pipefail

arch=${1:?usage: build-kernel.sh x86_64|arm64 [VARIANT]}
# A variant merges qemu/VARIANT.config last (debug: lockdep, hung tasks).
variant=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
cache=${LEAKLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leaklab}
llvm=${LLVM:-}
jobs=${JOBS:-$(nproc)}

say() { printf 'kernel: %s\n' "$*" >&2; }

case "$arch" in
x86_64) karch=x86_64; cross=; image=vmlinux.pvh ;;
arm64 | aarch64) arch=arm64; karch=arm64; cross=aarch64-linux-gnu-; image=arch/arm64/boot/Image ;;
*) say "unknown ARCH '$arch': use x86_64 or arm64"; exit 2 ;;
esac
if [ -n "$llvm" ]; then cross=; fi
fragments=("$here/common.config" "$here/$arch.config")
if [ -n "$variant" ]; then
	[ -f "$here/$variant.config" ] || { say "no kernel variant '$variant' (qemu/$variant.config)"; exit 2; }
	fragments+=("$here/$variant.config")
fi

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null) || {
	say "linux-source-6.12 is not installed: run 'make setup'"
	exit 2
}
tarball=/usr/src/linux-source-6.12.tar.xz

toolchain() {
	rustc -vV
	bindgen --version
	if [ -n "$llvm" ]; then clang --version; else "${cross}gcc" --version; fi
	ld.lld --version 2>/dev/null || true
}
key=$(
	{
		echo "src=$srcver arch=$arch llvm=$llvm"
		cat "${fragments[@]}" "$0"
		toolchain
	} | sha256sum | cut -c1-16
)

src=$cache/src/linux-$srcver
out=$cache/kernel/$arch${variant:+-$variant}-$key
if [ -f "$out/.leaklab-built" ]; then
	echo "$out"
	exit 0
fi

if [ ! -f "$src/.leaklab-unpacked" ]; then
	say "unpacking $tarball into $src"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -xf "$tarball" -C "$src.tmp" --strip-components=1
	touch "$src.tmp/.leaklab-unpacked"
	mv "$src.tmp" "$src"
fi

mk=(make -C "$src" O="$out" ARCH="$karch" -j"$jobs")
[ -n "$cross" ] && mk+=(CROSS_COMPILE="$cross")
[ -n "$llvm" ] && mk+=(LLVM="$llvm")

say "building $arch kernel in $out (key $key; several minutes the first time)"
rm -rf "$out"
mkdir -p "$out"
"${mk[@]}" -s tinyconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${fragments[@]}" >/dev/null
"${mk[@]}" -s olddefconfig

# A fragment option that did not take (a missing dependency, or Rust found
# unavailable by the kernel's probe) must stop the build, not pass silently.
# A later fragment overrides an earlier one (a variant turning an option off).
declare -A want=()
order=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) opt=${line%%=*} ;;
	"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *} ;;
	*) continue ;;
	esac
	[ -n "${want[$opt]+x}" ] || order+=("$opt")
	want[$opt]=$line
done < <(cat "${fragments[@]}")
bad=0
for opt in "${order[@]}"; do
	line=${want[$opt]}
	case "$line" in
	CONFIG_*=*) grep -qxF "$line" "$out/.config" || { say "option did not take: $line"; bad=1; } ;;
	*) ! grep -q "^$opt=" "$out/.config" || { say "option is set but should not be: $opt"; bad=1; } ;;
	esac
done
if [ "$bad" != 0 ]; then
	"${mk[@]}" rustavailable >&2 || true
	say "kernel config is not what qemu/*.config asks for; see above"
	exit 1
fi

"${mk[@]}" -s
if [ "$arch" = x86_64 ]; then
	# QEMU boots x86_64 guests through the PVH entry of the uncompressed
	# kernel (CONFIG_PVH); without debug info it loads in a blink.
	objcopy --strip-debug "$out/vmlinux" "$out/$image"
fi
[ -f "$out/$image" ] || { say "build finished without $image"; exit 1; }
ln -sfn "$image" "$out/leaklab-image"
touch "$out/.leaklab-built"
say "built $out/$image"
echo "$out"
