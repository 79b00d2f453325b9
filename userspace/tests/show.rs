// SPDX-License-Identifier: GPL-2.0
//! `leaklab show` on soak results: each printed, and their memory plotted
//! to SVG by the tool's plotting (the `plotters` crate). The two files are
//! real `leaklab soak --cycles 30 --every 10 --format json` outputs of the
//! x86_64 guest: the fixed variants alone, and with `error_path` leaky
//! (too few cycles for its slope: that run does not pass). And on a saved
//! check: a real `leaklab check leaky_driver.ko --param bug=error_path
//! --cycles 2 --format json` of the x86_64 guest.

use std::{path::PathBuf, process::Command};

fn data(name: &str) -> String {
    format!("{}/tests/data/soak/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn leaklab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(args)
        .output()
        .unwrap()
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("leaklab-show-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The points of every polyline of `svg`, by polyline.
fn polylines(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|p| p.split("points=\"").nth(1))
        .map(|p| p.split('"').next().unwrap().split_whitespace().count())
        .collect()
}

#[test]
fn soak_results_are_printed_and_plotted() {
    let svg = out_dir("plot").join("soak.svg");
    let (fixed, leaky) = (
        data("fixed-x86_64.json"),
        data("error_path-leaky-x86_64.json"),
    );
    let out = leaklab(&["show", &fixed, &leaky, "--svg", svg.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The leaky run did not pass its bound, so show exits as it did.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("fixed: soak: 30 cycles"), "{stdout}");
    assert!(
        stdout.contains("error_path leaky: soak: 30 cycles")
            && stdout.contains("bound not met: the leak grew"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("plot: {}", svg.display())),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    for label in [
        "fixed: Slab",
        "fixed: MemAvailable",
        "error_path leaky: Slab",
        "error_path leaky: MemAvailable",
        "cycles",
        "MiB since start",
    ] {
        assert!(svg.contains(label), "{label} not in the plot");
    }
    // Each run's Slab curve is one polyline through its 4 samples.
    let lines = polylines(&svg);
    assert_eq!(lines.iter().filter(|&&n| n == 4).count(), 2, "{lines:?}");
}

#[test]
fn bad_input_is_one_line_and_no_plot() {
    let dir = out_dir("bad");
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let svg = dir.join("never.svg");
    let fixed = data("fixed-x86_64.json");
    // A directory whose state.json is something else.
    let state_dir = dir.join("notwatch");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(
        state_dir.join("state.json"),
        "{\"schema\":\"leaklab.soak/1\"}",
    )
    .unwrap();
    for (args, needle) in [
        (
            vec![
                "show",
                junk.to_str().unwrap(),
                "--svg",
                svg.to_str().unwrap(),
            ],
            "is not a saved leaklab cycle, matrix, check, sweep or soak result",
        ),
        (
            vec!["show", &fixed, "--format", "json"],
            "soak results are shown as text",
        ),
        (
            vec!["show", "/nonexistent/x.json"],
            "reading /nonexistent/x.json",
        ),
        (
            vec![
                "show",
                dir.to_str().unwrap(),
                "--svg",
                svg.to_str().unwrap(),
            ],
            "holds no state.json: it is not a directory `leaklab watch --out` wrote",
        ),
        (
            vec!["show", state_dir.to_str().unwrap()],
            "is not a leaklab watch state",
        ),
        (
            vec!["show", state_dir.to_str().unwrap(), "--format", "json"],
            "a watch directory is shown as text",
        ),
    ] {
        let out = leaklab(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(!svg.exists());
}

#[test]
fn a_saved_check_is_shown_again() {
    let check = format!(
        "{}/tests/data/check/error_path-x86_64.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = leaklab(&["show", &check]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // It leaked: show exits as the check did.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for line in [
        "leaklab check: leaky_driver (/lib/modules/leaky_driver.ko) on 6.12.118, 2 cycle(s), params: bug=error_path",
        "LEAK memory leak in error_path_leaky: 2 object(s), 512 bytes, in every cycle (1-2), first in cycle 1",
        "    error_path_leaky+0x17 [leaky_driver] at examples/leaky_driver/leaky_driver.c:100",
        "result: FAIL: leaky_driver leaked 2 object(s), 512 bytes, in 1 place(s) in 2 cycle(s); the trace: 2 object(s), 512 bytes, in 1 place(s)",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no {line:?} in {stdout}");
    }

    let out = leaklab(&["show", &check, "--format", "ktap"]);
    assert_eq!(out.status.code(), Some(1));
    let ktap: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
        .map(|l| l.split(" # ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        ktap,
        [
            "ok 1 cycle_1",
            "ok 2 cycle_2",
            "not ok 3 memory_leak_in_error_path_leaky",
            "not ok 4 trace_memory_leak_in_error_path_leaky"
        ]
    );

    // As JSON, the document it read, whole.
    let out = leaklab(&["show", &check, "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&check).unwrap()).unwrap();
    assert_eq!(shown, saved);

    // Two checks at once are refused in one line.
    let out = leaklab(&["show", &check, &check]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("give one cycle, matrix, check or sweep result alone"),
        "{err}"
    );
}

#[test]
fn a_saved_sweep_is_shown_again_as_a_table_ktap_and_lava_cases() {
    // A real sweep (tests/vm/sweep.rs's subset, December 2026).
    let sweep = format!(
        "{}/tests/data/sweep/debian-6.12-x86_64.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = leaklab(&["show", &sweep]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let plant = "leaky_driver                 LEAKED              2       512     2.5  error_path_leaky+0x21 at examples/leaky_driver/leaky_driver.c:126 (confirmed alone)";
    for line in [
        plant,
        "xen_blkfront                 did not load        0         0     1.7  -ENODEV (No such device)",
        "leaks by culprit:",
        "  memory leak in error_path_leaky: leaky_driver",
        "result: FAIL: leaky_driver (68 module(s): 61 clean, 1 leaked, 6 did not load, 0 skipped, 0 inconclusive, 0 stuck, 0 crashed)",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no {line:?} in {stdout}");
    }
    let out = leaklab(&["show", &sweep, "--format", "ktap"]);
    let ktap = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{ktap}");
    assert!(ktap.contains("\n1..68\n"), "{ktap}");
    assert!(ktap.contains("ok 1 leak_binfmt_misc\n"), "{ktap}");
    assert!(ktap.contains("# SKIP -ENODEV (No such device)"), "{ktap}");
    assert!(
        ktap.contains("not ok 68 leak_leaky_driver # LEAKED"),
        "{ktap}"
    );
    let out = leaklab(&["lava", "cases", &sweep]);
    let cases = String::from_utf8_lossy(&out.stdout);
    assert!(
        cases
            .lines()
            .any(|l| l == "leak_leaky_driver fail 2 objects"),
        "{cases}"
    );
    assert!(
        cases
            .lines()
            .any(|l| l.starts_with("leak_xen_blkfront skip")),
        "{cases}"
    );
}
