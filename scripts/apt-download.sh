# SPDX-License-Identifier: GPL-2.0
# scripts/apt-download.sh: sourced by the scripts that fetch Debian packages
# into the cache without installing them (busybox.sh, promtool.sh, lava.sh).

# The directory of apt's package lists: `apt-get update` renames new lists
# into it, so a file newer than it was made after the last update.
apt_lists_dir() {
	apt-config shell d Dir::State::lists/d | sed -n "s/^d='\(.*\)'$/\1/p"
}

# apt_download DIR PACKAGE=VERSION...: the packages' .deb files into DIR;
# nothing is installed.
apt_download() {
	local dir=$1
	shift
	local sandbox=()
	# apt's download user cannot write into root's private temporary directory.
	[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
	(cd "$dir" && apt-get download -qq "${sandbox[@]}" "$@")
}
