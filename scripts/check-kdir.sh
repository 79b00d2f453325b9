#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Checks that a kernel tree of the user's (make try/run KDIR=...) can boot as
# leaklab's guest and show leaks: its .config has what the guest and kmemleak
# need (qemu/common.config has the whole list leaklab's own kernel uses), and
# its image is built. One line saying what is missing, exit 2.
#
#   scripts/check-kdir.sh KDIR x86_64|arm64
set -euo pipefail

kdir=${1:?usage: check-kdir.sh KDIR ARCH}
arch=${2:?usage: check-kdir.sh KDIR ARCH}
fail() { echo "KDIR=$kdir: $*" >&2; exit 2; }

config=$kdir/.config
[ -f "$config" ] || fail "no .config: configure and build the kernel first (see qemu/common.config for the options leaklab needs)"
case "$arch" in
x86_64) image=arch/x86/boot/bzImage console=CONFIG_SERIAL_8250_CONSOLE ;;
arm64) image=arch/arm64/boot/Image console=CONFIG_SERIAL_AMBA_PL011_CONSOLE ;;
*) fail "unknown ARCH $arch" ;;
esac
missing=()
for option in CONFIG_MODULES CONFIG_MODULE_UNLOAD CONFIG_DEBUG_FS CONFIG_DEBUG_KMEMLEAK \
	CONFIG_BLK_DEV_INITRD CONFIG_PROC_FS CONFIG_SYSFS CONFIG_DEVTMPFS "$console"; do
	grep -q "^$option=y" "$config" || missing+=("$option")
done
[ ${#missing[@]} -eq 0 ] || fail "the kernel lacks ${missing[*]}: set them (=y), rebuild, and try again"
! grep -q '^CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y' "$config" ||
	fail "kmemleak is off by default (CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y): unset it, or leaklab sees nothing"
[ -f "$kdir/$image" ] || fail "no $image: build the kernel (make -C $kdir ARCH=$arch)"
