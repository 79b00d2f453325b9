//! Options more than one command takes, each defined once and flattened
//! into the commands that take it.

use clap::{Args, ValueEnum};

use crate::{
    commands::{cycle::Plan, detectors::DetectorArgs, ModuleArg},
    ko::{Variant, MAX_RUNS},
    output::Format,
};

/// `--format human|json`.
#[derive(Debug, Clone, Copy, Args)]
pub struct FormatArg {
    /// Output format: human or json.
    #[arg(long, default_value = "human", value_parser = plain_format)]
    pub format: Format,
}

fn plain_format(s: &str) -> Result<Format, String> {
    match Format::from_str(s, false)? {
        Format::Ktap => Err("this command has no KTAP output: use human or json".into()),
        f => Ok(f),
    }
}

/// `--format human|json|ktap`, for the commands that give test results.
#[derive(Debug, Clone, Copy, Args)]
pub struct ResultFormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// `-n`: runs of each pattern and variant, bounded by what the module
/// accepts in one write.
#[derive(Debug, Clone, Copy, Args)]
pub struct RunsArg {
    /// Runs per pattern and variant (at most the module's limit, 10000).
    #[arg(short, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RUNS)))]
    pub n: u32,
}

/// What `cycle` and `matrix` run: the module, its patterns, the runs and
/// the cycles.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    #[command(flatten)]
    module: ModuleArg,
    /// Pattern to run (repeatable; default: all).
    #[arg(long = "pattern")]
    patterns: Vec<String>,
    #[command(flatten)]
    runs: RunsArg,
    /// Load/run/unload cycles.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    cycles: u32,
    #[command(flatten)]
    detectors: DetectorArgs,
}

impl SelectArgs {
    /// The plan of these, for `variants`.
    pub fn plan(self, variants: Vec<Variant>) -> Plan {
        Plan {
            detectors: self.detectors,
            ..Plan::new(
                self.module.path(),
                self.patterns,
                variants,
                self.runs.n,
                self.cycles,
            )
        }
    }
}
