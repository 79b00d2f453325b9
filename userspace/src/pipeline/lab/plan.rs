// SPDX-License-Identifier: GPL-2.0
//! What a cycle or matrix run is asked to do: the module, its patterns
//! and variants, the runs and cycles, the reference modules beside it and
//! the detectors.

use std::path::{Path, PathBuf};

use crate::{kernel::procfs::possible_cpus, ko::Variant, pipeline::detectors::DetectorChoice};

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
    pub detectors: DetectorChoice,
}

/// A module with a known leak, run beside the samples to check the harvest.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The module file.
    pub module: PathBuf,
    /// Objects it leaks from one load and unload.
    pub leaks: u64,
    /// How many of them are per-CPU objects (`__alloc_percpu`), which
    /// kmemleak may miss on x86_64 ([`crate::report::cycle::rules::reference`]).
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
            detectors: DetectorChoice::default(),
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
