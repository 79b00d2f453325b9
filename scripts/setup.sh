#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Installs what leaklab needs on a Debian 12 machine. Idempotent: when
# everything is present it only checks and returns within a second or two.
set -euo pipefail

BINDGEN_VERSION=0.70.1
RUST_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
# chromium: make test opens the HTML reports in it, headless (tests/html.rs).
DEB_PACKAGES=(
	linux-source-6.12 gcc clang libclang-dev lld llvm flex bison bc
	libelf-dev libssl-dev cpio kmod xz-utils python3 libmagic1
	qemu-system-x86 qemu-system-arm gcc-aarch64-linux-gnu binutils valgrind
	dwarves chromium
)

say() { printf 'setup: %s\n' "$*" >&2; }

# shellcheck source=scripts/as-root.sh
. "$(dirname "$0")/as-root.sh"

missing=()
for p in "${DEB_PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -qq
	if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
		# Some images carry a backported qemu-utils that Debian 12's
		# qemu-system 7.2 cannot sit beside; leaklab does not use it.
		say "retrying without the backported qemu-utils that conflicts with qemu-system 7.2"
		as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" qemu-utils-
	fi
fi

if ! command -v rustup >/dev/null 2>&1; then
	say "rustup is missing: install the Rust toolchain with rustup first (https://rustup.rs)"
	exit 2
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	say "adding the rust-src component (the kernel builds core from it)"
	rustup component add rust-src
fi
installed_targets=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
	if ! grep -qx "$t" <<<"$installed_targets"; then
		say "adding Rust target $t (static guest binary)"
		rustup target add "$t"
	fi
done

if [ "$(bindgen --version 2>/dev/null || true)" != "bindgen $BINDGEN_VERSION" ]; then
	say "installing bindgen-cli $BINDGEN_VERSION (about 80 s)"
	cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION"
fi

# The guest's shell: Debian's busybox-static for both ARCHs, downloaded (never
# installed) into the cache; `make tool` copies it beside the guest leaklab.
bash "$(dirname "$0")/busybox.sh" x86_64 arm64 >/dev/null

# promtool, from Debian's prometheus package, downloaded (never installed) into
# the cache: the VM tests validate `leaklab watch`'s Prometheus textfile with it.
bash "$(dirname "$0")/promtool.sh" >/dev/null

# LAVA's dispatcher and validator, from Debian 12's lava-dispatcher,
# lava-common and lava-server packages and their Python dependencies,
# downloaded (never installed) into the cache: `make lava` and the tests run
# LAVA's own lava-run with them.
bash "$(dirname "$0")/lava.sh" >/dev/null
