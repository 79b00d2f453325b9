// SPDX-License-Identifier: GPL-2.0
//! `leaklab doctor`: can this machine show leaks? Passing in the VM, and
//! failing for the reasons it names.

use crate::{
    common::{build_dir, Doc, Guest},
    views::{Check, Diagnosis, Status},
};

/// The doctor's check `name` in `doc`.
fn doctor_check<'a>(doc: &'a Doc<Diagnosis>, name: &str) -> &'a Check {
    doc.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {doc:#}"))
}

/// Asserts a passing diagnosis: every check ok, in order, and a canary that
/// kmemleak saw leak exactly and saw its twin clean.
pub fn assert_doctor_passes(status: Option<i32>, doc: &Doc<Diagnosis>, cpus: usize) {
    assert_eq!(status, Some(0), "{doc:#}");
    assert!(doc.ok);
    let names: Vec<&str> = doc.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "root",
            "kernel config",
            "command line",
            "debugfs",
            "kmemleak",
            "auto-scan",
            "trace",
            "detectors",
            "module",
            "memory",
            "canary (kmemleak)",
            "canary (trace)"
        ]
    );
    for c in &doc.checks {
        assert_eq!(c.status, Status::Ok, "{c:#?}");
    }
    let canary = doc
        .canary
        .as_ref()
        .unwrap_or_else(|| panic!("no canary: {doc:#}"));
    assert!(canary.expected >= 1, "{canary:#?}");
    assert_eq!(canary.found_leaky, canary.expected, "{canary:#?}");
    assert_eq!(canary.found_fixed, 0, "{canary:#?}");
    assert!(
        canary
            .culprit_line
            .as_deref()
            .is_some_and(|l| l.starts_with("samples/error_path.rs:")),
        "{canary:#?}"
    );
    // The trace's canary too: the same leak seen by the second detector.
    let detectors: Vec<&str> = doc.canaries.iter().map(|c| c.detector.as_str()).collect();
    assert_eq!(detectors, ["kmemleak", "trace"], "{doc:#}");
    let trace = &doc.canaries[1];
    assert_eq!(trace.expected, canary.expected, "{trace:#?}");
    assert_eq!(trace.found_leaky, trace.expected, "{trace:#?}");
    assert_eq!(trace.found_fixed, 0, "{trace:#?}");
    assert!(doc.scan_seconds.expect("scan_seconds") > 0.0);
    let cpu = doc.cpu.as_deref().expect("cpu");
    assert!(cpu.starts_with(&format!("{cpus}x ")), "{cpu}");
    if doc.machine == "aarch64" {
        assert!(cpu.ends_with("Cortex-A76"), "{cpu}");
        // QEMU's virt machine names itself in the device tree.
        assert_eq!(doc.board.as_deref(), Some("linux,dummy-virt"), "{doc:#}");
    }
}

/// `leaklab doctor` passes in the VM: the kernel's options from
/// /proc/config.gz, slab_nomerge, kmemleak, the module, and the canary.
fn check_doctor(arch: &str) {
    let (status, doc) = Guest::new(arch, "doctor").json::<Diagnosis>(&["doctor"]);
    assert_doctor_passes(status, &doc, 1);
}

on_both_arches!(check_doctor: doctor_passes_x86_64, doctor_passes_arm64);

/// Booted with kmemleak=off, the doctor fails on the command line and on
/// kmemleak, each with its reason, and runs no canary.
fn check_doctor_kmemleak_off(arch: &str) {
    let (status, doc) = Guest::new(arch, "doctor-kmemleak-off")
        .vm_args(&["--append", "kmemleak=off"])
        .json::<Diagnosis>(&["doctor"]);
    assert_eq!(status, Some(1), "{doc:#}");
    assert!(!doc.ok);
    let cmdline = doctor_check(&doc, "command line");
    assert_eq!(cmdline.status, Status::Fail, "{cmdline:#?}");
    assert!(cmdline.detail.contains("kmemleak=off"));
    let k = doctor_check(&doc, "kmemleak");
    assert_eq!(k.status, Status::Fail, "{k:#?}");
    assert!(k.detail.contains("kmemleak is disabled"), "{k:#?}");
    // The trace still works, and its canary proves it; kmemleak's never ran.
    assert_eq!(doctor_check(&doc, "detectors").detail, "trace", "{doc:#}");
    assert_eq!(
        doctor_check(&doc, "canary (trace)").status,
        Status::Ok,
        "{doc:#}"
    );
    assert!(
        !doc.checks.iter().any(|c| c.name == "canary (kmemleak)"),
        "{doc:#}"
    );
    let detectors: Vec<&str> = doc.canaries.iter().map(|c| c.detector.as_str()).collect();
    assert_eq!(detectors, ["trace"], "{doc:#}");
}

on_both_arches!(check_doctor_kmemleak_off: doctor_fails_with_kmemleak_off_x86_64, doctor_fails_with_kmemleak_off_arm64);

/// With a module whose leaky samples free after all (`make sabotaged`), the
/// canary leaks nothing: the doctor must say kmemleak did not see it, and
/// fail.
fn check_doctor_sabotaged(arch: &str) {
    let ko = build_dir().join(arch).join("sabotaged").join("leaklab.ko");
    let (status, doc) = Guest::new(arch, "doctor-sabotaged")
        .vm_args(&["--module", ko.to_str().unwrap()])
        .json::<Diagnosis>(&["doctor"]);
    assert_eq!(status, Some(1), "{doc:#}");
    assert!(!doc.ok);
    for name in ["canary (kmemleak)", "canary (trace)"] {
        let c = doctor_check(&doc, name);
        assert_eq!(c.status, Status::Fail, "{c:#?}");
        assert!(c.detail.contains("cannot see the leak"), "{c:#?}");
    }
    let found: Vec<u64> = doc.canaries.iter().map(|c| c.found_leaky).collect();
    assert_eq!(found, [0, 0], "{doc:#}");
    // Everything before the canary was fine.
    assert_eq!(doctor_check(&doc, "module").status, Status::Ok);
    assert_eq!(doctor_check(&doc, "kmemleak").status, Status::Ok);
}

on_both_arches!(check_doctor_sabotaged: doctor_fails_when_the_canary_does_not_leak_x86_64, doctor_fails_when_the_canary_does_not_leak_arm64);

/// `doctor --format ktap`, read by the kernel's own KTAP parser (`kunit.py
/// parse` of the kernel source `make test` builds against): booted with
/// kmemleak=off, the command line and kmemleak fail, kmemleak's canary is
/// skipped, the trace's passes.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn doctor_ktap_is_read_by_kunit() {
    let out = Guest::new("x86_64", "doctor-ktap")
        .vm_args(&["--append", "kmemleak=off"])
        .run(&["doctor", "--format", "ktap"]);
    let ktap = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{ktap}");
    assert!(ktap.starts_with("KTAP version 1\n"), "{ktap}");
    let text = crate::kunit::parse(&ktap);
    for line in [
        "[FAILED] command_line",
        "[FAILED] kmemleak",
        "[PASSED] canary_trace",
    ] {
        assert!(text.contains(line), "no {line:?} in {text}\n{ktap}");
    }
    assert!(!text.contains("canary_kmemleak"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}
