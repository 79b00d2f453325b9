//! End-to-end tests: boot the project's kernel in QEMU, load the real
//! modules, and check what kmemleak saw. They need the outputs of
//! `make module tool` for both ARCHs; `make test` builds them and runs these
//! with `--include-ignored` and `LEAKLAB_BUILD_DIR` set.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;

fn build_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("LEAKLAB_BUILD_DIR")
            .expect("LEAKLAB_BUILD_DIR is not set: run these tests through 'make test'"),
    )
}

fn leaklab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(args)
        .output()
        .expect("running leaklab")
}

fn log_path(name: &str) -> String {
    build_dir().join("results").join(name).display().to_string()
}

/// Boots `arch`, runs the census as JSON, and returns it.
fn census(arch: &str) -> Value {
    let dir = build_dir();
    let log = log_path(&format!("test-census-{arch}.log"));
    let out = leaklab(&[
        "vm",
        "--arch",
        arch,
        "--build-dir",
        dir.to_str().unwrap(),
        "--log",
        &log,
        "--",
        "census",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "leaklab vm failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "guest output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn module<'a>(census: &'a Value, name: &str) -> &'a Value {
    census["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("module {name} missing from {census}"))
}

fn check_census(arch: &str) {
    let c = census(arch);
    assert_eq!(c["schema"], "leaklab.census/1");
    assert!(
        c["kernel"].as_str().unwrap().starts_with("6.12"),
        "{}",
        c["kernel"]
    );
    for name in ["leaklab", "kmemleak_test", "rust_minimal"] {
        let m = module(&c, name);
        assert_eq!(m["loaded"], true, "{name} did not load: {m}");
        assert_eq!(m["unloaded"], true, "{name} did not unload: {m}");
    }
    // The skeleton's debugfs directory: one root-only read-only file.
    let leaklab = module(&c, "leaklab");
    let version = &leaklab["debugfs"]["version"];
    assert_eq!(version["mode"], 0o400, "{leaklab}");
    assert_eq!(version["content"], "leaklab 0.1.0\n");
    assert_eq!(
        leaklab["leaks"]["objects"], 0,
        "leaklab leaked by itself: {leaklab}"
    );
    // rust_minimal frees its vector on unload: a negative control.
    assert_eq!(module(&c, "rust_minimal")["leaks"]["objects"], 0);
    // kmemleak-test leaks 25 objects on a 1-vCPU guest; detection is not
    // deterministic (stale pointers hide a few for a while), so ask for most.
    let kt = module(&c, "kmemleak_test")["leaks"]["objects"]
        .as_u64()
        .unwrap();
    assert!(
        (20..=25).contains(&kt),
        "kmemleak_test: {kt} leaks, expected 20 to 25"
    );
}

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn census_x86_64() {
    check_census("x86_64");
}

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn census_arm64() {
    check_census("arm64");
}

/// A failure must be one line on stderr, naming the console log where there is one.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("leaklab: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(
        errors[0].contains(needle),
        "{:?} lacks {needle:?}",
        errors[0]
    );
}

#[test]
#[ignore = "needs the built guest binary: run through 'make test'"]
fn vm_reports_a_missing_kernel() {
    let dir = build_dir();
    let out = leaklab(&[
        "vm",
        "--build-dir",
        dir.to_str().unwrap(),
        "--kernel",
        "/nonexistent/bzImage",
        "--",
        "census",
    ]);
    assert_one_line_error(&out, "kernel image /nonexistent/bzImage not found");
}

#[test]
#[ignore = "needs the built guest binary: run through 'make test'"]
fn vm_reports_a_missing_qemu() {
    let dir = build_dir();
    let out = leaklab(&[
        "vm",
        "--build-dir",
        dir.to_str().unwrap(),
        "--qemu",
        "/nonexistent/qemu-system-x86_64",
        "--",
        "census",
    ]);
    assert_one_line_error(&out, "/nonexistent/qemu-system-x86_64 not found");
}

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn vm_stops_a_guest_that_does_not_finish() {
    let dir = build_dir();
    let log = log_path("test-timeout.log");
    // The census waits out kmemleak's 5 s minimum age: 3 s cannot be enough.
    let out = leaklab(&[
        "vm",
        "--build-dir",
        dir.to_str().unwrap(),
        "--timeout",
        "3",
        "--log",
        &log,
        "--",
        "census",
    ]);
    assert_one_line_error(
        &out,
        &format!("did not finish within 3 s (hung?); console log: {log}"),
    );
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(console.contains("# leaklab: killed after 3 s"), "{console}");
}

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn guest_command_status_is_returned() {
    let dir = build_dir();
    // A module that does not exist: the guest command fails with status 1,
    // and the VM run returns that status as its own.
    let out = leaklab(&[
        "vm",
        "--build-dir",
        dir.to_str().unwrap(),
        "--log",
        &log_path("test-status.log"),
        "--",
        "census",
        "/lib/modules/missing.ko",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    assert!(
        stdout.contains("error: reading /lib/modules/missing.ko"),
        "{stdout}"
    );
}
