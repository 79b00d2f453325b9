// SPDX-License-Identifier: GPL-2.0
//! What a module needs before it is swept: skipped when built in or
//! loaded already, else the modules it needs (`modules.dep`) loaded in
//! `modprobe`'s order, and unloaded after it, the last first.

use std::path::Path;

use crate::{
    kernel::{
        kmod::LoadedModule,
        modtree::{module_name, ModTree, TreeModule},
        module::Ko,
    },
    report::sweep::{Row, Status},
};

/// A module ready to be swept, its needs loaded; or its row already.
pub(super) enum Ready {
    /// What it needs, loaded (unloaded on drop, the last first).
    Needs(Vec<LoadedModule>),
    /// Skipped, or a need did not load.
    Done(Row),
}

/// Skips module `m` when it is built in or loaded already, else loads
/// what it needs (`modules.dep`, in `modprobe`'s order).
pub(super) fn ready(tree: &ModTree, m: &TreeModule) -> Ready {
    let skip = |why: &str| {
        Ready::Done(Row::without_check(
            &m.name,
            &m.path,
            Status::Skipped,
            why.into(),
        ))
    };
    if tree.is_builtin(&m.name) {
        return skip("built into the kernel");
    }
    if is_loaded(&m.name) {
        return skip("loaded already (in use, or loaded by the system): unload it to sweep it");
    }
    let mut needed: Vec<LoadedModule> = Vec::new();
    for dep in &m.deps {
        if is_loaded(&module_name(dep)) || tree.is_builtin(&module_name(dep)) {
            continue;
        }
        match Ko::open(&tree.dir.join(dep)).and_then(|ko| LoadedModule::load(&ko)) {
            Ok(l) => needed.push(l),
            Err(e) => {
                let why = format!("needs {}, which did not load: {e:#}", module_name(dep));
                return Ready::Done(Row::without_check(
                    &m.name,
                    &m.path,
                    Status::DidNotLoad,
                    why,
                ));
            }
        }
    }
    Ready::Needs(needed)
}

/// Unloads what a module needed, the last first; a note of what would not
/// go, added to `row`.
pub(super) fn release(mut needed: Vec<LoadedModule>, row: &mut Row) {
    let mut errors = Vec::new();
    while let Some(mut l) = needed.pop() {
        if let Err(e) = l.unload() {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        let note = format!("what it needs did not unload: {}", errors.join("; "));
        row.detail = Some(
            row.detail
                .take()
                .map_or(note.clone(), |d| format!("{d}; {note}")),
        );
    }
}

/// Whether module `name` is loaded (a module being loaded or unloaded
/// counts).
fn is_loaded(name: &str) -> bool {
    Path::new("/sys/module")
        .join(name)
        .join("initstate")
        .exists()
}
