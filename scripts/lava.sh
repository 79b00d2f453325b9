#!/usr/bin/env bash
# scripts/lava.sh: prints the directory of a private LAVA dispatcher, one
# line: Debian 12's lava-dispatcher, lava-common, lava-dispatcher-host, the
# device-type templates of lava-server and the Python packages they import,
# fetched once with `apt-get download` and unpacked with `dpkg-deb -x` into
# the cache, $LEAKLAB_CACHE/lava/<lava-dispatcher version>-<key>/root.
#
# Nothing is installed: no package, no service, no init system change.
# scripts/lava-run.py runs LAVA's own `lava-run` from that directory under
# Debian's /usr/bin/python3 (the unpacked .so files are built for it).
#
# Idempotent and quick: with the tree cached and apt's lists unchanged it
# only checks that LAVA imports.
set -euo pipefail

# shellcheck source=scripts/apt-download.sh
. "$(dirname "$0")/apt-download.sh"

say() { printf 'lava: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

[ $# = 0 ] || die "usage: scripts/lava.sh"
cache=${LEAKLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leaklab}/lava
python=/usr/bin/python3

# What lava-run imports for a QEMU job with monitors, and the device-type
# templates (lava-server; only its jinja2 files are used). guestfs is left
# out on purpose: lava-dispatcher imports it at start but uses it only to
# build test-shell overlays for disk images (scripts/lava-run.py stubs it).
packages=(
	lava-dispatcher lava-dispatcher-host lava-common lava-server
	python3-pexpect python3-ptyprocess python3-jinja2 python3-markupsafe
	python3-requests python3-urllib3 python3-idna python3-certifi
	python3-charset-normalizer python3-chardet python3-configobj python3-six
	python3-setproctitle python3-tz python3-voluptuous python3-netifaces
	python3-magic python3-pyudev python3-aiohttp python3-multidict python3-yarl
	python3-async-timeout python3-aiosignal python3-frozenlist python3-attr
	python3-yaml
)

# Fails unless LAVA imports from $1 under Debian's python.
check() {
	PYTHONPATH=$1/usr/lib/python3/dist-packages "$python" -c \
		'import sys, types; sys.modules["guestfs"] = types.ModuleType("guestfs"); import lava_dispatcher.parser, lava_common.schemas, yaml, jinja2' \
		>/dev/null 2>&1 || die "LAVA in $1 does not import under $python (remove $1 and run again)"
}

[ -x "$python" ] || die "$python not found: LAVA's unpacked packages need Debian's python3 (apt-get install python3)"
lists=$(apt_lists_dir)
# The tree as resolved last time for this list of packages.
stamp=$cache/resolved-$(sha256sum <<<"${packages[*]}" | cut -c1-12)
if [ -f "$stamp" ] && [ -d "$lists" ] && [ "$stamp" -nt "$lists" ] && out=$(<"$stamp") && [ -d "$out" ]; then
	check "$out"
	printf '%s\n' "$out"
	exit 0
fi

# The tree depends on every package's version, not only the dispatcher's.
versions=$(apt-cache show --no-all-versions "${packages[@]}" 2>/dev/null |
	awk '/^Package: /{p=$2} /^Version: /{print p"="$2}')
for p in "${packages[@]}"; do
	grep -q "^$p=" <<<"$versions" || die "apt knows no $p: is this Debian 12 (bookworm) with its main archive?"
done
version=$(sed -n 's/^lava-dispatcher=//p' <<<"$versions")
key=$(sha256sum <<<"$versions$(cat "$0")" | cut -c1-16)
out=$cache/${version//:/%3a}-$key/root
if [ ! -d "$out" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	say "downloading lava-dispatcher $version and ${#packages[@]} packages"
	# shellcheck disable=SC2046 # one word a package
	apt_download "$tmp" $(tr '\n' ' ' <<<"$versions") ||
		die "apt-get download of LAVA's packages failed"
	mkdir "$tmp/root"
	for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
	check "$tmp/root"
	mkdir -p "$(dirname "$out")"
	# Another build may fetch the same tree at once: rename into place.
	rm -rf "$out.$$" && mv "$tmp/root" "$out.$$"
	mv -T "$out.$$" "$out" 2>/dev/null || rm -rf "$out.$$"
fi
check "$out"
printf '%s\n' "$out" >"$stamp.$$"
mv -f "$stamp.$$" "$stamp"
printf '%s\n' "$out"
