#!/usr/bin/env python3
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


def svg(runs, path):
    """Slab and MemAvailable (MiB, relative to the start) over cycles."""
    w, h, pad = 720, 360, 50
    series = []
    for name, run, colour in runs:
        s = run["samples"]
        for field, dash in (("slab_kib", ""), ("mem_available_kib", "6,4")):
            pts = [(x["cycle"], (x[field] - s[0][field]) / 1024) for x in s]
            series.append((f"{name}: {field.split('_kib')[0]}", pts, colour, dash))
    xmax = max(p[0] for _, pts, _, _ in series for p in pts) or 1
    ys = [p[1] for _, pts, _, _ in series for p in pts]
    ymin, ymax = min(ys + [0]), max(ys + [0])
    ymin, ymax = (ymin - 0.1, ymax + 0.1) if ymin == ymax else (ymin, ymax)
    X = lambda x: pad + (w - 2 * pad) * x / xmax
    Y = lambda y: h - pad - (h - 2 * pad) * (y - ymin) / (ymax - ymin)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w/2}" y="20" text-anchor="middle">leaklab soak ({arch}): memory change vs cycles</text>',
           f'<line x1="{pad}" y1="{Y(0)}" x2="{w-pad}" y2="{Y(0)}" stroke="#ccc"/>',
           f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h-pad}" stroke="black"/>',
           f'<text x="{w/2}" y="{h-12}" text-anchor="middle">cycles (0 to {xmax})</text>',
           f'<text x="14" y="{h/2}" transform="rotate(-90 14 {h/2})" text-anchor="middle">MiB since start</text>',
           f'<text x="{pad-4}" y="{Y(ymax)+4}" text-anchor="end">{ymax:+.1f}</text>',
           f'<text x="{pad-4}" y="{Y(ymin)+4}" text-anchor="end">{ymin:+.1f}</text>']
    for i, (label, pts, colour, dash) in enumerate(series):
        d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}" points="{d}"/>')
        out.append(f'<text x="{pad+10}" y="{pad+14*i}" fill="{colour}">{"- - " if dash else "--- "}{label}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


fixed = soak("fixed", [])
leak = soak("leaky", ["--leaky", leaky])
path = os.path.join(results, f"soak-{arch}.svg")
svg([("fixed", fixed, "#1f77b4"), (f"{leaky} leaky", leak, "#d62728")], path)

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
