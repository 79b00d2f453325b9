// SPDX-License-Identifier: GPL-2.0
//! What a machine that sweeps a batch of a tree's modules holds and runs,
//! a QEMU guest of the sweep's or a LAVA job's: leaklab as `/init`, the
//! batch's modules and what they need under [`GUEST_TREE`] with the
//! tree's lists, the batch's names at [`GUEST_LIST`], and the command
//! `leaklab sweep --stream` of that list. Each row is kept where the
//! sweep keeps its rows ([`save`], [`read_row`]) once the machine said it.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::Result;

use super::plan::Plan;
use crate::{
    kernel::modtree::{ModTree, TreeModule},
    output::write_atomically,
    report::sweep::{Line, Row},
    vm::initramfs::{Contents, UserFile},
};

/// Where the tree goes in the machine.
pub const GUEST_TREE: &str = "/root/modules";
/// The machine's list of its batch's modules.
pub const GUEST_LIST: &str = "/root/sweep-list";

/// The machine's files: `init` (leaklab), the batch's modules and what
/// they need under [`GUEST_TREE`] with the tree's lists, and the batch's
/// `list` at [`GUEST_LIST`].
pub fn contents(tree: &ModTree, init: &Path, batch: &[TreeModule], list: &Path) -> Contents {
    let mut paths = BTreeSet::new();
    for m in batch {
        paths.insert(m.path.as_str());
        paths.extend(m.deps.iter().map(String::as_str));
    }
    let mut files: Vec<UserFile> = paths
        .into_iter()
        .map(|p| UserFile {
            src: tree.dir.join(p),
            dest: format!("{GUEST_TREE}/{p}"),
        })
        .collect();
    for f in [
        "modules.dep",
        "modules.order",
        "modules.builtin",
        "modules.softdep",
        "modules.alias",
    ] {
        let src = tree.dir.join(f);
        if src.is_file() {
            files.push(UserFile {
                src,
                dest: format!("{GUEST_TREE}/{f}"),
            });
        }
    }
    files.push(UserFile {
        src: list.to_path_buf(),
        dest: GUEST_LIST.into(),
    });
    Contents {
        init: init.to_path_buf(),
        modules: Vec::new(),
        busybox: None,
        files,
    }
}

/// The machine's command: `leaklab sweep --stream` of its list, with the
/// plan's cycles, protocol, parameters and detectors; its document in
/// `format` (`json` for the sweep's guests, `ktap` for LAVA's monitor)
/// after the stream's lines.
pub fn command(plan: &Plan, format: &str) -> Vec<String> {
    let mut c: Vec<String> = [
        "sweep",
        "--modules-dir",
        GUEST_TREE,
        "--list",
        GUEST_LIST,
        "--stream",
        "--format",
        format,
    ]
    .map(String::from)
    .to_vec();
    c.extend(["--cycles".into(), plan.cycles.to_string()]);
    c.extend(["--protocol".into(), plan.protocol.name().into()]);
    for (module, param) in &plan.params {
        c.extend(["--param".into(), format!("{module}:{param}")]);
    }
    for d in &plan.detectors.detectors {
        c.extend(["--detector".into(), d.name().into()]);
    }
    if let Some(kb) = plan.detectors.trace_buffer_kb {
        c.extend(["--trace-buffer-kb".into(), kb.to_string()]);
    }
    c
}

/// A line of the stream, from the text after its `@1 ` tag.
pub fn stream_line(text: &str) -> Option<Line> {
    serde_json::from_str(text).ok()
}

/// Where module `module`'s row is kept in `dir`.
pub fn row_path(dir: &Path, module: &str) -> PathBuf {
    dir.join(format!("{module}.json"))
}

/// Keeps `row` in `dir`.
pub fn save(dir: &Path, row: &Row) -> Result<()> {
    write_atomically(
        &row_path(dir, &row.module),
        &serde_json::to_string_pretty(row)?,
    )
}

/// Module `module`'s row kept in `dir`, if there is one, its leaks sorted
/// by the kernel's own state known now ([`Row::with_known`]).
pub fn read_row(dir: &Path, module: &str) -> Option<Row> {
    let text = fs::read_to_string(row_path(dir, module)).ok()?;
    serde_json::from_str::<Row>(&text).ok().map(Row::with_known)
}
