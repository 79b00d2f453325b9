// SPDX-License-Identifier: GPL-2.0
//! What the doctor is asked to do.

use std::path::PathBuf;

/// What the doctor is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// leaklab.ko, for the canary and the vermagic check.
    pub module: PathBuf,
    /// The pattern the canary runs.
    pub canary: String,
}
