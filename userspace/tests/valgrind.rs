// SPDX-License-Identifier: GPL-2.0
//! The tool under valgrind on the host: parsing a large file of reports
//! (human and JSON output) leaks nothing of its own and makes no invalid
//! access.

use std::process::Command;

#[test]
#[ignore = "needs valgrind (make setup installs it): run through 'make test'"]
fn parse_of_a_large_file_under_valgrind_is_clean() {
    let capture = concat!(
        include_str!("data/kmemleak-test-arm64.log"),
        include_str!("data/leaklab-samples-x86_64.log")
    );
    let path = std::env::temp_dir().join(format!("leaklab-valgrind-{}.log", std::process::id()));
    let copies = (2 << 20) / capture.len() + 1;
    std::fs::write(&path, capture.repeat(copies)).unwrap();
    for format in ["human", "json"] {
        let out = Command::new("valgrind")
            .args([
                "--leak-check=full",
                // "possibly lost" stays out: the standard library's handle
                // on the main thread is held by a tagged pointer valgrind
                // cannot follow (48 bytes, allocated before main code runs).
                "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect",
                "--error-exitcode=99",
                "--",
            ])
            .arg(env!("CARGO_BIN_EXE_leaklab"))
            .args(["parse", "--format", format])
            .arg(&path)
            .output()
            .expect("running valgrind");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // 1: reports were found (and printed); 99 would be valgrind's.
        assert_eq!(out.status.code(), Some(1), "{format}: {stderr}");
        assert!(
            stderr.contains("ERROR SUMMARY: 0 errors"),
            "{format}: {stderr}"
        );
        for kind in ["definitely", "indirectly"] {
            assert!(
                stderr.contains(&format!("{kind} lost: 0 bytes"))
                    || stderr.contains("All heap blocks were freed"),
                "{format}: {stderr}"
            );
        }
        let reports = if format == "json" {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            doc["reports"].as_array().unwrap().len()
        } else {
            let first = String::from_utf8_lossy(&out.stdout);
            first.split_whitespace().next().unwrap().parse().unwrap()
        };
        assert_eq!(reports, copies * 29, "{format}");
    }
    std::fs::remove_file(&path).unwrap();
}
