// SPDX-License-Identifier: GPL-2.0
//! `leaklab sweep`: every module of a kernel's tree (or those a pattern or
//! a list names), each loaded with what it needs (`modules.dep`, as
//! `modprobe` does), checked in cycles by every detector the kernel has
//! ([`crate::pipeline::check`]), and unloaded again; one row per module.
//!
//! On the running kernel ([`here`]: a board, a test box, a guest), or over
//! guests of a kernel image booted in QEMU ([`guests`]), several at once,
//! each given a batch of modules; a guest that crashes or hangs is
//! replaced and the sweep goes on; rows are kept as they come, so a sweep
//! stopped halfway goes on where it stopped. Or over a LAVA lab ([`lava`]):
//! one job per shard of the modules, their logs merged into one sweep.

use anyhow::Result;

use crate::report::sweep::Sweep;

pub mod guests;
pub mod here;
mod image;
pub mod lava;
mod lkft;
mod needs;
mod plan;

pub use plan::{Guests, Plan, Protocol, Shards};

/// Runs the sweep the plan asks for.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Sweep> {
    match &plan.guests {
        Some(g) => guests::run(plan, g, progress),
        None => here::run(plan, progress),
    }
}
