// SPDX-License-Identifier: GPL-2.0
//! `leaklab check`'s options, turned into its plan.

use std::path::PathBuf;

use clap::Args;

use super::args::DetectorArgs;
use crate::commands::check::{parse_param, Plan};

/// What `check` runs.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The module to check (a .ko built for the running kernel).
    module: PathBuf,
    /// Load/exercise/unload cycles.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    cycles: u32,
    /// A module parameter, KEY=VALUE, as insmod takes it (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    params: Vec<String>,
    /// A shell script run with `sh` each cycle while the module is loaded
    /// (repeatable; in order). It gets LEAKLAB_MODULE and LEAKLAB_CYCLE in
    /// its environment; its output goes to stderr.
    #[arg(long = "exercise", value_name = "SCRIPT")]
    exercise: Vec<PathBuf>,
    /// Keep the module loaded while kmemleak scans after the last cycle
    /// (as on a board that needs it), and unload it after.
    #[arg(long)]
    keep_loaded: bool,
    #[command(flatten)]
    detectors: DetectorArgs,
}

impl CheckArgs {
    /// The plan of these options.
    pub fn plan(self) -> Plan {
        Plan {
            detectors: self.detectors.choice(),
            module: self.module,
            cycles: self.cycles,
            params: self.params,
            exercise: self.exercise,
            keep_loaded: self.keep_loaded,
        }
    }
}
