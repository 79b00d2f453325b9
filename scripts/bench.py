#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench: leaklab's speed and memory figures, as ratios against
baselines measured in the same run, written to BENCHMARKS.md.

    scripts/bench.py TOOL BUILD_DIR ARCH [--no-cold | --loops]

`--loops` (`make bench LOOPS=1`) runs only the trace's loop figures (the
lab's loop, the C driver's on the project's kernel and on Debian's 6.12)
and prints them, writing nothing: for trying a change to the trace.

- matrix: one boot, every pattern and the references in one kmemleak window;
- sequential: the same work with a window per pattern (public tests' way);
- floor: a boot and one empty window (`leaklab scan /init --version`):
  what no harvest can go below;
- kernel build, cold (an empty cache directory) and warm (cache hit);
- module build (after touching its source);
- parse throughput of a large generated report file against `wc -l`;
- peak RSS of the tool (guest: in the matrix; host: parsing the big file);
- size of the static guest binary;
- the allocation trace: the trace-only matrix against the kmemleak-only
  matrix and a boot that does the same runs with no detector at all
  (medians of three boots each), and
  the tracing overhead on the samples in a loop (`trigger --trace` against
  `trigger`, in one boot).
"""

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    """Runs cmd; returns (seconds, CompletedProcess)."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.monotonic() - t0, p


def guest(tool, build, arch, name, command, vm_args=(), want_output=False):
    """Boots a VM for command; returns wall seconds, boot-to-init seconds,
    the guest command's peak RSS (KiB) and its exit status (and its stdout
    with want_output)."""
    out = os.path.join(build, "results", "bench-" + arch)
    os.makedirs(out, exist_ok=True)
    wall, p = run([tool, "vm", "--arch", arch, "--build-dir", build,
                   "--log", os.path.join(out, name + ".log"), *vm_args, "--"] + command)
    init = re.search(r"init after ([0-9.]+) s", p.stderr)
    rss = re.search(r"peak RSS: (\d+) KiB", p.stderr)
    status = re.search(r"guest command exited (\d+)", p.stderr)
    if not (init and status):
        sys.exit(f"bench: {name}: the VM run did not finish; see {out}/{name}.log\n{p.stderr}")
    result = (wall, float(init.group(1)), int(rss.group(1)) if rss else None, int(status.group(1)))
    return result + (p.stdout,) if want_output else result


# The matrix's work with no detector: load leaklab.ko, run every pattern
# leaky and fixed once (a growing one 16 times more each, as the matrix
# measures its slope), load and unload the references, unload.
RUNS_ONLY = """
grep -q debugfs /proc/mounts || mount -t debugfs none /sys/kernel/debug
insmod /lib/modules/leaklab.ko
D=/sys/kernel/debug/leaklab/patterns
for p in $D/*; do echo 1 > $p/leaky; echo 1 > $p/fixed; done
for v in leaky fixed; do echo 16 > $D/unbounded_cache/$v; done
[ -f /lib/modules/kmemleak-test.ko ] && { insmod /lib/modules/kmemleak-test.ko; rmmod kmemleak_test; }
insmod /lib/modules/rust_minimal.ko; rmmod rust_minimal
rmmod leaklab
"""

# The samples in a loop, untraced and traced, in turns: each line is
# `NAME START END` from /proc/uptime. `off`/`on`: the loop, each command
# with -n 2000, without and with the trace; `off1`/`on1`: the same commands
# with -n 1 (what a command and the trace's set-up and tear-down cost);
# `kernel`: the untraced loop while a tracefs instance made here records
# the same events with their stacks and nobody reads them (the kernel's
# share of the trace's cost).
OVERHEAD = """
insmod /lib/modules/leaklab.ko
T=/sys/kernel/tracing
grep -q tracefs /proc/mounts || mount -t tracefs none $T
t() { a=$(cut -d' ' -f1 /proc/uptime); "$@" >/dev/null; b=$(cut -d' ' -f1 /proc/uptime); echo "$a $b"; }
work() { for p in error_path rust_forget arc_cycle conditional_free; do leaklab trigger $p fixed -n ${N:-2000} "$@" || exit 1; done; }
one() { N=1 work "$@"; }
I=$T/instances/bench-kernel
mkdir $I && echo 8192 > $I/buffer_size_kb || exit 1
EV="kmem/kmalloc kmem/kmem_cache_alloc kmem/mm_page_alloc percpu/percpu_alloc_percpu"
FREES="kmem/kfree kmem/kmem_cache_free kmem/mm_page_free percpu/percpu_free_percpu"
# A trigger keeps its event's tracepoint armed even while the event is
# off: set only for the kernel's run, and taken away after it.
# kmemleak's own metadata left out as leaklab leaves it out (the first
# filter the kernel takes).
own=$(for f in mem_pool_alloc __alloc_object; do echo "call_site.function != $f" > $I/events/kmem/kmem_cache_alloc/filter 2>/dev/null && { echo "$f"; break; }; done)
[ -n "$own" ] && echo 'name != "kmemleak_object"' > $I/events/kmem/kmem_cache_free/filter
stack() { [ "$1" = kmem/kmem_cache_alloc ] && [ -n "$own" ] && echo "stacktrace if call_site.function != $own" || echo stacktrace; }
arm() { for e in $EV; do stack $e > $I/events/$e/trigger || exit 1; done; for e in $EV $FREES; do echo 1 > $I/events/$e/enable; done; }
disarm() { for e in $EV $FREES; do echo 0 > $I/events/$e/enable; done; for e in $EV; do echo '!stacktrace' > $I/events/$e/trigger; done; }
for i in 1 2 3 4 5; do
  echo "off $(t work)"; echo "on $(t work --trace)"
  echo "off1 $(t one)"; echo "on1 $(t one --trace)"
  arm; echo "kernel $(t work)"; disarm
done
rmdir $I
rmmod leaklab
"""

# A module's loop, timed from inside as `NAME START END` (BODY: the loop):
# `off` with the module loaded by insmod, `on` as the exercise of
# `leaklab check --detector trace` (the loop alone, while the trace runs;
# the check's own cost is `check`), five times each in turns.
MODULE_LOOP = """
cat > /root/loop.sh <<'LOOP'
a=$(cut -d' ' -f1 /proc/uptime)
BODY
b=$(cut -d' ' -f1 /proc/uptime)
echo "$NAME $a $b" >> /root/times
LOOP
grep -q debugfs /proc/mounts || mount -t debugfs none /sys/kernel/debug
for i in 1 2 3 4 5; do
  insmod /lib/modules/MODULE.ko && NAME=off sh /root/loop.sh && rmmod MODULE || exit 1
  a=$(cut -d' ' -f1 /proc/uptime)
  NAME=on leaklab check /lib/modules/MODULE.ko --detector trace --exercise /root/loop.sh >/dev/null 2>&1 || { echo "check exit $?"; exit 1; }
  b=$(cut -d' ' -f1 /proc/uptime)
  echo "check $a $b" >> /root/times
done
cat /root/times
"""

# The lab's samples in a loop, written to debugfs as a user's script would:
# four fixed patterns, 2000 runs a write, four rounds (32000 runs).
LAB_LOOP = ("leaklab", """D=/sys/kernel/debug/leaklab/patterns
i=0; while [ $i -lt 4 ]; do for p in error_path rust_forget arc_cycle conditional_free; do echo 2000 > $D/$p/fixed || exit 1; done; i=$((i+1)); done""")

# The C example driver's fixed patterns in a loop: 500 writes of five
# synchronous patterns (kmalloc, slab cache, vmalloc, per-CPU).
DRIVER_LOOP = ("leaky_driver", """F=/sys/kernel/debug/leaky_driver/fixed
i=0; while [ $i -lt 500 ]; do echo error_path,conditional_free,slab_cache,register_snapshot,percpu > $F || exit 1; i=$((i+1)); done""")


# Boots per figure of the trace's (the median is kept).
TRIES = 3


def median_of(boot):
    """Runs boot() TRIES times; returns the result of median wall time,
    with the worst exit status of all."""
    results = sorted((boot() for _ in range(TRIES)), key=lambda r: r[0])
    mid = results[len(results) // 2]
    return mid[:3] + (max(r[3] for r in results),) + mid[4:]


def script(name, text):
    """A guest script in a file; returns the --file argument for it."""
    f = tempfile.NamedTemporaryFile("w", prefix=f"leaklab-{name}-", suffix=".sh", delete=False)
    f.write(text)
    f.close()
    return f.name


def child_peak_rss_kib(cmd, stdout):
    """Runs cmd alone in a child; returns (seconds, that child's peak RSS in KiB)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=stdout)
    _, _, usage = os.wait4(p.pid, 0)
    p.returncode = 0  # reaped by wait4
    return time.monotonic() - t0, usage.ru_maxrss


def timed_lines(out):
    """The `NAME START END` lines of a guest script's output, as
    {NAME: [seconds, ...]}."""
    times = {}
    for line in out.splitlines():
        w = line.split()
        if len(w) == 3 and re.fullmatch(r"[a-z0-9]+", w[0]):
            try:
                times.setdefault(w[0], []).append(float(w[2]) - float(w[1]))
            except ValueError:
                pass
    return times


def trace_overhead(tool, build, arch, row):
    """The trace's cost on short commands (OVERHEAD), in one boot: whole
    commands, their set-up and tear-down, the loop alone (a difference of
    differences, noisy: the loop under one check's trace is LAB_LOOP's
    figure), and the kernel's share."""
    over_sh = script("overhead", OVERHEAD)
    *_, status, out = guest(tool, build, arch, "overhead", ["sh", "/root/overhead.sh"],
                            ["--file", f"{over_sh}:/root/overhead.sh"], want_output=True)
    os.unlink(over_sh)
    times = timed_lines(out)
    names = ("off", "on", "off1", "on1", "kernel")
    if status != 0 or any(not times.get(n) for n in names):
        sys.exit(f"bench: the overhead run failed (exit {status}):\n{out}")
    off, on, off1, on1, kernel = (statistics.median(times[n]) for n in names)
    tries = f"medians of {len(times['on'])}"
    row("4 trigger commands of 2000 fixed runs, untraced", f"{off:.2f} s")
    row("the same with --trace (a trace per command)", f"{on:.2f} s",
        f"{on / off:.2f}x untraced ({tries})", "set-up included")
    row("of which the trace's set-up and tear-down, per command", f"{(on1 - off1) / 4:.2f} s",
        "4 x -n 1, traced less untraced")
    row("the loop alone under the trace (set-up left out)", f"{on - on1:.2f} s",
        f"{(on - on1) / (off - off1):.2f}x the loop untraced")
    row("the loop with the kernel's events and stacks, no reader", f"{kernel - off1:.2f} s",
        f"{(kernel - off1) / (off - off1):.2f}x: the kernel's share")


def loop_overhead(tool, build, arch, row, label, loop, what, kernel=None):
    """A module's loop (`loop`: its name and MODULE_LOOP's body) untraced
    and as the exercise of a trace-only check, in one boot: on the
    project's kernel, or on `kernel`'s build directory (its image and
    examples/NAME.ko)."""
    name, body = loop
    vm_args = []
    if kernel:
        ko = os.path.join(kernel, "examples", name + ".ko")
        if not os.path.exists(ko):
            row(f"{label}: {what}", "skipped", f"no {os.path.relpath(ko, ROOT)}")
            return
        vm_args = ["--kernel", os.path.join(kernel, "kernel-image"), "--module", ko]
    loop_sh = script("loop", MODULE_LOOP.replace("BODY", body).replace("MODULE", name))
    run_name = f"loop-{name}-" + os.path.basename(kernel or arch)
    *_, status, out = guest(tool, build, arch, run_name, ["sh", "/root/loop.sh"],
                            vm_args + ["--file", f"{loop_sh}:/root/loop.sh"], want_output=True)
    os.unlink(loop_sh)
    times = timed_lines(out)
    if status != 0 or any(not times.get(n) for n in ("off", "on", "check")):
        sys.exit(f"bench: {what} on {label} failed (exit {status}):\n{out}")
    off, on, check = (statistics.median(times[n]) for n in ("off", "on", "check"))
    row(f"{label}: {what}, untraced", f"{off:.2f} s")
    row(f"{label}: the same as a trace-only check's exercise", f"{on:.2f} s",
        f"{on / off:.2f}x untraced (medians of {len(times['on'])})", "at most 2x")
    row(f"{label}: that check, whole (load, loop, unload, verdict)", f"{check:.2f} s")


def trace_loops(tool, build, arch, row):
    """The trace's overhead on the loops: the lab's, and the C driver's on
    the project's kernel and on Debian's 6.12."""
    loop_overhead(tool, build, arch, row, "project's kernel", LAB_LOOP,
                  "the lab's loop (32000 fixed runs by debugfs writes)")
    for label, kernel in (("project's kernel", os.path.join(build, arch)),
                          ("Debian 6.12", os.path.join(build, f"debian-6.12-{arch}"))):
        loop_overhead(tool, build, arch, row, label, DRIVER_LOOP,
                      "the C driver's loop (500 writes)", kernel)


def main():
    tool, build, arch = sys.argv[1:4]
    cold = "--no-cold" not in sys.argv
    rows = []

    def row(what, value, ratio="", target=""):
        rows.append((what, value, ratio, target))
        print(f"{what:<48} {value:>14} {ratio:>20} {target}", flush=True)

    if "--loops" in sys.argv:
        trace_loops(tool, build, arch, row)
        return

    # The matrix and its baselines, on the same kernel, one after the other.
    # The one-window protocol against a window per pattern: kmemleak's
    # matrix, as these targets were set for it.
    m_wall, m_init, m_rss, m_status = guest(tool, build, arch, "matrix",
                                            ["matrix", "--detector", "kmemleak"])
    s_wall, _, _, s_status = guest(tool, build, arch, "sequential",
                                   ["matrix", "--sequential", "--detector", "kmemleak"])
    b_wall, _, _, b_status = guest(tool, build, arch, "matrix-both", ["matrix"])
    f_wall, f_init, _, _ = guest(tool, build, arch, "floor", ["scan", "/init", "--version"])
    row("boot to init (matrix boot)", f"{m_init:.2f} s")
    row("floor: boot + one empty kmemleak window", f"{f_wall:.1f} s")
    row(f"matrix, kmemleak only, one window (exit {m_status})", f"{m_wall:.1f} s",
        f"{m_wall / f_wall:.2f}x the floor", "within 2x")
    row(f"sequential, kmemleak only, a window per pattern (exit {s_status})", f"{s_wall:.1f} s",
        f"matrix {s_wall / m_wall:.1f}x faster", "at least 5x")
    row(f"matrix, both detectors: make run's main job (exit {b_status})", f"{b_wall:.1f} s",
        f"{b_wall / f_wall:.2f}x the floor")
    # The allocation trace: its matrix needs no age window. A boot of a
    # second or two varies by a fifth from one to the next on this host:
    # each figure of the trace's is the median of TRIES boots, taken in
    # turns with its baseline's.
    runs_sh = script("runs", RUNS_ONLY)
    t_wall, t_init, _, t_status = median_of(
        lambda: guest(tool, build, arch, "matrix-trace", ["matrix", "--detector", "trace"]))
    r_wall, r_init, _, r_status = median_of(
        lambda: guest(tool, build, arch, "runs-only", ["sh", "/root/runs.sh"],
                      ["--file", f"{runs_sh}:/root/runs.sh"]))
    # The same two on the kernel without kmemleak, as a distribution ships
    # it (make kernel VARIANT=nokmemleak): kmemleak's own bookkeeping no
    # longer slows every allocation.
    nok = os.path.join(build, arch + "-nokmemleak")
    nok_args = ["--kernel", os.path.join(nok, "kernel-image"),
                "--module", os.path.join(nok, "leaklab.ko"),
                "--module", os.path.join(nok, "rust_minimal.ko")]
    have_nok = os.path.exists(os.path.join(nok, "leaklab.ko"))
    if have_nok:
        nr_wall, _, _, nr_status = median_of(
            lambda: guest(tool, build, arch, "runs-only-nokmemleak", ["sh", "/root/runs.sh"],
                          nok_args + ["--file", f"{runs_sh}:/root/runs.sh"]))
        nt_wall, _, _, nt_status = median_of(
            lambda: guest(tool, build, arch, "matrix-trace-nokmemleak",
                          ["matrix", "--detector", "trace"], nok_args))
    os.unlink(runs_sh)
    row(f"floor for the trace: boot + the runs, no detector (exit {r_status})", f"{r_wall:.1f} s",
        f"boot to init {r_init:.2f} s")
    row(f"matrix, trace only (exit {t_status})", f"{t_wall:.1f} s",
        f"{t_wall / r_wall:.2f}x boot + runs (medians of {TRIES})", "within 1.5x")
    row("matrix, kmemleak only (above)", f"{m_wall:.1f} s",
        f"the trace's {m_wall / t_wall:.1f}x faster")
    if have_nok:
        row(f"no-kmemleak kernel: boot + the runs (exit {nr_status})", f"{nr_wall:.1f} s")
        row(f"no-kmemleak kernel: matrix, trace only (exit {nt_status})", f"{nt_wall:.1f} s",
            f"{nt_wall / nr_wall:.2f}x boot + runs (medians of {TRIES})", "within 1.5x")
    trace_overhead(tool, build, arch, row)
    trace_loops(tool, build, arch, row)
    row("tool's peak RSS in the guest (matrix)", f"{m_rss} KiB" if m_rss else "?",
        f"{(m_rss or 0) / 1024 / 16:.2f} of 16 MiB", "under 16 MiB")
    size = os.path.getsize(os.path.join(build, arch, "leaklab"))
    row("static guest binary", f"{size / 2**20:.2f} MiB", f"{size / 2**23:.2f} of 8 MiB", "under 8 MiB")

    # Builds.
    env = dict(os.environ)
    t_warm, p = run(["bash", os.path.join(ROOT, "qemu/build-kernel.sh"), arch], env=env)
    if p.returncode != 0:
        sys.exit(f"bench: warm kernel build failed:\n{p.stderr}")
    if cold:
        with tempfile.TemporaryDirectory(prefix="leaklab-bench-") as cache:
            t_cold, p = run(["bash", os.path.join(ROOT, "qemu/build-kernel.sh"), arch],
                            env=dict(env, LEAKLAB_CACHE=cache))
            if p.returncode != 0:
                sys.exit(f"bench: cold kernel build failed:\n{p.stderr[-2000:]}")
        row("kernel build, cold (empty cache)", f"{t_cold:.0f} s")
        row("kernel build, warm (cache hit)", f"{t_warm:.2f} s", f"{t_cold / t_warm:.0f}x faster than cold")
    else:
        row("kernel build, warm (cache hit)", f"{t_warm:.2f} s", "(cold skipped: --no-cold)")
    os.utime(os.path.join(ROOT, "module/leaklab.rs"))
    t_mod, p = run(["make", "-C", ROOT, "--no-print-directory", "module", f"ARCH={arch}"])
    if p.returncode != 0:
        sys.exit(f"bench: module build failed:\n{p.stderr[-2000:]}")
    row("module build (leaklab.rs touched)", f"{t_mod:.1f} s")

    # Parse throughput: a real capture repeated to about 200 MiB.
    capture = open(os.path.join(ROOT, "userspace/tests/data/kmemleak-test-arm64.log")).read()
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        big = f.name
        for _ in range(200 * 2**20 // len(capture)):
            f.write(capture)
        # On disk before the clock starts: no writeback competes with either.
        f.flush()
        os.fsync(f.fileno())
    try:
        mib = os.path.getsize(big) / 2**20
        # Both read the file from the page cache (one read first puts it
        # there); each figure is the median of 7 runs, taken in turns.
        child_peak_rss_kib(["cat", big], subprocess.DEVNULL)
        wc, parse = [], []
        for _ in range(7):
            wc.append(child_peak_rss_kib(["wc", "-l", big], subprocess.DEVNULL))
            parse.append(child_peak_rss_kib([tool, "parse", big], subprocess.DEVNULL))
        t_wc = statistics.median(t for t, _ in wc)
        t_parse = statistics.median(t for t, _ in parse)
        rss = max(r for _, r in parse)
        row(f"wc -l over {mib:.0f} MiB", f"{mib / t_wc:.0f} MiB/s")
        row(f"leaklab parse over {mib:.0f} MiB ({os.cpu_count()} threads)", f"{mib / t_parse:.0f} MiB/s",
            f"{t_wc / t_parse:.2f} of wc -l (medians of 7)", "at least 1/3")
        row("tool's peak RSS on the host (that parse)", f"{rss} KiB")
    finally:
        os.unlink(big)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.machine())
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path = os.path.join(ROOT, "BENCHMARKS.md")
    section = [f"## {arch} guest, {date}", "",
               f"Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; "
               f"guests under QEMU ({'KVM' if '-accel kvm' in open(os.path.join(build, 'results', 'bench-' + arch, 'matrix.log')).readline() else 'TCG'}).",
               "", "| figure | value | ratio | target |", "| --- | --- | --- | --- |"]
    section += [f"| {w} | {v} | {r} | {t} |" for w, v, r, t in rows]
    old = open(path).read() if os.path.exists(path) else ""
    head = "# leaklab benchmarks\n\nWritten by `make bench` (scripts/bench.py); each section is one run, newest first, every ratio against a baseline measured in that run.\n\n"
    rest = old[len(head):] if old.startswith(head) else ""
    # Keep the latest run per ARCH.
    kept = [s for s in re.split(r"(?m)^(?=## )", rest) if s.strip() and not s.startswith(f"## {arch} guest")]
    open(path, "w").write(head + "\n".join(section) + "\n\n" + "".join(kept))
    print(f"bench: written to {path}")


if __name__ == "__main__":
    main()
