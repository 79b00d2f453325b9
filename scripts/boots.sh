#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The main job (`leaklab matrix`, as `make run` runs it) over fresh boots of
# ARCH: how many boots exit 0, and the calibration's count in each (a
# measurement, not a test).
#
#   scripts/boots.sh TOOL BUILD_DIR ARCH [BOOTS]
set -euo pipefail
tool=$1 build=$2 arch=$3 boots=${4:-40}
out=$build/results/boots-$arch
rm -rf "$out" && mkdir -p "$out/build"
# A snapshot of the tool, the guest binary and the modules: a rebuild while
# this runs does not mix versions.
cp "$tool" "$out/leaklab" && cp -a "$build/$arch" "$out/build/"
for i in $(seq 1 "$boots"); do
	status=0
	"$out/leaklab" vm --arch "$arch" --build-dir "$out/build" --log "$out/console-$i.log" \
		-- matrix --format json >"$out/matrix-$i.json" 2>"$out/stderr-$i.txt" || status=$?
	echo "$i $status" >>"$out/status.txt"
	printf '.' >&2
done
echo >&2
python3 - "$out" "$boots" "$arch" <<'PY'
import collections, json, sys
out, boots, arch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
status = dict(l.split() for l in open(f"{out}/status.txt"))
calib, rows = collections.Counter(), collections.Counter()
for i in range(1, boots + 1):
    try:
        c = json.load(open(f"{out}/matrix-{i}.json"))["cycles"][0]
    except (OSError, ValueError, IndexError, KeyError):
        calib["no result"] += 1
        continue
    for r in c["references"]:
        if r["module"] == "kmemleak_test":
            # A note: only the per-CPU object was missing (x86_64).
            note = " (per-CPU object not reported)" if r.get("note") else ""
            calib[f"{r['found']['objects']} of {r['expected']}{note}"] += 1
    for v in c["verdicts"]:
        if not v["ok"]:
            rows[f"{v['pattern']} {v['variant']}"] += 1
ok = sum(1 for s in status.values() if s == "0")
print(f"main job on {arch}: {ok} of {boots} boots exited 0; exit statuses: "
      + ", ".join(f"{s}: {n}" for s, n in sorted(collections.Counter(status.values()).items())))
print("calibration (kmemleak-test): " + ", ".join(f"{k} in {n}" for k, n in sorted(calib.items())))
print("failed sample rows: " + (", ".join(f"{k} in {n}" for k, n in sorted(rows.items())) or "none"))
PY
