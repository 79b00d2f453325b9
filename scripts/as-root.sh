# SPDX-License-Identifier: GPL-2.0
# Sourced by scripts/setup.sh and scripts/busybox.sh: `as_root CMD...` runs
# CMD as root (directly, or through sudo), else stops with one line and exit 2.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		printf '%s: need root to run: %s (install sudo or run '"'"'make setup'"'"' as root)\n' \
			"$(basename "$0" .sh)" "$*" >&2
		exit 2
	fi
}
