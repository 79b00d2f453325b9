// SPDX-License-Identifier: GPL-2.0
//! `leaklab check`: a driver author's own module, C or Rust, loaded and
//! unloaded in cycles with its parameters, exercised by their scripts, and
//! judged by every detector the kernel has ([`crate::pipeline::check`],
//! which `sweep` runs for each module too).

pub use crate::pipeline::check::{parse_param, run, Plan};
