#!/usr/bin/env bash
# Recall of kmemleak on leaklab's leaky samples: boots ARCH BOOTS times, runs
# every pattern, leaky then fixed, N times per boot (leaklab cycle), and prints
# per pattern how many of the objects the leaky variant lost kmemleak reported.
#
#   scripts/recall.sh TOOL BUILD_DIR ARCH [BOOTS] [N]
set -euo pipefail
tool=$1 build=$2 arch=$3 boots=${4:-20} n=${5:-3}
out=$build/results/recall-$arch
rm -rf "$out" && mkdir -p "$out"
for i in $(seq 1 "$boots"); do
	"$tool" vm --arch "$arch" --build-dir "$build" --log "$out/console-$i.log" \
		-- cycle -n "$n" --format json >"$out/cycle-$i.json" 2>"$out/stderr-$i.txt" || true
	printf '.' >&2
done
echo >&2
python3 - "$out" "$boots" "$arch" <<'PY'
import json, sys, glob
out, boots, arch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tot = {}
for f in sorted(glob.glob(f"{out}/cycle-*.json")):
    try:
        run = json.load(open(f))
    except ValueError:
        print(f"{f}: no result (see the console log beside it)")
        continue
    for v in [v for v in run["cycles"][0]["verdicts"] if v["variant"] == "leaky"]:
        t = tot.setdefault(v["pattern"], [0, 0, 0, 0])
        t[0] += v["found"]["objects"]
        t[1] += v["expected"]["objects"]
        t[2] += v["found"]["objects"] == v["expected"]["objects"]
        t[3] += 1
print(f"recall on {arch}, {boots} boots:")
print(f"{'pattern':<18} {'objects found':>14} {'exact boots':>12}")
for p, (f, e, x, b) in sorted(tot.items()):
    print(f"{p:<18} {f:>6}/{e:<7} {x:>5}/{b:<6}")
PY
