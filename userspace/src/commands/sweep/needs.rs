// SPDX-License-Identifier: GPL-2.0
//! What a module needs before it is swept: skipped when built in or
//! loaded already, else the modules it needs (`modules.dep`, and the soft
//! dependencies of `modules.softdep`, which may fail to load) loaded in
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
    /// What it needs, loaded.
    Needs(Needs),
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
    let mut needed = Needs::default();
    for dep in &m.deps {
        if is_loaded(&module_name(dep)) || tree.is_builtin(&module_name(dep)) {
            continue;
        }
        match Ko::open(&tree.dir.join(dep)).and_then(|ko| LoadedModule::load(&ko)) {
            Ok(l) => needed.loaded.push(l),
            // As modprobe goes on without a soft dependency.
            Err(e) if m.soft.contains(dep) => needed.notes.push(format!(
                "its soft dependency {} did not load: {e:#}",
                module_name(dep)
            )),
            Err(e) => {
                let why = format!("needs {}, which did not load: {e:#}", module_name(dep));
                let mut row = Row::without_check(&m.name, &m.path, Status::DidNotLoad, why);
                release(needed, &mut row);
                return Ready::Done(row);
            }
        }
    }
    Ready::Needs(needed)
}

/// What a module needed, loaded, and what was said on the way.
#[derive(Default)]
pub(super) struct Needs {
    loaded: Vec<LoadedModule>,
    /// The soft dependencies that did not load.
    notes: Vec<String>,
}

/// Unloads what a module needed, the last first; the notes of the soft
/// dependencies that did not load, and of what would not go, added to
/// `row`.
pub(super) fn release(needed: Needs, row: &mut Row) {
    let Needs {
        mut loaded,
        mut notes,
    } = needed;
    let mut errors = Vec::new();
    while let Some(mut l) = loaded.pop() {
        if let Err(e) = l.unload() {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        notes.push(format!(
            "what it needs did not unload: {}",
            errors.join("; ")
        ));
    }
    for note in notes {
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
