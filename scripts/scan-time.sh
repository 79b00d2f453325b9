#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# What one kmemleak scan costs as guest memory grows (a measurement, not a
# test): boots ARCH under QEMU with each memory size, runs `leaklab doctor`
# there (which times one full scan before its canary), and prints a
# markdown table. Board users read it to know what their RAM costs.
#
#   scripts/scan-time.sh TOOL BUILD_DIR ARCH [MIB ...]
set -euo pipefail
tool=$1 build=$2 arch=$3
shift 3
sizes=${*:-512 2048 4096}
out=$build/results/scan-time-$arch
rm -rf "$out" && mkdir -p "$out"
echo "| guest memory | one kmemleak scan | doctor (boot to verdict) |"
echo "|---:|---:|---:|"
for mib in $sizes; do
	start=$(date +%s.%N)
	"$tool" vm --arch "$arch" --build-dir "$build" --memory "$mib" --timeout 900 \
		--log "$out/console-$mib.log" -- doctor --format json >"$out/doctor-$mib.json" \
		2>"$out/stderr-$mib.txt" || true
	end=$(date +%s.%N)
	python3 - "$out/doctor-$mib.json" "$mib" "$start" "$end" <<'PY'
import json, sys
path, mib, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
try:
    d = json.load(open(path))
    scan = f"{d['scan_seconds']:.2f} s" if d.get("scan_seconds") else "n/a"
    verdict = "ok" if d.get("ok") else "FAIL"
except (OSError, ValueError):
    scan, verdict = "n/a", "no result"
size = f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"
print(f"| {size} | {scan} | {end - start:.1f} s ({verdict}) |")
PY
done
