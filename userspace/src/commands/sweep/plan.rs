// SPDX-License-Identifier: GPL-2.0
//! What `sweep` is asked to do: the tree, the modules, their parameters
//! and cycles, the detectors; and, over guests, how they run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{
    kernel::{
        modtree::{ModTree, TreeModule},
        procfs::kernel_release,
    },
    pipeline::detectors::DetectorChoice,
    vm::{lava::Device, Accel, Arch},
};

/// How each module is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// leaklab's: the module checked in cycles by every detector.
    Leaklab,
    /// LKFT's, to compare with ([`super::lkft`]).
    Lkft,
}

impl Protocol {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Leaklab => "leaklab",
            Self::Lkft => "lkft",
        }
    }
}

/// What `sweep` runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The module tree (`lib/modules/RELEASE`); on the running kernel,
    /// `/lib/modules/$(uname -r)` when not given.
    pub modules_dir: Option<PathBuf>,
    /// Shell patterns of module names or paths (none: every module).
    pub only: Vec<String>,
    /// A file of more patterns, one a line (`modules.order` is one).
    pub list: Option<PathBuf>,
    /// Parameters of modules: (module, `KEY=VALUE`).
    pub params: Vec<(String, String)>,
    /// Load/unload cycles per module.
    pub cycles: u32,
    /// The detectors.
    pub detectors: DetectorChoice,
    /// How each module is judged.
    pub protocol: Protocol,
    /// Print each row as one JSON line as soon as it is known.
    pub stream: bool,
    /// Over guests of a kernel image, instead of the running kernel.
    pub guests: Option<Guests>,
}

impl Plan {
    /// The patterns: `only`'s, then the list's lines (blank lines and
    /// `#` comments left out).
    pub fn patterns(&self) -> Result<Vec<String>> {
        let mut patterns = self.only.clone();
        if let Some(list) = &self.list {
            let text = std::fs::read_to_string(list)
                .with_context(|| format!("reading the module list {}", list.display()))?;
            patterns.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
            anyhow::ensure!(
                patterns.len() > self.only.len(),
                "the module list {} names no module: one name, path or pattern a line",
                list.display()
            );
        }
        Ok(patterns)
    }

    /// The parameters of module `name`.
    pub(super) fn params_of(&self, name: &str) -> Vec<String> {
        self.params
            .iter()
            .filter(|(m, _)| m == name)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The tree in `dir`, and its modules the plan selects (at least one).
    pub(super) fn selected(&self, dir: &Path) -> Result<(ModTree, Vec<TreeModule>)> {
        let tree = ModTree::read(dir)?;
        let patterns = self.patterns()?;
        let modules: Vec<TreeModule> = tree.select(&patterns)?.into_iter().cloned().collect();
        anyhow::ensure!(
            !modules.is_empty(),
            "no module of {} matches {}: give names or shell patterns of names or paths (snd_*, kernel/crypto/*)",
            dir.display(),
            patterns.join(" ")
        );
        Ok((tree, modules))
    }

    /// The module tree of the running kernel, or the one given.
    pub(super) fn tree_dir(&self) -> PathBuf {
        self.modules_dir
            .clone()
            .unwrap_or_else(|| Path::new("/lib/modules").join(kernel_release()))
    }
}

/// How the guests run.
#[derive(Debug, Clone)]
pub struct Guests {
    /// Their architecture.
    pub arch: Arch,
    /// The build directory: the guest's leaklab is `<dir>/<arch>/leaklab`.
    pub build_dir: PathBuf,
    /// The kernel image.
    pub kernel: PathBuf,
    /// Guests at once.
    pub jobs: u32,
    /// Modules a guest.
    pub batch: usize,
    /// Where the rows, the logs and the merged document go.
    pub out: PathBuf,
    /// Each guest's memory, MiB.
    pub memory: u32,
    /// The accelerator.
    pub accel: Accel,
    /// QEMU binary (default: on PATH).
    pub qemu: Option<PathBuf>,
    /// Check each leak again, its module alone in a fresh guest.
    pub confirm: bool,
    /// Seconds one module may take in a guest before it is called hung.
    pub module_timeout: u64,
    /// The modules' separate debug files, laid out as the tree
    /// (`usr/lib/debug/lib/modules/RELEASE` of Debian's `-dbg` package):
    /// a leak's frames in a module get their source lines from there.
    pub debug_dir: Option<PathBuf>,
}

/// A sweep over a LAVA lab: one job per shard of the modules.
#[derive(Debug, Clone)]
pub struct Shards {
    /// How many shards (fewer when there are fewer modules).
    pub count: u32,
    /// The device each job is for, and where the lab fetches its files.
    pub device: Device,
}
