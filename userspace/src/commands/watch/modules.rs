// SPDX-License-Identifier: GPL-2.0
//! The frames of the modules given with `--ko`, named while each is
//! loaded and after it is gone.

use std::path::PathBuf;

use anyhow::Result;

use crate::{
    analysis::symbolize::Symbolizer,
    kernel::module::{Ko, ModuleLayout},
};

/// Modules' loads remembered for naming frames, per `--ko`.
const LOADS_KEPT: usize = 4;
/// Names frames of the modules given with `--ko`: each load's layout is
/// recorded while the module is loaded and kept for its frames after.
pub(super) struct Modules {
    kos: Vec<Ko>,
    loads: Vec<(usize, ModuleLayout)>,
    pub(super) sym: Symbolizer,
}

impl Modules {
    pub(super) fn open(paths: &[PathBuf]) -> Result<Self> {
        let kos = paths.iter().map(|p| Ko::open(p)).collect::<Result<_>>()?;
        Ok(Self {
            kos,
            loads: Vec::new(),
            sym: Symbolizer::default(),
        })
    }

    /// Records the layout of each module loaded now, when it is a new load.
    pub(super) fn refresh(&mut self) {
        let mut changed = false;
        for (i, ko) in self.kos.iter().enumerate() {
            let Ok(layout) = ModuleLayout::record(ko) else {
                continue;
            };
            let last = self.loads.iter().rev().find(|(k, _)| *k == i);
            if last.is_some_and(|(_, l)| l.sections == layout.sections) {
                continue;
            }
            self.loads.push((i, layout));
            if self.loads.iter().filter(|(k, _)| *k == i).count() > LOADS_KEPT {
                let oldest = self.loads.iter().position(|(k, _)| *k == i);
                if let Some(o) = oldest {
                    self.loads.remove(o);
                }
            }
            changed = true;
        }
        if changed {
            let mut sym = Symbolizer::default();
            for (i, l) in &self.loads {
                let _ = sym.add(l, &self.kos[*i]);
            }
            self.sym = sym;
        }
    }
}
