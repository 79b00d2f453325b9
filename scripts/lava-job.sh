#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# scripts/lava-job.sh TOOL BUILD ARCH [sabotaged]: `make lava`'s run. Writes
# the QEMU job for ARCH with `leaklab lava job` into BUILD/results/lava-ARCH
# (lava-ARCH-sabotaged with the sabotaged leaklab.ko, whose leaky rows must
# fail), runs it with LAVA's own dispatcher (scripts/lava.sh,
# scripts/lava-run.py) and gates on its test cases with `leaklab lava
# results`: the exit status is the gate's (0 every case passed, 1 a case
# failed, 3 LAVA's job itself failed), 2 when the job could not be run.
set -euo pipefail

say() { printf 'lava: %s\n' "$*" >&2; }
[ $# = 3 ] || [ $# = 4 ] || { say "usage: scripts/lava-job.sh TOOL BUILD ARCH [sabotaged]"; exit 2; }
tool=$1 build=$2 arch=$3 variant=${4:-}
here=$(cd "$(dirname "$0")" && pwd)

modules=()
name=lava-$arch
if [ "$variant" = sabotaged ]; then
	name=lava-$arch-sabotaged
	modules=(--module "$build/$arch/sabotaged/leaklab.ko")
	for ko in kmemleak-test.ko rust_minimal.ko; do
		[ ! -f "$build/$arch/$ko" ] || modules+=(--module "$build/$arch/$ko")
	done
elif [ -n "$variant" ]; then
	say "unknown variant '$variant': only 'sabotaged'"
	exit 2
fi
dir=$build/results/$name
rm -rf "$dir" && mkdir -p "$dir"
job=$("$tool" lava job --arch "$arch" --build-dir "$build" --out "$dir/job" "${modules[@]}")
root=$(bash "$here/lava.sh")
say "running $job with LAVA's lava-run (log: $dir/run/lava.log)"
status=0
/usr/bin/python3 "$here/lava-run.py" "$root" run "$job" "$dir/run" || status=$?
# lava-run exits non-zero when the job's infrastructure failed; the gate
# says so (exit 3) from the log, or the log is missing (exit 2).
[ -s "$dir/run/lava.log" ] || { say "lava-run left no log (exit $status)"; exit 2; }
status=0
"$tool" lava results "$dir/run/lava.log" || status=$?
"$tool" lava results --format json "$dir/run/lava.log" >"$dir/results.json" || true
say "results: $dir/results.json; the gate exited $status"
exit "$status"
