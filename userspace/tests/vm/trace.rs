// SPDX-License-Identifier: GPL-2.0
//! The allocation-trace detector: every pattern exact by the trace alone on
//! the kernel without kmemleak; pages that only the trace sees; a cache
//! that grows by what the module states per run; a ring buffer too small
//! for the load makes the run inconclusive; tracefs (and kmemleak) as they
//! were after a run, a Ctrl-C and a panic.

use crate::{
    common::{assert_whole_catalogue, build_dir, Doc, Guest},
    views::{CheckRun, CycleRun, Variant},
};

/// The trace's column of every row of `run`: exact, and for the blind spots
/// what the issue asks: `page_leak` found by the trace and stated as
/// invisible to kmemleak; `unbounded_cache` leaky growing by what the module
/// states per run while loaded, fixed staying bounded, and nothing of
/// either left after the unload.
pub fn assert_trace_column(run: &Doc<CycleRun>) {
    let cycle = run.cycle();
    let trace = cycle
        .trace
        .as_ref()
        .unwrap_or_else(|| panic!("no trace record: {run:#}"));
    assert_eq!(trace.lost, 0, "{run:#}");
    assert!(trace.events > 0, "{run:#}");
    assert_eq!(trace.unexpected.len(), 0, "{run:#}");
    for v in &cycle.verdicts {
        let t = v
            .trace
            .as_ref()
            .unwrap_or_else(|| panic!("no trace column: {v:#?}"));
        assert!(t.ok, "{v:#?}");
        assert_eq!(t.found, t.expected, "{v:#?}");
    }
    let pattern = |name: &str| {
        run.patterns
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no pattern {name}: {run:#}"))
    };
    let page = pattern("page_leak");
    let leaky = cycle.verdict("page_leak", Variant::Leaky);
    let t = leaky.trace.as_ref().unwrap();
    assert_eq!(
        (t.found.objects, t.found.bytes),
        (page.objects * leaky.runs, page.bytes * leaky.runs),
        "{leaky:#?}"
    );
    assert!(page.bytes >= 4096, "page_leak states pages: {run:#}");
    if leaky.kmemleak {
        assert_eq!(
            leaky.found.objects, 0,
            "kmemleak cannot see pages: {leaky:#?}"
        );
    }
    assert!(
        leaky
            .blind
            .as_deref()
            .is_some_and(|b| b.contains("page allocator")),
        "{leaky:#?}"
    );
    let cache = pattern("unbounded_cache");
    for variant in [Variant::Leaky, Variant::Fixed] {
        let v = cycle.verdict("unbounded_cache", variant);
        let t = v.trace.as_ref().unwrap();
        assert_eq!(t.found.objects, 0, "freed at unload: {v:#?}");
        let g = t
            .growth
            .as_ref()
            .unwrap_or_else(|| panic!("no growth: {v:#?}"));
        assert!(g.runs >= 5, "a bound of 4 must show: {g:#?}");
        let grew = (
            g.second.objects - g.first.objects,
            g.second.bytes - g.first.bytes,
        );
        match variant {
            Variant::Leaky => {
                assert_eq!(
                    grew,
                    (cache.objects * g.runs, cache.bytes * g.runs),
                    "{v:#?}"
                );
                assert!(cache.objects > 0, "{run:#}");
            }
            Variant::Fixed => {
                assert_eq!(grew, (0, 0), "the bounded cache grew: {v:#?}");
                // At most its 4 entries, and the cache's own box.
                assert!(g.first.objects > 0 && g.first.objects <= 5, "{g:#?}");
            }
        }
    }
}

/// The kernel without kmemleak (`make kernel VARIANT=nokmemleak`, as a
/// distribution ships) with leaklab.ko and rust_minimal.ko built for it.
fn nokmemleak_guest(arch: &str, name: &str) -> Guest {
    let dir = build_dir().join(format!("{arch}-nokmemleak"));
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let (kernel, module, minimal) = (
        path("kernel-image"),
        path("leaklab.ko"),
        path("rust_minimal.ko"),
    );
    Guest::new(arch, name).vm_args(&[
        "--kernel", &kernel, "--module", &module, "--module", &minimal,
    ])
}

/// On the kernel without kmemleak, the matrix judges by the trace alone and
/// every pattern is exact, with nothing left outside them.
fn check_trace_only(arch: &str) {
    let (status, run) = nokmemleak_guest(arch, "trace-only").json::<CycleRun>(&["matrix"]);
    assert_eq!(run.detectors, ["trace"], "{run:#}");
    assert_whole_catalogue(run.pattern_names());
    let cycle = run.cycle();
    assert_eq!(cycle.verdicts.len(), 2 * run.patterns.len(), "{run:#}");
    for v in &cycle.verdicts {
        assert!(v.ok && !v.kmemleak, "{v:#?}");
    }
    assert_trace_column(&run);
    let refs: Vec<_> = cycle
        .references
        .iter()
        .map(|r| (r.module.as_str(), r.trace_found.map(|c| c.objects)))
        .collect();
    assert_eq!(refs, [("rust_minimal", Some(0))], "{run:#}");
    assert!(run.ok, "{run:#}");
    assert_eq!(status, Some(0), "{run:#}");
}

on_both_arches!(check_trace_only: trace_alone_finds_every_pattern_without_kmemleak_x86_64, trace_alone_finds_every_pattern_without_kmemleak_arm64);

/// With the kernel's allocation profiling on, a slab's first tagged object
/// makes the slab's vector of tags on the module's stack: the allocator's
/// own, so every pattern stays exact.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn trace_alone_is_exact_with_allocation_profiling_on() {
    let (status, run) = nokmemleak_guest("x86_64", "trace-profiling")
        .vm_args(&["--append", "sysctl.vm.mem_profiling=1"])
        .json::<CycleRun>(&["matrix"]);
    assert_eq!(run.detectors, ["trace"], "{run:#}");
    for v in &run.cycle().verdicts {
        assert!(v.ok, "{v:#?}");
    }
    assert_trace_column(&run);
    assert_eq!(status, Some(0), "{run:#}");
}

/// With expedited grace periods the settle cannot make its RCU barrier (an
/// expedited grace period queues no callback) and waits out a quiet period
/// instead: every pattern is still exact.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn the_settle_without_an_rcu_barrier_is_exact_too() {
    let out = nokmemleak_guest("x86_64", "trace-expedited").run(&[
        "sh",
        "-c",
        "echo 1 > /sys/kernel/rcu_expedited || exit 9; \
         leaklab matrix --format json; s=$?; echo 0 > /sys/kernel/rcu_expedited; exit $s",
    ]);
    let run = Doc::<CycleRun>::from_output(&out);
    assert_eq!(run.detectors, ["trace"], "{run:#}");
    for v in &run.cycle().verdicts {
        assert!(v.ok, "{v:#?}");
    }
    assert_trace_column(&run);
    assert_eq!(out.status.code(), Some(0), "{run:#}");
}

/// A trace buffer of 4 KiB per CPU under 3000 runs in one write overruns:
/// the run is inconclusive (exit 3), never clean, and says why.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn a_tiny_trace_buffer_under_load_is_inconclusive() {
    let (status, run) = Guest::new("x86_64", "trace-tiny-buffer").json::<CycleRun>(&[
        "matrix",
        "--detector",
        "trace",
        "--pattern",
        "error_path",
        "-n",
        "3000",
        "--trace-buffer-kb",
        "4",
    ]);
    let lost = run.cycle().trace.as_ref().map(|t| t.lost);
    assert!(lost.is_some_and(|l| l > 0), "{run:#}");
    assert!(!run.ok, "{run:#}");
    assert_eq!(status, Some(3), "{run:#}");
}

/// What a guest script prints of tracefs and kmemleak, and of RCU's
/// `rcu_expedited` (set while the instance is removed): the state to keep.
const SNAPSHOT: &str = r#"snap() {
  T=/sys/kernel/tracing
  echo "mounts: $(grep -c tracefs /proc/mounts)"
  if [ -d $T/instances ] && grep -q tracefs /proc/mounts; then
    echo "instances: $(ls $T/instances | tr '\n' ' ')"
    for f in buffer_size_kb tracing_on options/hash-ptr options/sym-addr options/sym-offset \
      events/kmem/kfree/enable events/kmem/kmalloc/enable events/kmem/kmalloc/trigger \
      events/kmem/mm_page_alloc/enable events/percpu/percpu_alloc_percpu/trigger; do
      echo "$f: $(cat $T/$f | grep -v '^#' | tr '\n' ' ')"
    done
  fi
  echo "kmemleak thread: $(ps | grep -c '\[kmemleak\]')"
  echo "rcu_expedited: $(cat /sys/kernel/rcu_expedited)"
}
"#;

/// tracefs and kmemleak as they were: after a run on an unmounted tracefs
/// (left unmounted), and, with the user's own top-level tracing set up
/// (events, a trigger, a buffer size), after a run, a Ctrl-C in the middle
/// of one, and a panic with the trace running.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn tracefs_and_kmemleak_are_as_before_after_a_run_a_ctrl_c_and_a_panic() {
    let script = format!(
        r#"{SNAPSHOT}
run() {{ leaklab matrix --pattern error_path "$@" >/dev/null 2>&1; echo "status $?"; }}
snap > /tmp/0; run; snap > /tmp/1
cmp /tmp/0 /tmp/1 && echo "SAME unmounted"
mount -t tracefs none /sys/kernel/tracing
T=/sys/kernel/tracing
echo 1 > $T/events/kmem/kfree/enable
echo stacktrace > $T/events/kmem/kmalloc/trigger
echo 1234 > $T/buffer_size_kb
snap > /tmp/0; cat /tmp/0
run; snap > /tmp/1; cmp /tmp/0 /tmp/1 && echo "SAME after run"
leaklab matrix --pattern error_path -n 300 >/dev/null 2>&1 & pid=$!
sleep 6; kill -INT $pid; wait $pid; echo "interrupted status $?"
snap > /tmp/2; cmp /tmp/0 /tmp/2 && echo "SAME after ctrl-c"
LEAKLAB_PANIC_AT=trace-running leaklab matrix --pattern error_path >/dev/null 2>/tmp/panic; echo "panic status $?"
grep -c "after the panic: removed the tracefs instance" /tmp/panic
snap > /tmp/3; cmp /tmp/0 /tmp/3 && echo "SAME after panic"
cat /tmp/1 /tmp/2 /tmp/3
"#
    );
    let path = std::env::temp_dir().join(format!("leaklab-restore-{}.sh", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let file = format!("{}:/root/restore.sh", path.display());
    let out = Guest::new("x86_64", "trace-restore")
        .vm_args(&["--file", &file])
        .run(&["sh", "/root/restore.sh"]);
    std::fs::remove_file(&path).ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "status 0",
        "SAME unmounted",
        "SAME after run",
        "interrupted status 130",
        "SAME after ctrl-c",
        "SAME after panic",
        // 1234 KiB, rounded up by the kernel to whole pages.
        "buffer_size_kb: 123",
        "events/kmem/kfree/enable: 1",
        "kmemleak thread: 1",
        "rcu_expedited: 0",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim() == line || l.starts_with(line)),
            "no {line:?} in:\n{all}"
        );
    }
    // The panic really happened with the trace running, and its undo step ran.
    let panic = stdout
        .lines()
        .find(|l| l.starts_with("panic status"))
        .unwrap_or_default();
    assert!(!panic.ends_with(" 0") && !panic.ends_with(" 1"), "{all}");
    assert!(
        stdout.lines().any(|l| l.trim() == "1"),
        "the undo step did not say so:\n{all}"
    );
    // The user's own trigger is still there.
    assert!(
        stdout.contains("events/kmem/kmalloc/trigger: stacktrace"),
        "{all}"
    );
}

/// A socket buffer freed in a list is freed: `kfree_skb_list()` hands its
/// `sk_buff`s to `kmem_cache_free_bulk()`, which has no trace event of its
/// own. Debian 6.12's aoe sends frames from its init and its thread; before
/// the bulk free had its probe, the sweep of all of Debian's modules read
/// aoe (and test_bpf) as leaking those buffers, and `check` confirmed it.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn a_socket_buffer_freed_in_bulk_is_not_a_leak() {
    let dir = build_dir().join("debian-6.12-x86_64");
    let aoe = std::fs::canonicalize(dir.join("modules/kernel/drivers/block/aoe/aoe.ko"))
        .expect("make debian-modules DEBIAN=6.12");
    let kernel = dir.join("kernel-image").display().to_string();
    let guest = Guest::new("x86_64", "trace-bulk-free").vm_args(&[
        "--kernel",
        &kernel,
        "--module",
        aoe.to_str().unwrap(),
    ]);
    let (_, doc) = guest.json::<CheckRun>(&["check", "/lib/modules/aoe.ko", "--cycles", "2"]);
    let trace = doc.trace.as_ref().expect("judged by the trace");
    assert_eq!(trace.lost, 0, "{doc:#}");
    let buffers: Vec<_> = trace
        .leaks
        .iter()
        .filter(|l| l.frames.iter().any(|f| f.contains("alloc_skb")))
        .collect();
    assert!(buffers.is_empty(), "{buffers:#?}\n{doc:#}");
}
