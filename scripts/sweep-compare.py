#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Two sweeps of the same module list side by side, as Markdown.

    scripts/sweep-compare.py LEAKLAB_SWEEP LKFT_SWEEP

Each argument is a sweep's --out directory (its sweep.json and rows/,
written by `leaklab sweep`): typically the same kernel's modules
swept the leaklab way (`--protocol leaklab`, the default) and the LKFT way
(`--protocol lkft`: Linaro's modules.sh, its cycles, one kmemleak scan and
a 3 s sleep, or MemAvailable with a 512 KiB tolerance). It prints, for the
modules both swept: each status's count under each protocol, the module
time (the rows' own seconds, summed), the modules whose verdicts differ
grouped by the pair, and every module either called leaked with what the
other said (and each module whose row lists the kernel's own state apart).
Exits 2 when a directory has no rows.
"""

import collections
import glob
import json
import os
import sys


def rows(directory):
    """The sweep's rows by module name: each module's as the tool last
    merged it (sweep.json, where the kernel's own state found in a row is
    set apart from the module's leaks), else as its guest wrote it (rows/,
    for a sweep still under way)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(directory, "rows", "*.json"))):
        with open(path) as f:
            row = json.load(f)
        found[row["module"]] = row
    merged = os.path.join(directory, "sweep.json")
    if os.path.exists(merged):
        with open(merged) as f:
            found.update((r["module"], r) for r in json.load(f)["rows"])
    if not found:
        sys.exit(f"sweep-compare: no rows in {directory}/rows: give a sweep's --out directory")
    return found


def said(row):
    """A row's verdict in a few words: its status, and a leak's size and
    whether `check` confirmed it."""
    status = row["status"]
    if status != "leaked":
        if row.get("kernel_wide"):
            return f"{status} (the kernel's own state listed apart)"
        return status
    if not row.get("leaks") or not row["leaks"][0].get("culprit"):
        return f"leaked ({row['bytes'] // 1024} KiB, unnamed)"
    confirmed = {True: ", confirmed", False: ", not confirmed"}.get(row.get("confirmed"), "")
    return f"leaked ({row['objects']} objects, {row['bytes']} B{confirmed})"


def main(args):
    if len(args) != 2:
        sys.exit(__doc__)
    ours, lkft = rows(args[0]), rows(args[1])
    both = sorted(set(ours) & set(lkft))
    print(f"{len(both)} modules swept both ways ({len(ours)} leaklab rows, {len(lkft)} LKFT rows).\n")

    print("| status | leaklab | LKFT way |")
    print("| --- | ---: | ---: |")
    a = collections.Counter(ours[m]["status"] for m in both)
    b = collections.Counter(lkft[m]["status"] for m in both)
    for status in sorted(set(a) | set(b)):
        print(f"| {status} | {a[status]} | {b[status]} |")
    secs = [sum(r[m]["seconds"] or 0 for m in both) for r in (ours, lkft)]
    print(f"| module time, summed | {secs[0]:.0f} s | {secs[1]:.0f} s |")

    pairs = collections.defaultdict(list)
    for m in both:
        if ours[m]["status"] != lkft[m]["status"]:
            pairs[(ours[m]["status"], lkft[m]["status"])].append(m)
    print("\n| leaklab | LKFT way | modules |")
    print("| --- | --- | --- |")
    for (x, y), ms in sorted(pairs.items(), key=lambda p: -len(p[1])):
        print(f"| {x} | {y} | {len(ms)}: {', '.join(ms)} |")

    print("\n| module | leaklab | LKFT way |")
    print("| --- | --- | --- |")
    for m in both:
        if "leaked" in (ours[m]["status"], lkft[m]["status"]) or ours[m].get("kernel_wide"):
            print(f"| {m} | {said(ours[m])} | {said(lkft[m])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
