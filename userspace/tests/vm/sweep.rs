// SPDX-License-Identifier: GPL-2.0
//! `leaklab sweep` over a fixed subset of Debian 12's own 6.12 x86_64
//! modules (tests/data/sweep-debian-6.12.list, 52 modules), in two guests at
//! once, with the C example driver dropped into the tree as a planted leak:
//! the plant is found at its line and confirmed alone, every other row is
//! accounted for, and the sweep fails because of the plant; the subset
//! without the plant passes, or lists only confirmed leaks.

use std::path::{Path, PathBuf};

use crate::{
    check::first_statement,
    common::{build_dir, leaklab, Doc},
    views::{Sweep, SweepRow},
};

/// The subset, by the kernel's names.
const LIST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/sweep-debian-6.12.list"
);

/// A tree of Debian's modules (`make debian-modules`) with the example
/// driver built against Debian's headers dropped in as `extra/`, as a
/// vendor's out-of-tree driver is.
pub fn planted_tree(debian: &Path, name: &str) -> PathBuf {
    let tree =
        std::fs::canonicalize(debian.join("modules")).expect("make debian-modules DEBIAN=6.12");
    let dir = build_dir().join("results").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("extra")).unwrap();
    std::os::unix::fs::symlink(tree.join("kernel"), dir.join("kernel")).unwrap();
    std::fs::copy(
        debian.join("examples/leaky_driver.ko"),
        dir.join("extra/leaky_driver.ko"),
    )
    .unwrap();
    for (file, plant) in [
        ("modules.dep", "extra/leaky_driver.ko:\n"),
        ("modules.order", "extra/leaky_driver.ko\n"),
        ("modules.builtin", ""),
        ("modules.softdep", ""),
        ("modules.alias", ""),
    ] {
        let text = std::fs::read_to_string(tree.join(file)).unwrap();
        std::fs::write(dir.join(file), text + plant).unwrap();
    }
    dir
}

/// The arguments of a sweep of `modules` (and the list, with `list`) of
/// `tree` into `out`, with `extra` arguments.
fn sweep_args(
    debian: &Path,
    tree: &Path,
    out: &Path,
    modules: &[&str],
    extra: &[&str],
) -> Vec<String> {
    let kernel = debian.join("kernel-image");
    let build = build_dir();
    let mut args: Vec<String> = [
        "sweep",
        "--in-guests",
        "--arch",
        "x86_64",
        "--jobs",
        "2",
        "--param",
        "leaky_driver:bug=error_path",
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    for (flag, path) in [
        ("--build-dir", build.as_path()),
        ("--kernel", kernel.as_path()),
        ("--modules-dir", tree),
        ("--out", out),
    ] {
        args.extend([flag.to_string(), path.display().to_string()]);
    }
    args.extend(extra.iter().chain(modules).map(|a| a.to_string()));
    args
}

/// Sweeps as [`sweep_args`] says; the exit status and the document.
fn sweep(
    debian: &Path,
    tree: &Path,
    out: &Path,
    modules: &[&str],
    extra: &[&str],
) -> (Option<i32>, Doc<Sweep>) {
    let args = sweep_args(debian, tree, out, modules, extra);
    let run = leaklab(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (run.status.code(), Doc::from_output(&run))
}

fn row<'a>(doc: &'a Doc<Sweep>, module: &str) -> &'a SweepRow {
    doc.rows
        .iter()
        .find(|r| r.module == module)
        .unwrap_or_else(|| panic!("no row for {module}: {doc:#}"))
}

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn sweep_of_debian_modules_finds_the_planted_leak_at_its_line() {
    let debian = build_dir().join("debian-6.12-x86_64");
    let tree = planted_tree(&debian, "sweep-tree-x86_64");
    let out = build_dir().join("results").join("sweep-test-x86_64");
    let _ = std::fs::remove_dir_all(&out);
    let (status, doc) = sweep(&debian, &tree, &out, &["leaky_driver"], &["--list", LIST]);
    assert!(
        doc.kernel.starts_with("6.12.") && doc.kernel.ends_with("+deb12-amd64"),
        "{doc:#}"
    );
    assert_eq!(doc.rows.len(), 53, "{doc:#}");
    assert_eq!(doc.detectors, ["trace"], "{doc:#}");
    let plant = row(&doc, "leaky_driver");
    assert_eq!(plant.status, "leaked", "{doc:#}");
    assert_eq!(plant.confirmed, Some(true), "{doc:#}");
    assert_eq!(plant.objects, 2, "two cycles: {doc:#}");
    let at = first_statement("error_path_leaky");
    assert_eq!(plant.leaks[0].line.as_deref(), Some(at.as_str()), "{doc:#}");
    // Every other row accounted for: a result, never a crash, a module
    // left loaded or an undecided detector; a leak only if found again.
    for r in doc.rows.iter().filter(|r| r.module != "leaky_driver") {
        match r.status.as_str() {
            "clean" => assert!(r.detail.is_none() && r.objects == 0, "{r:?}"),
            "did_not_load" | "skipped" => assert!(r.detail.is_some(), "{r:?}"),
            "leaked" => assert_eq!(r.confirmed, Some(true), "{r:?}"),
            _ => panic!("{} {}: {doc:#}", r.module, r.status),
        }
    }
    // Modules that load in a guest and some that cannot, both here.
    assert!(
        doc.rows.iter().filter(|r| r.status == "clean").count() >= 40,
        "{doc:#}"
    );
    assert_eq!(row(&doc, "xen_blkfront").status, "did_not_load", "{doc:#}");
    // libcrc32c asks for crc32c (modules.softdep) by an alias of two
    // modules; dm_persistent_data needs libcrc32c: both load, as with
    // modprobe (without the soft dependency, init fails with -ENOENT).
    for loads in ["libcrc32c", "dm_persistent_data"] {
        assert_eq!(row(&doc, loads).status, "clean", "{doc:#}");
    }
    assert_eq!(status, Some(1), "{doc:#}");

    // The subset without the plant, from the same rows (nothing is run
    // again: a sweep goes on where it stopped): it passes, unless a
    // Debian module's own leak was confirmed alone.
    let (status, rest) = sweep(&debian, &tree, &out, &[], &["--list", LIST]);
    assert_eq!(rest.rows.len(), 52, "{rest:#}");
    let confirmed = rest.rows.iter().filter(|r| r.status == "leaked").count();
    assert_eq!(status, Some(if confirmed == 0 { 0 } else { 1 }), "{rest:#}");
    assert!(
        rest.seconds < 5.0,
        "a resumed sweep ran guests again: {rest:#}"
    );
}

/// The LKFT way on the same machines, without kmemleak: MemAvailable
/// before and after each module's cycles. It names no allocation, and the
/// plant's 512 bytes over its two cycles are far inside the noise of its
/// 512 KiB tolerance: its verdict on the plant is the noise's (clean in one
/// run, "leaked" by 528 KiB in the next), where leaklab's sweep finds the
/// leak at its line every time.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn the_lkft_way_names_no_allocation_without_kmemleak() {
    let debian = build_dir().join("debian-6.12-x86_64");
    let tree = planted_tree(&debian, "sweep-tree-lkft-x86_64");
    let out = build_dir().join("results").join("sweep-lkft-x86_64");
    let _ = std::fs::remove_dir_all(&out);
    let modules = ["leaky_driver", "md4", "dummy", "xen_blkfront"];
    let (status, doc) = sweep(&debian, &tree, &out, &modules, &["--protocol", "lkft"]);
    assert_eq!(doc.protocol, "lkft", "{doc:#}");
    // Debian's kernel has no kmemleak: MemAvailable alone.
    assert!(doc.detectors.is_empty(), "{doc:#}");
    assert_eq!(doc.rows.len(), 4, "{doc:#}");
    assert_eq!(row(&doc, "xen_blkfront").status, "did_not_load", "{doc:#}");
    for r in &doc.rows {
        assert_eq!(r.objects, 0, "nothing is counted by object: {doc:#}");
        assert!(
            r.leaks.iter().all(|l| l.line.is_none()),
            "nothing is placed: {doc:#}"
        );
        match r.status.as_str() {
            "clean" | "did_not_load" => {}
            "leaked" => assert!(
                r.detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("MemAvailable fell")),
                "{doc:#}"
            ),
            _ => panic!("{}: {doc:#}", r.module),
        }
    }
    let noise = doc.rows.iter().any(|r| r.status == "leaked");
    assert_eq!(status, Some(if noise { 1 } else { 0 }), "{doc:#}");
}

/// The JSON document with every wall time taken out (the rows' and the
/// run's): what a table of the same modules must agree on.
fn without_times(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("sweep.json")).expect("sweep.json");
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc.as_object_mut().unwrap().remove("seconds");
    for row in doc["rows"].as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("seconds");
    }
    doc
}

/// A sweep stopped with Ctrl-C (SIGINT) once its first guest's rows are
/// kept, then run again with the same `--out`, gives the same table as
/// one run of the same modules: the rows kept before the stop are not run
/// again, the others are, and nothing is lost or counted twice.
#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn a_sweep_stopped_with_ctrl_c_and_resumed_gives_one_runs_table() {
    use nix::{
        sys::signal::{kill, Signal},
        unistd::Pid,
    };
    let debian = build_dir().join("debian-6.12-x86_64");
    let tree = planted_tree(&debian, "sweep-tree-resume-x86_64");
    let modules = ["leaky_driver", "md4", "dummy", "crc16", "ttyprintk", "loop"];
    let batches = ["--batch", "2"];
    let once = build_dir().join("results").join("sweep-once-x86_64");
    let _ = std::fs::remove_dir_all(&once);
    let (status, one) = sweep(&debian, &tree, &once, &modules, &batches);
    assert_eq!(status, Some(1), "the plant: {one:#}");
    assert_eq!(row(&one, "leaky_driver").confirmed, Some(true), "{one:#}");

    let out = build_dir().join("results").join("sweep-resumed-x86_64");
    let _ = std::fs::remove_dir_all(&out);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(sweep_args(&debian, &tree, &out, &modules, &batches))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running leaklab");
    let rows = out.join("rows");
    let kept = || std::fs::read_dir(&rows).map_or(0, |d| d.count());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while kept() == 0 {
        assert!(std::time::Instant::now() < deadline, "no row kept in 300 s");
        assert!(child.try_wait().unwrap().is_none(), "it ended before a row");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let stopped = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(130), "{said}");
    let before = kept();
    assert!(
        (1..modules.len()).contains(&before),
        "stopped halfway: {before} rows kept: {said}"
    );
    assert!(!out.join("sweep.json").exists(), "{said}");

    let (status, resumed) = sweep(&debian, &tree, &out, &modules, &batches);
    assert_eq!(status, Some(1), "{resumed:#}");
    assert_eq!(without_times(&out), without_times(&once));
}
