// SPDX-License-Identifier: GPL-2.0
//! `leaklab cycle --format ktap` and `leaklab check --format ktap` are read
//! by the kernel's own KTAP parser, `tools/testing/kunit/kunit.py parse`,
//! from the kernel source `make test` builds against (LEAKLAB_KSRC).

use std::process::Command;

#[path = "vm/kunit.rs"]
mod kunit;

use serde_json::{json, Value};

fn verdict(pattern: &str, found: u64, reason: Option<&str>) -> Value {
    json!({
        "pattern": pattern,
        "variant": "leaky",
        "runs": 1,
        "expected": {"objects": 1, "bytes": 256},
        "found": {"objects": found, "bytes": found * 256},
        "sizes": vec![256; found as usize],
        "addresses": [],
        "stats_leaked": {"objects": 1, "bytes": 256},
        "culprits": {},
        "example": null,
        "missed": [],
        "ok": reason.is_none(),
        "reason": reason,
    })
}

/// `leaklab show --format ktap FILE`'s status and KTAP, for `doc` saved
/// as `name`.
fn show_ktap(name: &str, doc: &Value) -> (Option<i32>, String) {
    let saved =
        std::env::temp_dir().join(format!("leaklab-ktap-{}-{name}.json", std::process::id()));
    std::fs::write(&saved, doc.to_string()).unwrap();
    let shown = Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(["show", "--format", "ktap"])
        .arg(&saved)
        .output()
        .expect("running leaklab show");
    std::fs::remove_file(&saved).unwrap();
    (
        shown.status.code(),
        String::from_utf8(shown.stdout).unwrap(),
    )
}

#[test]
#[ignore = "needs the kernel source: run through 'make test'"]
fn kunit_parser_reads_cycle_ktap() {
    let run = json!({
        "schema": "leaklab.cycle/1",
        "kernel": "6.12.117",
        "patterns": [],
        "cycles": [{
            "cycle": 1,
            "verdicts": [
                verdict("error_path", 1, None),
                verdict(
                    "device_ref",
                    0,
                    Some("kmemleak reported 0 objects, expected 1 # not #1"),
                ),
            ],
            "unexpected": [],
            "kernel_log": [{
                "kind": "warning",
                "line": "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1",
            }],
            "expected_log": [],
            "references": [],
            "layout": {"name": "leaklab", "sections": [], "loader": null},
            "scans": 3,
            "meminfo_delta": {"mem_available": 0, "slab": 0, "sunreclaim": 0, "kernel_stack": 0},
            "slab_delta": {},
            "ok": false,
        }],
        "ok": false,
    });
    // The saved result, printed as KTAP by `leaklab show`, as a user would.
    // A run that was not as expected exits 1, whatever the format.
    let (status, ktap) = show_ktap("cycle", &run);
    assert_eq!(status, Some(1), "{ktap}");
    assert!(ktap.starts_with("KTAP version 1\n"), "{ktap}");
    let text = kunit::parse(&ktap);
    // The parser saw every test, with the right results, and no parse errors.
    assert!(
        text.contains("Ran 4 tests: passed: 2, failed: 2"),
        "{text}\n{ktap}"
    );
    assert!(text.contains("[PASSED] cycle1.error_path.leaky"), "{text}");
    assert!(text.contains("[FAILED] cycle1.device_ref.leaky"), "{text}");
    assert!(text.contains("[FAILED] cycle1.kernel_log"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

#[test]
#[ignore = "needs the kernel source: run through 'make test'"]
fn kunit_parser_reads_check_ktap() {
    // A real check of the example driver (2 cycles, one leak both
    // detectors found), and the same with the second cycle's init failed.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/check/error_path-x86_64.json"
    );
    let mut check: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (status, ktap) = show_ktap("check", &check);
    assert_eq!(status, Some(1), "{ktap}");
    let text = kunit::parse(&ktap);
    assert!(
        text.contains("Ran 4 tests: passed: 2, failed: 2"),
        "{text}\n{ktap}"
    );
    assert!(
        text.contains("[FAILED] memory_leak_in_error_path_leaky"),
        "{text}"
    );
    assert!(!text.contains("ERROR"), "{text}");

    check["cycles"][1]["loaded"] = json!(false);
    check["cycles"][1]["unloaded"] = Value::Null;
    check["cycles"][1]["init_error"] = json!("-ENODEV (No such device)");
    let (_, ktap) = show_ktap("check-init-failed", &check);
    let text = kunit::parse(&ktap);
    assert!(
        text.contains("Ran 4 tests: passed: 1, failed: 2, skipped: 1"),
        "{text}\n{ktap}"
    );
    assert!(text.contains("[SKIPPED] cycle_2"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}
