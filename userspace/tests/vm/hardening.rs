// SPDX-License-Identifier: GPL-2.0
//! The module under hostile use: the control interface's contract
//! (`selftest`, also on the lockdep kernel), hostile writes (`fuzz`), and
//! failing allocations and the leak cap (`faults`).

use crate::{
    common::{build_dir, catalogue, Guest},
    views::{FaultRun, FuzzRun, Selftest, Variant},
};

fn check_selftest(arch: &str) {
    let (status, t) = Guest::new(arch, "selftest").json::<Selftest>(&["selftest"]);
    let failed: Vec<_> = t.cases.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(status, Some(0));
    for (name, errno) in [
        ("leaky <- word", "EINVAL"),
        ("leaky <- negative", "EINVAL"),
        ("leaky <- u64 overflow", "EINVAL"),
        ("leaky <- 65 bytes", "EINVAL"),
        ("leaky <- binary", "EINVAL"),
        ("fixed <- second write on one open file", "EINVAL"),
        ("leaky <- 1 over a 100-byte cap", "ENOSPC"),
    ] {
        assert_eq!(t.case(name).actual, errno, "{name}");
    }
    assert_eq!(t.case("stats read 1 byte at a time").actual, "same");
    assert_eq!(t.case("rmmod while stats is open").actual, "EAGAIN");
    for name in [
        "concurrent writers: failed",
        "concurrent writers: miscounted",
    ] {
        assert_eq!(t.case(name).actual, "none", "{name}");
    }
    assert_eq!(t.case("concurrent stats reads: torn").actual, "0");
}

on_both_arches!(check_selftest: control_interface_contract_x86_64, control_interface_contract_arm64);

/// `leaklab fuzz`: thousands of hostile writes and odd reads to every
/// control file; every write outside the contract refused, no kernel
/// warning a leaky sample does not explain, nothing leaked outside the
/// leaky samples.
fn check_fuzz(arch: &str) {
    let (status, run) = Guest::new(arch, "fuzz").json::<FuzzRun>(&[
        "fuzz",
        "--count",
        "4000",
        "--seconds",
        "60",
        "--seed",
        "7",
    ]);
    assert_eq!(status, Some(0), "{run:#}");
    assert!(run.ok);
    assert!(run.files >= 30, "{run:#}");
    assert!(run.writes >= 1500, "{run:#}");
    assert!(run.refused >= 1000, "{run:#}");
    assert!(run.reads >= 500, "{run:#}");
    for (empty, len) in [
        ("accepted_bad", run.accepted_bad.len()),
        ("failed_reads", run.failed_reads.len()),
        ("kernel_log", run.kernel_log.len()),
        ("outside", run.outside.len()),
    ] {
        assert_eq!(len, 0, "{empty}: {run:#}");
    }
}

on_both_arches!(check_fuzz: fuzz_control_files_x86_64, fuzz_control_files_arm64);

/// `leaklab faults` in a 128 MiB guest: every allocation of every sample
/// fails in turn (each refusal counted as a failed run), leaky runs fill
/// the leak cap and then are all refused; no kernel warning, and nothing
/// leaks outside the leaky samples but the kernel leak it names.
fn check_faults(arch: &str) {
    let (status, run) = Guest::new(arch, "faults")
        .vm_args(&["--memory", "128"])
        .json::<FaultRun>(&["faults"]);
    assert_eq!(status, Some(0), "{run:#}");
    assert!(run.ok);
    assert!(run.memory_mib <= 128, "{run:#}");
    // Every sample of the catalogue (the document lists no patterns: those
    // in samples/), leaky and fixed, once each.
    let samples = catalogue();
    assert_eq!(run.injected.len(), 2 * samples.len(), "{run:#}");
    for pattern in &samples {
        for variant in [Variant::Leaky, Variant::Fixed] {
            assert!(
                run.injected
                    .iter()
                    .any(|i| i.pattern == *pattern && i.variant == variant),
                "{pattern} {variant:?} not injected: {run:#}"
            );
        }
    }
    for i in &run.injected {
        assert!(i.complete, "{i:#?}");
        assert!(i.points >= 1, "{i:#?}");
        // Every sample allocates, so some failure reaches it and is refused.
        assert!(i.errors >= 1, "{i:#?}");
        assert_eq!(i.errors, i.failed_runs, "{i:#?}");
        assert_eq!(i.errnos, ["ENOMEM"], "{i:#?}");
    }
    assert!(run.cap_held);
    let (cap, leaked) = (run.cap_bytes, run.leaked_bytes);
    assert!(leaked <= cap && leaked > cap / 2, "{run:#}");
    assert!(run.leaky_reports > 1000, "{run:#}");
    for (empty, len) in [
        ("kernel_log", run.kernel_log.len()),
        ("outside", run.outside.len()),
    ] {
        assert_eq!(len, 0, "{empty}: {run:#}");
    }
    for k in &run.known_kernel {
        assert!(k.contains("sysfs_slab_add"), "{k}");
    }
}

on_both_arches!(check_faults: faults_and_the_leak_cap_in_a_small_guest_x86_64, faults_and_the_leak_cap_in_a_small_guest_arm64);

/// The control contract, concurrency and the unload races again, on the
/// debug kernel (`make kernel VARIANT=debug`: lockdep, atomic-sleep checks,
/// the hung-task and soft-lockup detectors): every case ok, and the console
/// holds no lockdep, hung-task or lockup report.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn selftest_on_the_lockdep_kernel_x86_64() {
    let debug = build_dir().join("x86_64-debug");
    let (kernel, ko) = (debug.join("kernel-image"), debug.join("leaklab.ko"));
    // loglevel=7: the console shows lockdep's banner, proof of the kernel.
    let guest = Guest::new("x86_64", "selftest-debug").vm_args(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--module",
        ko.to_str().unwrap(),
        "--append",
        "loglevel=7",
    ]);
    let (status, run) = guest.json::<Selftest>(&["selftest"]);
    for c in &run.cases {
        assert!(c.ok, "{c:#?}");
    }
    assert_eq!(status, Some(0));
    let console = std::fs::read_to_string(guest.log()).unwrap();
    // The kernel really is the debug one.
    assert!(
        console.contains("lockdep") || console.contains("Lock dependency validator"),
        "not a lockdep kernel"
    );
    for bad in [
        "possible circular locking",
        "possible recursive locking",
        "inconsistent lock state",
        "BUG: sleeping function called from invalid context",
        "blocked for more than",
        "soft lockup",
        "WARNING:",
        // A taint turns lockdep off: then it would have watched nothing.
        "Disabling lock debugging",
    ] {
        assert!(!console.contains(bad), "the console has {bad:?}");
    }
}
