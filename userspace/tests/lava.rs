// SPDX-License-Identifier: GPL-2.0
//! `leaklab lava` on bad input: each refused in one line with what to do,
//! exit status 2, nothing written. (The real jobs run through LAVA's own
//! dispatcher in the VM tests, `tests/vm/lava.rs`.)

use std::{path::PathBuf, process::Command};

fn leaklab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(args)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("leaklab-lava-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit status 2 and one line on stderr that holds `needle`.
fn refused(args: &[&str], needle: &str) {
    let out = leaklab(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn a_job_without_what_it_needs_is_refused() {
    let dir = scratch("job");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let empty = dir.to_str().unwrap();
    refused(
        &[
            "lava",
            "job",
            "--device-type",
            "rk3588-rock-5b",
            "--out",
            out,
        ],
        "pass --arch arm64",
    );
    refused(
        &[
            "lava",
            "job",
            "--arch",
            "arm64",
            "--device-type",
            "rk3588-rock-5b",
            "--out",
            out,
        ],
        "pass --kernel",
    );
    refused(
        &["lava", "job", "--dtb", "x.dtb", "--out", out],
        "--dtb is for boards",
    );
    refused(
        &["lava", "job", "--build-dir", empty, "--out", out],
        "make module ARCH=x86_64",
    );
    let hash = dir.join("a#b");
    refused(
        &["lava", "job", "--out", hash.to_str().unwrap()],
        "choose another --out",
    );
    assert!(!hash.exists(), "a refused job wrote its directory");
    assert!(
        !dir.join("out").exists(),
        "a refused job wrote its directory"
    );
}

#[test]
fn results_of_something_else_are_refused() {
    let dir = scratch("results");
    let missing = dir.join("missing.log");
    refused(
        &["lava", "results", missing.to_str().unwrap()],
        "reading the LAVA log",
    );
    let not_lava = dir.join("console.log");
    std::fs::write(&not_lava, "@1 ok 1 cycle1.a.leaky\n{\"no\": \"lvl\"}\n").unwrap();
    refused(
        &["lava", "results", not_lava.to_str().unwrap()],
        "holds no LAVA results",
    );
}

#[test]
fn cases_of_something_else_are_refused() {
    let dir = scratch("cases");
    let watch = dir.join("watch.json");
    std::fs::write(&watch, "{\"schema\": \"leaklab.watch/1\"}").unwrap();
    refused(&["lava", "cases", watch.to_str().unwrap()], "has no cases");
    let text = dir.join("text");
    std::fs::write(&text, "hello").unwrap();
    refused(
        &["lava", "cases", text.to_str().unwrap()],
        "neither KTAP nor JSON",
    );
    let empty = dir.join("empty.ktap");
    std::fs::write(&empty, "KTAP version 1\n1..0\n").unwrap();
    refused(
        &["lava", "cases", empty.to_str().unwrap()],
        "holds no test results",
    );
}

/// `make lava`'s knob: SABOTAGED is the user's alone (unset unless given),
/// and giving it leaves the sabotaged module's own directory as it was. (It
/// once named that directory too, and every `make lava` ran sabotaged.)
#[test]
fn make_lava_runs_sabotaged_only_when_asked() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let probe = |extra: &[&str]| -> String {
        let out = Command::new("make")
            .args(["-s", "--no-print-directory", "-C", repo])
            .arg("--eval=lava-probe: ; @echo '$(SABOTAGED)|$(SABOTAGED_DIR)'")
            .arg("lava-probe")
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (given, dir) = probe(&[])
        .split_once('|')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    assert_eq!(given, "", "SABOTAGED is set without being asked for");
    assert!(dir.ends_with("/build/x86_64/sabotaged"), "{dir}");
    assert_eq!(probe(&["SABOTAGED=1"]), format!("1|{dir}"));
}
