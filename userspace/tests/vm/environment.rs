// SPDX-License-Identifier: GPL-2.0
//! The tool's own failures: a module the kernel cannot take, kmemleak off,
//! commands run without root, a missing kernel or QEMU, a guest that hangs,
//! and the guest command's status.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::common::{assert_one_line_error, build_dir, Guest};

/// Runs `leaklab cycle` in an `arch` guest booted with `append` and `module`
/// as its only module, and checks it fails with exit 2 and one line holding
/// `needle`, leaving no module loaded.
fn check_cycle_refuses(arch: &str, name: &str, append: &[&str], module: &Path, needle: &str) {
    let mut guest = Guest::new(arch, name).vm_args(&["--module", module.to_str().unwrap()]);
    for a in append {
        guest = guest.vm_args(&["--append", a]);
    }
    let out = guest.run(&["cycle", "--module", "/lib/modules/leaklab.ko"]);
    assert_one_line_error(&out, needle);
}

/// A copy of `arch`'s leaklab.ko whose vermagic names another release.
fn ko_for_another_kernel(arch: &str) -> PathBuf {
    let mut data = std::fs::read(build_dir().join(arch).join("leaklab.ko")).unwrap();
    let key = b"vermagic=6.12.";
    let at = data
        .windows(key.len())
        .position(|w| w == key)
        .expect("vermagic in .modinfo");
    // 6.12.117 -> 6.12.917: same length, another kernel.
    data[at + key.len()] = b'9';
    let dir = build_dir()
        .join("results")
        .join(format!("other-kernel-{arch}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ko = dir.join("leaklab.ko");
    std::fs::write(&ko, data).unwrap();
    ko
}

/// A copy of `arch`'s leaklab.ko that needs a symbol no kernel has.
fn ko_with_missing_symbol(arch: &str) -> PathBuf {
    let mut data = std::fs::read(build_dir().join(arch).join("leaklab.ko")).unwrap();
    let name = b"\0kvfree_rcu_barrier\0";
    let at = data
        .windows(name.len())
        .position(|w| w == name)
        .expect("symbol name in .strtab");
    data[at + name.len() - 2] = b'z';
    let dir = build_dir()
        .join("results")
        .join(format!("missing-symbol-{arch}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ko = dir.join("leaklab.ko");
    std::fs::write(&ko, data).unwrap();
    ko
}

fn check_environment_errors(arch: &str) {
    check_cycle_refuses(
        arch,
        "missing-symbol",
        &[],
        &ko_with_missing_symbol(arch),
        "the kernel lacks kvfree_rcu_barriez",
    );
    let ko = build_dir().join(arch).join("leaklab.ko");
    check_cycle_refuses(
        arch,
        "kmemleak-off",
        &["kmemleak=off"],
        &ko,
        "kmemleak is disabled",
    );
    check_cycle_refuses(
        arch,
        "vermagic",
        &[],
        &ko_for_another_kernel(arch),
        "this kernel is 6.12.",
    );
    let other = if arch == "x86_64" { "arm64" } else { "x86_64" };
    let foreign = build_dir().join(other).join("leaklab.ko");
    check_cycle_refuses(arch, "foreign-arch", &[], &foreign, "this machine is");
}

on_both_arches!(check_environment_errors: cycle_refuses_a_bad_environment_x86_64, cycle_refuses_a_bad_environment_arm64);

/// As an unprivileged user (nobody), every command that needs root says so
/// in one line before touching anything.
#[test]
#[ignore = "changes user with setpriv (needs root): run through 'make test'"]
fn commands_that_need_root_say_so() {
    // A copy nobody can run: /tmp is open to all, the build tree may not be.
    let dir = std::env::temp_dir().join(format!("leaklab-unprivileged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("leaklab");
    std::fs::copy(env!("CARGO_BIN_EXE_leaklab"), &exe).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for cmd in [
        &["cycle"][..],
        &["patterns"],
        &["trigger", "error_path", "leaky"],
        &["selftest"],
        &["fuzz"],
        &["faults"],
        &["soak"],
        &["matrix"],
    ] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args(cmd)
            .output()
            .expect("running setpriv");
        assert_one_line_error(&out, &format!("leaklab {} needs root", cmd[0]));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs the built guest binary: run through 'make test'"]
fn vm_reports_a_missing_kernel() {
    let out = Guest::default_arch()
        .vm_args(&["--kernel", "/nonexistent/bzImage"])
        .run(&["census"]);
    assert_one_line_error(&out, "kernel image /nonexistent/bzImage not found");
}

#[test]
#[ignore = "needs the built guest binary: run through 'make test'"]
fn vm_reports_a_missing_qemu() {
    let out = Guest::default_arch()
        .vm_args(&["--qemu", "/nonexistent/qemu-system-x86_64"])
        .run(&["census"]);
    assert_one_line_error(&out, "/nonexistent/qemu-system-x86_64 not found");
}

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn vm_stops_a_guest_that_does_not_finish() {
    // The census waits out kmemleak's 5 s minimum age: 3 s cannot be enough.
    let guest = Guest::default_arch()
        .log_as("test-timeout.log")
        .vm_args(&["--timeout", "3"]);
    let out = guest.run(&["census"]);
    let log = guest.log();
    assert_one_line_error(
        &out,
        &format!("did not finish within 3 s (hung?); console log: {log}"),
    );
    let console = std::fs::read_to_string(log).unwrap();
    assert!(console.contains("# leaklab: killed after 3 s"), "{console}");
}

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn guest_command_status_is_returned() {
    // A module that does not exist: the guest command fails with status 1,
    // and the VM run returns that status as its own.
    let out = Guest::default_arch()
        .log_as("test-status.log")
        .run(&["census", "/lib/modules/missing.ko"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    assert!(
        stdout.contains("error: reading /lib/modules/missing.ko"),
        "{stdout}"
    );
}
