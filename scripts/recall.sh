#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Recall of kmemleak through leaklab, measured over fresh boots of ARCH:
#  1. leaklab's samples: every pattern leaky then fixed, N runs each
#     (leaklab cycle); per pattern, the objects kmemleak reported of those
#     the module lost, and the boots where the count was exact;
#  2. the kernel's kmemleak-test.ko loaded and unloaded once (leaklab census),
#     harvested with the scan protocol and with the naive "clear, work, scan
#     twice, read" of public load/unload tests: objects found per boot.
#
#   scripts/recall.sh TOOL BUILD_DIR ARCH [BOOTS] [N]
set -euo pipefail
tool=$1 build=$2 arch=$3 boots=${4:-20} n=${5:-5}
out=$build/results/recall-$arch
rm -rf "$out" && mkdir -p "$out/build"
# A snapshot of the tool, the guest binary and the modules: a rebuild while
# this runs does not mix versions.
cp "$tool" "$out/leaklab" && cp -a "$build/$arch" "$out/build/"
vm() { "$out/leaklab" vm --arch "$arch" --build-dir "$out/build" --log "$out/console-$1.log" -- "${@:2}"; }
for i in $(seq 1 "$boots"); do
	vm "cycle-$i" cycle -n "$n" --format json >"$out/cycle-$i.json" 2>"$out/stderr-cycle-$i.txt" || true
	vm "census-$i" census --format json >"$out/census-$i.json" 2>"$out/stderr-census-$i.txt" || true
	vm "naive-$i" census --naive --format json >"$out/naive-$i.json" 2>"$out/stderr-naive-$i.txt" || true
	printf '.' >&2
done
echo >&2
python3 - "$out" "$boots" "$arch" "$n" <<'PY'
import json, sys, glob
out, boots, arch, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(f):
    try:
        return json.load(open(f))
    except (OSError, ValueError):
        print(f"{f}: no result (see the console log beside it)")
        return None
tot, unexpected = {}, 0
for i in range(1, boots + 1):
    run = load(f"{out}/cycle-{i}.json")
    if run is None:
        continue
    c = run["cycles"][0]
    unexpected += len(c["unexpected"])
    for v in c["verdicts"]:
        if v["variant"] != "leaky":
            continue
        t = tot.setdefault(v["pattern"], [0, 0, 0, 0])
        t[0] += v["found"]["objects"]
        t[1] += v["stats_leaked"]["objects"]
        t[2] += v["found"] == v["stats_leaked"]
        t[3] += 1
print(f"recall on {arch}, {boots} boots, {n} leaky runs a pattern:")
print(f"{'pattern':<18} {'objects found':>14} {'exact boots':>12}")
for p, (f, e, x, b) in sorted(tot.items()):
    print(f"{p:<18} {f:>6}/{e:<7} {x:>5}/{b:<6}")
print(f"reports outside the samples: {unexpected}")
def test_objects(kind):
    counts = []
    for i in range(1, boots + 1):
        c = load(f"{out}/{kind}-{i}.json")
        m = [m for m in (c or {}).get("modules", []) if m["name"] == "kmemleak_test"]
        counts.append(m[0]["leaks"]["objects"] if m else None)
    return counts
# samples/kmemleak/kmemleak-test.c leaks, with one CPU: 8 kmalloc, 5 vmalloc,
# the 10 list elements (orphaned when the module goes), 1 kmalloc(129) a CPU
# and 1 __alloc_percpu: 25 objects.
EXPECTED = 25
proto, naive = test_objects("census"), test_objects("naive")
print(f"kmemleak-test.ko, {EXPECTED} objects leaked a boot; found per boot:")
for name, counts in (("scan protocol", proto), ("naive scan twice", naive)):
    full = sum(1 for c in counts if c == EXPECTED)
    print(f"  {name:<17} all {EXPECTED} in {full:>2}/{boots} boots; counts {counts}")
PY
