// SPDX-License-Identifier: GPL-2.0
//! The docs' sample outputs cannot go stale: `scripts/docs.py compare`,
//! which `make test`'s lesson tests call with what each lesson prints now
//! (tests/vm/lessons.rs), passes a page's own sample and fails it with a
//! diff once a line of it moves. Every page's samples are well formed.

use std::{fs, path::PathBuf, process::Command};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn docs(args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .current_dir(repo())
        .arg("scripts/docs.py")
        .args(args)
        .output()
        .expect("running python3");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The body of the page's block after `<!-- sample: ID -->`.
fn sample(page: &str, id: &str) -> String {
    let text = fs::read_to_string(repo().join(page)).unwrap();
    let marker = format!("<!-- sample: {id} -->\n```text\n");
    let start = text.find(&marker).expect("the sample's marker") + marker.len();
    let end = start + text[start..].find("\n```").unwrap();
    text[start..=end].to_string()
}

#[test]
fn a_moved_line_fails_the_comparison_and_the_page_s_own_sample_passes() {
    let id = "lesson error_path-c";
    let body = sample("Documentation/patterns/error_path.md", id);
    let file = std::env::temp_dir().join(format!("leaklab-doc-sample-{}", std::process::id()));
    fs::write(&file, &body).unwrap();
    let (ok, out) = docs(&["compare", id, file.to_str().unwrap()]);
    assert!(ok, "{out}");

    // The allocation one line further down, as an edit above it moves it.
    let at = body.find("leaky_driver.c:").expect("a source line") + "leaky_driver.c:".len();
    let line: u32 = body[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let moved = format!(
        "{}{}{}",
        &body[..at],
        line + 1,
        &body[at + line.to_string().len()..]
    );
    fs::write(&file, &moved).unwrap();
    let (ok, out) = docs(&["compare", id, file.to_str().unwrap()]);
    let _ = fs::remove_file(&file);
    assert!(!ok, "a moved line passed: {out}");
    assert!(out.contains(&format!("-    error_path_leaky+0x... [leaky_driver] at build/lessons/error_path-c/leaky_driver.c:{line}")), "{out}");
    assert!(out.contains("run 'make docs'"), "{out}");
}

/// Every marker is followed by its block, names a command docs.py knows,
/// and no sample shows a path of the machine it ran on.
#[test]
fn every_sample_is_well_formed_and_names_its_command() {
    let (ok, out) = docs(&["list"]);
    assert!(ok, "{out}");
    assert!(out.lines().count() >= 13, "{out}");
    for line in out.lines() {
        assert!(!line.ends_with("(?)"), "a sample without a command: {line}");
    }
}
