//! `leaklab cycle` and `leaklab matrix`: load leaklab.ko, drive its samples,
//! unload it, harvest kmemleak, and judge every pattern and variant against
//! what the module said it would leak.
//!
//! All triggers of a cycle run in one kmemleak window: each report is tied to
//! its pattern and variant by its symbolized frames (the sample's module path
//! and the `_leaky`/`_fixed` function that allocated), not by timing. A cycle
//! is a plan run through named steps ([`steps`]): load, drive, harvest,
//! judge; the rules of the verdict are in [`verdict`], its rendering in
//! `render`.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::detectors::{DetectorArgs, Detectors};
use crate::{
    kernel::{kmod::LoadedModule, module::Ko, procfs::possible_cpus},
    ko::{Control, Variant},
};

mod render;
pub mod rules;
mod steps;
pub mod verdict;

pub use verdict::CycleRun;

/// What to run in each cycle.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The module file.
    pub module: PathBuf,
    /// Patterns to drive (empty: all).
    pub patterns: Vec<String>,
    /// Variants to drive.
    pub variants: Vec<Variant>,
    /// Runs per pattern and variant.
    pub runs: u32,
    /// Load/drive/unload cycles.
    pub cycles: u32,
    /// Other modules loaded and unloaded in the same window, each with the
    /// number of objects it is known to leak: a calibration (the kernel's
    /// kmemleak-test) and a negative control (rust_minimal, none).
    pub references: Vec<Reference>,
    /// The detectors that judge.
    pub detectors: DetectorArgs,
}

/// A module with a known leak, run beside the samples to check the harvest.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The module file.
    pub module: PathBuf,
    /// Objects it leaks from one load and unload.
    pub leaks: u64,
    /// How many of them are per-CPU objects (`__alloc_percpu`), which
    /// kmemleak may miss on x86_64 ([`rules::reference`]).
    pub percpu: u64,
}

impl Plan {
    /// A plan with no reference modules.
    pub fn new(
        module: PathBuf,
        patterns: Vec<String>,
        variants: Vec<Variant>,
        runs: u32,
        cycles: u32,
    ) -> Self {
        Self {
            module,
            patterns,
            variants,
            runs,
            cycles,
            references: Vec::new(),
            detectors: DetectorArgs::default(),
        }
    }
}

impl Reference {
    /// The calibration and the negative control when the directory of
    /// `module` has them:
    /// kmemleak-test.ko (8 kmalloc, 5 vmalloc, 10 list elements, a per-CPU
    /// allocation, and a kmalloc for each possible CPU) and rust_minimal.ko
    /// (nothing).
    pub fn defaults_beside(module: &Path) -> Vec<Reference> {
        let dir = module.parent().unwrap_or(Path::new("."));
        let mut v = Vec::new();
        let test = dir.join("kmemleak-test.ko");
        if test.exists() {
            v.push(Reference {
                module: test,
                leaks: 24 + possible_cpus(),
                percpu: 1,
            });
        }
        let minimal = dir.join("rust_minimal.ko");
        if minimal.exists() {
            v.push(Reference {
                module: minimal,
                leaks: 0,
                percpu: 0,
            });
        }
        v
    }

    /// Parses `KO=N` (`--reference`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ko, n) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("{s:?}: expected KO=N, e.g. kmemleak-test.ko=25"))?;
        Ok(Self {
            module: PathBuf::from(ko),
            leaks: n
                .parse()
                .map_err(|_| format!("{n:?} is not a number of objects"))?,
            percpu: 0,
        })
    }
}

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
