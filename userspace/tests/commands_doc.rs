// SPDX-License-Identifier: GPL-2.0
//! Documentation/commands.md is what the tool's `--help` prints:
//! scripts/docs-commands.sh run on the current tool makes the page, and it
//! must equal the checked-in one.

use std::{fs, path::Path, process::Command};

#[test]
fn the_command_reference_is_what_the_tool_prints() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(repo.join("scripts/docs-commands.sh"))
        .arg(env!("CARGO_BIN_EXE_leaklab"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/docs-commands.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = String::from_utf8(out.stdout).unwrap();
    let page = repo.join("Documentation/commands.md");
    let saved = fs::read_to_string(&page).unwrap_or_default();
    if made == saved {
        return;
    }
    let (n, (want, have)) = made
        .lines()
        .chain(std::iter::repeat("(end of page)"))
        .zip(saved.lines().chain(std::iter::repeat("(end of page)")))
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .unwrap();
    panic!(
        "Documentation/commands.md is not what the current tool prints: line {}\n  \
         is:        {have}\n  the tool: {want}\n\
         Regenerate it: make docs-commands (or: bash scripts/docs-commands.sh \
         path/to/leaklab > Documentation/commands.md)",
        n + 1
    );
}
