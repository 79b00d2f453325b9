// SPDX-License-Identifier: GPL-2.0
//! `leaklab patterns` and `leaklab trigger`: the loaded module's catalogue,
//! and running a sample by hand.

use anyhow::Result;

use crate::{
    ko::{Control, Variant},
    report::catalogue::{Patterns, Triggered},
    trace::tracer::Tracer,
};

/// The loaded module's catalogue.
pub fn patterns() -> Result<Patterns> {
    Ok(Patterns(Control::open()?.patterns()?))
}

/// Runs `variant` of `pattern` `runs` times in the loaded module; with
/// `trace`, under the allocation trace, as a leak check would run it (what
/// it costs: `make bench`).
pub fn trigger(pattern: &str, variant: Variant, runs: u32, trace: bool) -> Result<Triggered> {
    let ctl = Control::open()?;
    let tracer = trace.then(|| Tracer::start(None)).transpose()?;
    ctl.trigger(pattern, variant, runs)?;
    let traced = match tracer {
        Some(t) => {
            let t = t.finish()?;
            Some((t.events, t.lost))
        }
        None => None,
    };
    let stats = ctl
        .stats()?
        .into_iter()
        .find(|s| s.pattern == pattern && s.variant == variant);
    Ok(Triggered {
        stats,
        runs,
        traced,
    })
}
