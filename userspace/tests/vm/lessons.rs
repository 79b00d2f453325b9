// SPDX-License-Identifier: GPL-2.0
//! The course through the patterns (Documentation/patterns/README.md): each
//! lesson's copy, proven by its one command (`scripts/lesson.sh prove`,
//! the real module built from the copy and checked in QEMU), fails while it
//! is as the lesson gives it, printing the report its page shows (the
//! page's sample, `make docs`), and passes once the lesson's reference fix
//! (Documentation/patterns/lessons/LESSON.patch) is applied.

use std::process::Command;

use crate::common::{assert_doc_samples, repo};

/// `scripts/lesson.sh ARGS`: its status, stdout and stderr.
fn lesson(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new("bash")
        .current_dir(repo())
        .arg("scripts/lesson.sh")
        .args(args)
        // Outside make's jobserver, as a student runs it.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("running bash");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `name` afresh, proves it as given (exit 1: it leaks), applies
/// the reference fix and proves it again (exit 0).
fn unfixed_fails_and_the_reference_fix_passes(name: &str) {
    let _ = std::fs::remove_dir_all(repo().join("build/lessons").join(name));
    let (status, _, err) = lesson(&["start", name]);
    assert_eq!(status, Some(0), "{err}");
    let (status, out, err) = lesson(&["prove", name]);
    assert_eq!(status, Some(1), "{name} as given must leak:\n{out}\n{err}");
    assert!(out.contains("LEAK"), "{out}");
    // The report the lesson's page shows is what the tree prints now.
    assert_doc_samples(&format!("lesson {name}"), &format!("lesson-{name}"), &out);
    let (status, _, err) = lesson(&["solve", name]);
    assert_eq!(status, Some(0), "{err}");
    let (status, out, err) = lesson(&["prove", name]);
    assert_eq!(
        status,
        Some(0),
        "{name} with its fix must pass:\n{out}\n{err}"
    );
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("result: ok")),
        "{out}"
    );
}

macro_rules! lessons {
    ($($test:ident: $name:literal),* $(,)?) => {
        $(
            #[test]
            #[ignore = "boots QEMU: run through 'make test'"]
            fn $test() {
                unfixed_fails_and_the_reference_fix_passes($name);
            }
        )*

        /// The lessons tested here, in the course's order.
        const TESTED: &[&str] = &[$($name),*];
    };
}

lessons!(
    error_path_c: "error_path-c",
    error_path_rust: "error_path-rust",
    conditional_free_c: "conditional_free-c",
    conditional_free_rust: "conditional_free-rust",
    module_exit_c: "module_exit-c",
    module_exit_rust: "module_exit-rust",
    device_ref_c: "device_ref-c",
    device_ref_rust: "device_ref-rust",
    slab_cache_c: "slab_cache-c",
    slab_cache_rust: "slab_cache-rust",
    rust_forget_rust: "rust_forget-rust",
    arc_cycle_rust: "arc_cycle-rust",
    page_leak_rust: "page_leak-rust",
);

/// Every lesson the script lists is tested above, and every reference fix
/// belongs to one.
#[test]
fn every_lesson_is_tested_and_has_its_fix() {
    let (status, out, err) = lesson(&["list"]);
    assert_eq!(status, Some(0), "{err}");
    let listed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, TESTED);
    let mut fixes: Vec<String> = std::fs::read_dir(repo().join("Documentation/patterns/lessons"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fixes.sort();
    let mut want: Vec<String> = TESTED.iter().map(|l| format!("{l}.patch")).collect();
    want.sort();
    assert_eq!(fixes, want);
}
