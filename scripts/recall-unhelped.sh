#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Recall and time-to-verdict of kmemleak for a module without the lab's help,
# over fresh boots of ARCH: the example C driver (examples/leaky_driver,
# the five load-time patterns of its first version: 7 objects) and the kernel's kmemleak-test.ko (24 objects and one
# per possible CPU), each harvested in the same boot three ways:
#   leaklab  `leaklab check` (the scan protocol, task stacks scanned)
#   lkft     LKFT's load/unload test: clear, insmod, rmmod, scan, sleep 3, read
#   syzbot   syzkaller's leak check (kmemleakScan in its executor): scan,
#            sleep 1 s and until 4 s have passed since that scan began, scan,
#            read; when something was reported, sleep 1 s, scan and read
#            again. Run once, right after the work: syzkaller checks again
#            after its next programs, which this does not model.
# A baseline counts the reports allocated by its own insmod (kmemleak's pid),
# and starts from a drained kmemleak (6 s, two scans, clear: what the harvest
# before it left unreported is reported and cleared), so that nothing of
# another harvest is counted or sets off syzkaller's second scan. Time to
# verdict: from before insmod to the verdict read.
#
#   scripts/recall-unhelped.sh TOOL BUILD_DIR ARCH [BOOTS]
set -euo pipefail
tool=$1 build=$2 arch=$3 boots=${4:-20}
out=$build/results/recall-unhelped-$arch
rm -rf "$out" && mkdir -p "$out/build"
# A snapshot: a rebuild while this runs does not mix versions.
cp "$tool" "$out/leaklab" && cp -a "$build/$arch" "$out/build/"
driver=$build/$arch/examples/leaky_driver.ko
[ -f "$driver" ] || { echo "recall-unhelped: no $driver: run 'make example ARCH=$arch'" >&2; exit 2; }

cat >"$out/harvest.sh" <<'EOF'
K=/sys/kernel/debug/kmemleak
now() { read -r up _ < /proc/uptime; echo "$up"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# The reports allocated by task $1 in kmemleak's file $2.
mine() { grep -c "^  comm \".*\", pid $1," "$2"; }
drain() { sleep 6; echo scan > $K; echo scan > $K; echo clear > $K; }
# No scan behind the harvests' backs (syzkaller's setup does the same).
echo scan=off > $K
load() { insmod "/lib/modules/$1.ko" $3 & pid=$!; wait $pid; rmmod "$2"; }
for spec in "leaky_driver leaky_driver bug=error_path,module_exit,device_ref,conditional_free,slab_cache" "kmemleak-test kmemleak_test"; do
	set -- $spec
	file=$1 name=$2 params=${3:-}
	args=""
	for p in $params; do args="$args --param $p"; done
	t0=$(now)
	leaklab check "/lib/modules/$file.ko" $args --format json > /tmp/check.json 2> /dev/null
	echo "=== leaklab $name $(since "$t0")"
	cat /tmp/check.json
	echo
	drain
	t0=$(now)
	load "$file" "$name" "$params"
	echo scan > $K
	sleep 3
	cat $K > /tmp/read
	echo "=== lkft $name $(since "$t0") $(mine $pid /tmp/read)"
	drain
	t0=$(now)
	load "$file" "$name" "$params"
	start=$(now)
	echo scan > $K
	sleep 1
	while awk -v a="$start" -v b="$(now)" 'BEGIN { exit !(b - a < 4) }'; do sleep 1; done
	echo scan > $K
	cat $K > /tmp/read
	if [ -s /tmp/read ]; then
		sleep 1
		echo scan > $K
		cat $K > /tmp/read
	fi
	echo "=== syzbot $name $(since "$t0") $(mine $pid /tmp/read)"
	drain
done
cat /sys/devices/system/cpu/possible
EOF

vm() { "$out/leaklab" vm --arch "$arch" --build-dir "$out/build" --log "$out/console-$1.log" "${@:2}"; }
for i in $(seq 1 "$boots"); do
	vm "$i" --module "$driver" --module "$build/$arch/kmemleak-test.ko" --file "$out/harvest.sh" \
		-- sh /root/harvest.sh >"$out/boot-$i.txt" 2>"$out/stderr-$i.txt" || true
	printf '.' >&2
done
echo >&2
python3 - "$out" "$boots" "$arch" <<'PY'
import json, sys
out, boots, arch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def cpus(possible):
    return sum(int(b) - int(a) + 1 if '-' in r else 1
               for r in possible.split(',') for a, _, b in [r.partition('-')])
rows = {}  # (protocol, module) -> [found list, seconds list, expected list]
# Per boot, the places leaklab found each module's leaks at (culprit and
# object size): a boot that missed some names what it missed.
places = {}
for i in range(1, boots + 1):
    try:
        text = open(f"{out}/boot-{i}.txt").read()
    except OSError:
        continue
    parts = text.split("=== ")[1:]
    if not parts:
        print(f"boot {i}: no result (see {out}/console-{i}.log)")
        continue
    possible = parts[-1].strip().splitlines()[-1]
    expected = {"leaky_driver": 7, "kmemleak_test": 24 + cpus(possible)}
    for p in parts:
        head, _, body = p.partition("\n")
        words = head.split()
        proto, module, seconds = words[0], words[1], float(words[2])
        if proto == "leaklab":
            doc = json.loads(body.strip().split("\n=== ")[0] or "{}")
            found = sum(l["objects"] for l in doc.get("leaks", []))
            kinds = {}
            for l in doc.get("leaks", []):
                key = f'{l["culprit"]} ({l["bytes"] // l["objects"]} B)'
                kinds[key] = kinds.get(key, 0) + l["objects"]
            places.setdefault(module, []).append((i, kinds))
        else:
            found = int(words[3])
        r = rows.setdefault((proto, module), [[], [], []])
        r[0].append(found); r[1].append(seconds); r[2].append(expected[module])
print(f"recall without the lab's help, {arch}, {boots} boots")
print("| module | harvest | objects found / leaked | boots with all | time to verdict (median, s) |")
print("| --- | --- | --- | --- | --- |")
for module in ("leaky_driver", "kmemleak_test"):
    for proto in ("leaklab", "lkft", "syzbot"):
        f, s, e = rows.get((proto, module), [[], [], []])
        if not f:
            continue
        full = sum(1 for a, b in zip(f, e) if a == b)
        med = sorted(s)[len(s) // 2]
        print(f"| {module} | {proto} | {sum(f)}/{sum(e)} | {full}/{len(f)} | {med:.1f} |")
for module, runs in places.items():
    every = {}
    for _, kinds in runs:
        for k, n in kinds.items():
            every[k] = max(every.get(k, 0), n)
    for i, kinds in runs:
        missed = {k: n - kinds.get(k, 0) for k, n in every.items() if kinds.get(k, 0) < n}
        if missed:
            print(f"boot {i}, {module}: leaklab missed {missed}")
PY
