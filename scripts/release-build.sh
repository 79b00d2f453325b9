#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The tool's release builds for each TRIPLE given, kept in the cache by
# what goes into them: the userspace sources and lock file, the toolchain
# and linker, the build's environment and this script (the flags it
# passes). Prints each binary's path in the cache, one a line, in the
# order given.
#
# Why: cargo decides freshness by mtimes, and a fresh clone (CI) gives
# every source a new one, so each clean clone rebuilt the three LTO
# binaries (3 min on 2 cores) from sources already built. A tree built
# before is not built again; any change to its inputs builds anew.
#
#   scripts/release-build.sh x86_64-unknown-linux-gnu aarch64-unknown-linux-musl
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 TRIPLE..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../userspace"
cache=${LEAKLAB_CACHE:?LEAKLAB_CACHE is not set: run this through make}/tools
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

# A static binary for the musl targets (the guests' /init).
config() {
	case $1 in
	*-musl) printf '%s\n' --config "target.$1.rustflags=[\"-C\",\"target-feature=+crt-static\"]" ;;
	esac
}

# What goes into every build: the sources the release binary is made of
# (the tests are not), the toolchain, the linkers, the build's environment.
inputs() {
	{ git ls-files -co --exclude-standard -- . ':!tests' 2>/dev/null ||
		find . -path ./target -prune -o -path ./tests -prune -o -type f -print; } |
		LC_ALL=C sort | while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done |
		xargs -d '\n' sha256sum
	rustc -vV
	cargo -V
	"${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-aarch64-linux-gnu-gcc}" --version 2>/dev/null | head -1 || true
	env | grep -E '^(RUSTFLAGS|CARGO_ENCODED_RUSTFLAGS|RUSTC[A-Z_]*|CARGO_(BUILD|PROFILE|TARGET)_[A-Z0-9_]*)=' |
		grep -v '^CARGO_TARGET_DIR=' | LC_ALL=C sort
	cat "$here/release-build.sh"
	[ ! -f "$HOME/.cargo/config.toml" ] || cat "$HOME/.cargo/config.toml"
}
common=$(inputs | sha256sum | cut -c1-16)

paths=() missing=() build_args=()
for t in "$@"; do
	dir=$cache/$common-$t
	paths+=("$dir/leaklab")
	if [ ! -x "$dir/leaklab" ]; then
		missing+=("$t")
		build_args+=(--target "$t")
		mapfile -t -O "${#build_args[@]}" build_args < <(config "$t")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	# One cargo run for all: each binary is linked in one codegen unit on
	# one core, so several at once use every core.
	cargo build --release "${build_args[@]}" >&2
	for t in "${missing[@]}"; do
		dir=$cache/$common-$t
		mkdir -p "$dir"
		cp "$target_dir/$t/release/leaklab" "$dir/leaklab.tmp.$$"
		mv -f "$dir/leaklab.tmp.$$" "$dir/leaklab"
	done
	# The cache keeps the last 24 binaries.
	ls -1dt "$cache"/*/ 2>/dev/null | tail -n +25 | xargs -r rm -rf
fi
printf '%s\n' "${paths[@]}"
