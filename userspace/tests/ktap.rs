//! `leaklab cycle --format ktap` is read by the kernel's own KTAP parser,
//! `tools/testing/kunit/kunit.py parse`, from the kernel source `make test`
//! builds against (LEAKLAB_KSRC).

use std::{
    collections::BTreeMap,
    io::Write,
    process::{Command, Stdio},
};

use leaklab::{
    control::Variant,
    cycle::{Count, CycleRecord, CycleRun, Verdict},
    layout::ModuleLayout,
    monitor::{Finding, MemInfo},
};

fn verdict(pattern: &str, found: u64, reason: Option<&str>) -> Verdict {
    Verdict {
        pattern: pattern.into(),
        variant: Variant::Leaky,
        runs: 1,
        expected: Count {
            objects: 1,
            bytes: 256,
        },
        found: Count {
            objects: found,
            bytes: found * 256,
        },
        sizes: vec![256; found as usize],
        addresses: Vec::new(),
        stats_leaked: Count {
            objects: 1,
            bytes: 256,
        },
        culprits: BTreeMap::new(),
        example: None,
        missed: Vec::new(),
        ok: reason.is_none(),
        reason: reason.map(str::to_string),
    }
}

#[test]
#[ignore = "needs the kernel source: run through 'make test'"]
fn kunit_parser_reads_cycle_ktap() {
    let ksrc =
        std::env::var("LEAKLAB_KSRC").expect("LEAKLAB_KSRC is not set: run through 'make test'");
    let run = CycleRun {
        schema: "leaklab.cycle/1".into(),
        kernel: "6.12.117".into(),
        patterns: Vec::new(),
        cycles: vec![CycleRecord {
            cycle: 1,
            verdicts: vec![
                verdict("error_path", 1, None),
                verdict(
                    "device_ref",
                    0,
                    Some("kmemleak reported 0 objects, expected 1 # not #1"),
                ),
            ],
            unexpected: Vec::new(),
            kernel_log: vec![Finding {
                kind: "warning".into(),
                line: "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1".into(),
            }],
            expected_log: Vec::new(),
            references: Vec::new(),
            layout: ModuleLayout {
                name: "leaklab".into(),
                sections: Vec::new(),
                loader: None,
            },
            scans: 3,
            meminfo_delta: MemInfo::default(),
            slab_delta: BTreeMap::new(),
            ok: false,
        }],
        ok: false,
    };
    let ktap = run.ktap();
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
