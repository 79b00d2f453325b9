// SPDX-License-Identifier: GPL-2.0
//! `make bundle ARCH=arm64`'s tarball, as a board would run it.

use std::process::Command;

use crate::{
    common::{build_dir, Guest},
    doctor::assert_doctor_passes,
    matrix::assert_matrix,
    views::{CycleRun, Diagnosis},
};

/// `make bundle ARCH=arm64`'s tarball, unpacked into a fresh initramfs (its
/// leaklab as /init, its modules only) and booted on a board-like guest
/// (4 Cortex-A76, 2 GiB): doctor passes and the matrix is as expected.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn bundle_runs_doctor_and_matrix_on_a_board_like_arm64_guest() {
    let tarball = build_dir().join("leaklab-bundle-arm64.tar.gz");
    let dir = build_dir().join("results").join("bundle-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .output()
        .expect("running tar");
    assert!(out.status.success(), "{tarball:?}: {out:?}");
    let b = dir.join("leaklab-bundle-arm64");
    for f in [
        "leaklab",
        "leaklab.ko",
        "kmemleak-test.ko",
        "rust_minimal.ko",
        "README-board.txt",
        "common.config",
        "board-rk3588.config",
        "leaklab-watch.service",
    ] {
        assert!(b.join(f).is_file(), "the bundle lacks {f}");
    }
    for f in ["leaklab", "leaklab.ko"] {
        let data = std::fs::read(b.join(f)).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        assert_eq!(
            object::Object::architecture(&elf),
            object::Architecture::Aarch64,
            "{f}"
        );
    }
    let path = |f: &str| b.join(f).to_str().unwrap().to_string();
    let (init, ko, test, minimal) = (
        path("leaklab"),
        path("leaklab.ko"),
        path("kmemleak-test.ko"),
        path("rust_minimal.ko"),
    );
    let vm = [
        "--init", &init, "--module", &ko, "--module", &test, "--module", &minimal, "--cpus", "4",
        "--memory", "2048",
    ];
    let (status, doc) = Guest::new("arm64", "bundle-doctor")
        .vm_args(&vm)
        .json::<Diagnosis>(&["doctor"]);
    assert_doctor_passes(status, &doc, 4);
    assert!(doc.memory_mib > 1800, "{doc:#}");
    let (status, run) = Guest::new("arm64", "bundle-matrix")
        .vm_args(&vm)
        .json::<CycleRun>(&["matrix"]);
    // kmemleak-test: 24 objects and one per possible CPU.
    assert_matrix("arm64", status, &run, 28);

    // The systemd unit's commands, run as systemd runs them, for a round.
    let unit = std::fs::read_to_string(b.join("leaklab-watch.service")).unwrap();
    let key = |k: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("the unit has no {k}"))
            .to_string()
    };
    let script = format!(
        "{} && {} --rounds 1 > /dev/null; echo status $?; grep '^leaklab_watch_rounds_total ' /var/lib/prometheus/node-exporter/leaklab.prom",
        key("ExecStartPre="),
        key("ExecStart=")
    );
    let (bin, kofile) = (
        format!("{init}:/opt/leaklab/leaklab"),
        format!("{ko}:/opt/leaklab/leaklab.ko"),
    );
    let mut with_files = vm.to_vec();
    with_files.extend(["--file", &bin, "--file", &kofile]);
    let out = Guest::new("arm64", "bundle-watch")
        .vm_args(&with_files)
        .run(&["sh", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // 0, or 1 if the kernel's own boot left something for kmemleak.
    assert!(
        matches!(
            lines[..],
            ["status 0" | "status 1", "leaklab_watch_rounds_total 1"]
        ),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
