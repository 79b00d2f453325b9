// SPDX-License-Identifier: GPL-2.0
//! The lab's run, behind `leaklab cycle`, `leaklab matrix` and doctor's
//! canary: load leaklab.ko, drive its samples, unload it, harvest what the
//! detectors saw, and judge every pattern and variant against what the
//! module said it would leak.
//!
//! All triggers of a cycle run in one kmemleak window: each report is tied to
//! its pattern and variant by its symbolized frames (the sample's module path
//! and the `_leaky`/`_fixed` function that allocated), not by timing. A cycle
//! is a plan run through named steps ([`steps`]): load, drive, harvest,
//! judge; the rules of the verdict and its rendering are the document's
//! ([`crate::report::cycle`]).

use anyhow::Result;

use super::detectors::Detectors;
use crate::{
    kernel::{kmod::LoadedModule, module::Ko},
    ko::Control,
};

mod plan;
mod steps;

use crate::report::cycle::CycleRun;
pub use plan::{Plan, Reference};

/// The plan's object files, each read once for the whole run.
struct Modules {
    module: Ko,
    references: Vec<(Ko, Reference)>,
}

impl Modules {
    fn open(plan: &Plan) -> Result<Self> {
        Ok(Self {
            module: Ko::open(&plan.module)?,
            references: plan
                .references
                .iter()
                .map(|r| Ok((Ko::open(&r.module)?, r.clone())))
                .collect::<Result<_>>()?,
        })
    }
}

/// Runs the plan.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<CycleRun> {
    let detectors = Detectors::resolve(&plan.detectors)?;
    let modules = Modules::open(plan)?;
    let mut cycles = Vec::new();
    let mut catalogue = Vec::new();
    for cycle in 1..=plan.cycles {
        progress(&format!("cycle {cycle}/{}", plan.cycles));
        let (record, patterns) = steps::one_cycle(
            plan,
            &modules.module,
            &modules.references,
            &detectors,
            cycle,
            progress,
        )?;
        catalogue = patterns;
        cycles.push(record);
    }
    Ok(CycleRun::new(catalogue, cycles, detectors.chosen()))
}

/// Runs the plan one pattern at a time, each with a kmemleak window of its
/// own (the reference modules share the last one, which flatters this
/// baseline): the per-sample protocol of public load/unload tests, kept as a
/// baseline for the one-window run.
/// Returns one record per window, numbered in order.
pub fn run_sequential(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<CycleRun> {
    let detectors = Detectors::resolve(&plan.detectors)?;
    let modules = Modules::open(plan)?;
    let names: Vec<String> = if plan.patterns.is_empty() {
        // The catalogue, from the module itself.
        let mut loaded = LoadedModule::load(&modules.module)?;
        let names = Control::open()?
            .patterns()?
            .into_iter()
            .map(|p| p.name)
            .collect();
        loaded.unload()?;
        names
    } else {
        plan.patterns.clone()
    };
    let mut cycles = Vec::new();
    let mut catalogue = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let one = Plan {
            patterns: vec![name.clone()],
            cycles: 1,
            ..plan.clone()
        };
        // The reference modules share the last window.
        let references = if i + 1 == names.len() {
            &modules.references[..]
        } else {
            &[]
        };
        progress(&format!("{name}: window {}/{}", i + 1, names.len()));
        let (mut record, patterns) =
            steps::one_cycle(&one, &modules.module, references, &detectors, 1, progress)?;
        record.cycle = i as u32 + 1;
        catalogue = patterns;
        cycles.push(record);
    }
    Ok(CycleRun::new(catalogue, cycles, detectors.chosen()))
}
