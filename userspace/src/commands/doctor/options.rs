//! What the doctor is asked to do.

use crate::commands::ModuleArg;

/// What the doctor is asked to do (`leaklab doctor`'s options).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    #[command(flatten)]
    pub(super) module: ModuleArg,
    /// The pattern the canary runs.
    #[arg(long, default_value = "error_path")]
    pub canary: String,
}
