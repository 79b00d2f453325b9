#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make soak: 1000 load/run/unload cycles of leaklab.ko in QEMU, twice.

1. the fixed variant of every pattern each cycle: kmemleak must stay empty,
   and Slab and MemAvailable must stay within the stated bound;
2. the same plus one leaky sample each cycle: the leak must grow linearly,
   at the rate the module states (the resource-exhaustion curve).

The bounds are the tool's (`leaklab soak`, userspace/src/commands/soak.rs):
its exit status and its `problems` say whether they were met. Writes
build/results/soak-ARCH-{fixed,leaky}.json and soak-ARCH.svg, prints a
markdown table for BENCHMARKS.md, and exits 1 when a bound is not met.

    scripts/soak.py TOOL BUILD_DIR ARCH CYCLES LEAKY_PATTERN
"""
import json
import os
import subprocess
import sys

tool, build, arch, cycles, leaky = sys.argv[1:6]
results = os.path.join(build, "results")
os.makedirs(results, exist_ok=True)


def soak(kind, extra):
    out = os.path.join(results, f"soak-{arch}-{kind}.json")
    cmd = [tool, "vm", "--arch", arch, "--build-dir", build, "--timeout", "7200",
           "--log", os.path.join(results, f"soak-{arch}-{kind}.log"), "--",
           "soak", "--cycles", cycles, "--every", "10", "--format", "json", *extra]
    with open(out, "w") as f:
        p = subprocess.run(cmd, stdout=f)
    if p.returncode not in (0, 1, 3):
        sys.exit(f"soak: the {kind} run failed (status {p.returncode}); see {out} and its .log")
    run = json.load(open(out))
    run["status"] = p.returncode
    return run


def plot(runs, path):
    """Slab and MemAvailable over cycles, drawn by the tool (leaklab show --svg)."""
    p = subprocess.run([tool, "show", *runs, "--svg", path], stdout=subprocess.DEVNULL)
    if p.returncode not in (0, 1, 3):
        sys.exit(f"soak: plotting {path} failed (status {p.returncode})")


fixed = soak("fixed", [])
leak = soak("leaky", ["--leaky", leaky])
path = os.path.join(results, f"soak-{arch}.svg")
plot([os.path.join(results, f"soak-{arch}-{kind}.json") for kind in ("fixed", "leaky")], path)

problems = []
for name, r in (("fixed run", fixed), ("leaky run", leak)):
    problems += [f"{name}: {p}" for p in r["problems"]]
    if r["status"] == 3:
        problems.append(f"{name}: inconclusive: kmemleak's reports did not settle")
rate = leak["leak_per_cycle"]

print(f"| run ({arch}, {cycles} cycles) | wall | kmemleak reported / leaked | Slab drift | MemAvailable drift | Slab slope | leak slope (Slab less kmemleak's records) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, r in (("fixed variants", fixed), (f"+ {leaky} leaky", leak)):
    print(f"| {name} | {r['seconds']:.0f} s | {r['reported']} / {r['leaked']} | {r['slab_drift_kib']:+} KiB"
          f" | {r['available_drift_kib']:+} KiB | {r['slab_slope']:+.1f} B/cycle | {r['leak_slope']:+.1f} B/cycle |")
print(f"bounds (leaklab soak): fixed drift within 1024 KiB and kmemleak empty; leaky slope within "
      f"25% of {rate} B/cycle and every leaked object reported")
print(f"plot: {path}")
for p in problems:
    print(f"soak: FAIL: {p}")
sys.exit(1 if problems else 0)
