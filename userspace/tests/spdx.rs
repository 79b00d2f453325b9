// SPDX-License-Identifier: GPL-2.0
//! Every source file of the project names its license in an SPDX line, as
//! the kernel's do (LICENSE says how): its first line, or its second after
//! a script's `#!` line. Test data, JSON and the kernel config fragments of
//! qemu/ (their text is part of the kernel cache's key) are covered by
//! LICENSE alone.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The directories and files whose sources must carry the line.
const ROOTS: &[&str] = &[
    "userspace/src",
    "userspace/tests",
    "scripts",
    "qemu",
    "lava",
    "module",
    "samples",
    "examples",
    ".ci",
    "Makefile",
    "Kbuild",
];

/// Scripts whose own text is hashed into a cache key (qemu/build-kernel.sh
/// names the cached kernels by it, scripts/debian-kernel.sh and
/// scripts/lava.sh their unpacked packages): a line added there rebuilds
/// or re-fetches what the cache holds, so they get theirs on their own.
const PENDING: &[&str] = &[
    "qemu/build-kernel.sh",
    "scripts/debian-kernel.sh",
    "scripts/lava.sh",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The comment an SPDX line takes in `path`'s language, or None for a
/// file that is not a source file.
fn comment(path: &str) -> Option<&'static [&'static str]> {
    let name = path.rsplit('/').next().unwrap();
    let ext = name.rsplit_once('.').map(|(_, e)| e);
    if path.starts_with("userspace/tests/data/") || path.contains("/data/") {
        return None;
    }
    match ext {
        Some("rs") => Some(&["// "]),
        Some("c") => Some(&["// ", "/* "]),
        Some("h") => Some(&["/* ", "// "]),
        Some("sh" | "py" | "yaml" | "yml") => Some(&["# "]),
        None if matches!(name, "Makefile" | "Kbuild") || path.starts_with(".ci/") => Some(&["# "]),
        _ => None,
    }
}

/// The repository's files under `ROOTS`, as git tracks them (or, outside a
/// git checkout, as they are on disk, less a kernel build's outputs).
fn files() -> Vec<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["ls-files", "-z", "--"])
        .args(ROOTS)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout)
            .unwrap()
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        _ => {
            let mut found = Vec::new();
            for root in ROOTS {
                walk(&repo(), Path::new(root), &mut found);
            }
            found
        }
    }
}

fn walk(repo: &Path, rel: &Path, found: &mut Vec<String>) {
    let path = repo.join(rel);
    if path.is_file() {
        let name = rel.to_string_lossy().to_string();
        if !name.ends_with("ffi_generated.rs") && !name.ends_with(".mod.c") {
            found.push(name);
        }
        return;
    }
    for e in fs::read_dir(&path).into_iter().flatten().flatten() {
        walk(repo, &rel.join(e.file_name()), found);
    }
}

/// Whether `text` names its license as `path`'s language wants it.
fn has_spdx(path: &str, text: &str) -> bool {
    let Some(prefixes) = comment(path) else {
        return true;
    };
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("");
    if first.starts_with("#!") {
        first = lines.next().unwrap_or("");
    }
    prefixes.iter().any(|p| {
        first
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with("SPDX-License-Identifier: GPL-2.0"))
    })
}

#[test]
fn every_source_file_names_its_license() {
    let files = files();
    assert!(
        files.iter().any(|f| f == "userspace/src/lib.rs"),
        "no source files found under {}",
        repo().display()
    );
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !PENDING.contains(&f.as_str()))
        .filter(|f| {
            let text = fs::read_to_string(repo().join(f)).unwrap_or_default();
            !has_spdx(f, &text)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "these source files lack an SPDX line (first line, or second after \
         '#!'; e.g. '// SPDX-License-Identifier: GPL-2.0' or \
         '# SPDX-License-Identifier: GPL-2.0'; see LICENSE): {missing:#?}"
    );
}

#[test]
fn the_check_tells_a_missing_line() {
    assert!(has_spdx(
        "a.rs",
        "// SPDX-License-Identifier: GPL-2.0\n//! x\n"
    ));
    assert!(has_spdx(
        "s.sh",
        "#!/bin/sh\n# SPDX-License-Identifier: GPL-2.0\n"
    ));
    assert!(has_spdx("f.h", "/* SPDX-License-Identifier: GPL-2.0 */\n"));
    assert!(!has_spdx(
        "a.rs",
        "//! x\n// SPDX-License-Identifier: GPL-2.0\n"
    ));
    assert!(!has_spdx("s.sh", "#!/bin/sh\necho\n"));
    assert!(!has_spdx("Makefile", "all:\n"));
    assert!(has_spdx("qemu/common.config", "CONFIG_RUST=y\n"));
    assert!(has_spdx("userspace/tests/data/x.log", "anything"));
}
