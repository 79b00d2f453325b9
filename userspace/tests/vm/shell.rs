// SPDX-License-Identifier: GPL-2.0
//! The guest's shell (busybox): any command line runs in the guest with its
//! exit status as `leaklab vm`'s, and the user's own files (`--file`) get
//! there, such as an exercise script that writes to debugfs.

use std::{os::unix::fs::PermissionsExt, path::PathBuf};

use crate::common::{assert_one_line_error, build_dir, leaklab, Guest};

/// `sh -c '...'` arrives as three words, whatever its script holds; its
/// output comes back on stdout and its status is `vm`'s; `leaklab` is on
/// the guest's PATH for scripts.
fn check_shell_command(arch: &str) {
    let out = Guest::new(arch, "shell").run(&[
        "sh",
        "-c",
        "echo hello; echo \"a  b\" 'c'; leaklab --version; exit 3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "stdout: {stdout}");
    assert_eq!(lines[..2], ["hello", "a  b c"], "stdout: {stdout}");
    assert!(lines[2].starts_with("leaklab "), "stdout: {stdout}");
}

on_both_arches!(check_shell_command: shell_command_runs_with_its_status_x86_64, shell_command_runs_with_its_status_arm64);

/// A script of the user's, put in the guest with `--file`, loads the module
/// with busybox's insmod, reads and writes its debugfs files, and unloads
/// it.
fn check_exercise_script(arch: &str) {
    let dir = build_dir()
        .join("results")
        .join(format!("shell-file-{arch}"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("poke.sh");
    std::fs::write(
        &script,
        "set -e\n\
         insmod /lib/modules/leaklab.ko\n\
         cat /sys/kernel/debug/leaklab/version\n\
         echo 4096 > /sys/kernel/debug/leaklab/leak_cap\n\
         cat /sys/kernel/debug/leaklab/leak_cap\n\
         echo 1 > /sys/kernel/debug/leaklab/patterns/error_path/fixed\n\
         rmmod leaklab\n\
         test ! -e /sys/kernel/debug/leaklab\n\
         echo poked\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ko = build_dir().join(arch).join("leaklab.ko");
    let out = Guest::new(arch, "shell-file")
        .vm_args(&[
            "--module",
            ko.to_str().unwrap(),
            "--file",
            script.to_str().unwrap(),
            "--file",
            &format!("{}:/usr/bin/", script.display()),
        ])
        .run(&["sh", "-c", "sh /root/poke.sh && ls -l /usr/bin/poke.sh"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("leaklab "), "stdout: {stdout}");
    assert!(lines[1].starts_with("cap_bytes=4096 "), "stdout: {stdout}");
    assert_eq!(lines[2], "poked", "stdout: {stdout}");
    // The second copy, by its DEST directory, kept its mode.
    assert!(lines[3].starts_with("-rwxr-xr-x"), "stdout: {stdout}");
}

on_both_arches!(check_exercise_script: exercise_script_from_file_writes_debugfs_x86_64, exercise_script_from_file_writes_debugfs_arm64);

#[test]
#[ignore = "needs the built guest binary: run through 'make test'"]
fn vm_refuses_a_missing_file() {
    let out = Guest::default_arch()
        .vm_args(&["--file", "/nonexistent/poke.sh"])
        .run(&["sh", "/root/poke.sh"]);
    assert_one_line_error(
        &out,
        "--file /nonexistent/poke.sh: /nonexistent/poke.sh does not exist",
    );
}

#[test]
#[ignore = "needs the built guest binary: run through 'make test'"]
fn vm_refuses_a_file_over_its_own() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for (dest, needle) in [
        ("/init", "would overwrite the guest's init"),
        ("/lib/modules/my.ko", "give a module with --module"),
        ("root/x", "is not an absolute path"),
    ] {
        let out = Guest::default_arch()
            .vm_args(&["--file", &format!("{script}:{dest}")])
            .run(&["census"]);
        assert_one_line_error(&out, needle);
    }
}

/// Without busybox the guest has no shell: a command that is not leaklab's
/// is refused in one line before a boot.
#[test]
#[ignore = "needs the built guest binary: run through 'make test'"]
fn vm_without_busybox_refuses_a_shell_command() {
    // A build directory with everything but busybox.
    let dir: PathBuf = build_dir().join("results").join("no-busybox");
    let arch_dir = dir.join("x86_64");
    std::fs::create_dir_all(&arch_dir).unwrap();
    for f in ["kernel-image", "leaklab", "leaklab.ko"] {
        let link = arch_dir.join(f);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(build_dir().join("x86_64").join(f), &link).unwrap();
    }
    let out = leaklab(&[
        "vm",
        "--build-dir",
        dir.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo hello",
    ]);
    assert_one_line_error(
        &out,
        "\"sh\" is not a leaklab command and the guest has no shell or tools to run it: no busybox at",
    );
    let out = leaklab(&["vm", "--busybox", "/nonexistent/busybox", "--", "sh"]);
    assert_one_line_error(&out, "busybox /nonexistent/busybox not found");
}
