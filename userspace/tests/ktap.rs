//! `leaklab cycle --format ktap` is read by the kernel's own KTAP parser,
//! `tools/testing/kunit/kunit.py parse`, from the kernel source `make test`
//! builds against (LEAKLAB_KSRC).

use std::{
    io::Write,
    process::{Command, Stdio},
};

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

#[test]
#[ignore = "needs the kernel source: run through 'make test'"]
fn kunit_parser_reads_cycle_ktap() {
    let ksrc =
        std::env::var("LEAKLAB_KSRC").expect("LEAKLAB_KSRC is not set: run through 'make test'");
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
    let saved = std::env::temp_dir().join(format!("leaklab-ktap-{}.json", std::process::id()));
    std::fs::write(&saved, run.to_string()).unwrap();
    let shown = Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(["show", "--format", "ktap"])
        .arg(&saved)
        .output()
        .expect("running leaklab show");
    std::fs::remove_file(&saved).unwrap();
    // A run that was not as expected exits 1, whatever the format.
    assert_eq!(shown.status.code(), Some(1), "{shown:?}");
    let ktap = String::from_utf8(shown.stdout).unwrap();
    assert!(ktap.starts_with("KTAP version 1\n"), "{ktap}");
    let mut child = Command::new("python3")
        .arg(format!("{ksrc}/tools/testing/kunit/kunit.py"))
        .arg("parse")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running kunit.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ktap.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
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
