// SPDX-License-Identifier: GPL-2.0
//! `leaklab watch`: the long-running leak monitor. Each round scans with
//! kmemleak until two scans agree (its settings left as found), reports the
//! objects not reported before, samples the kernel's memory and reads the
//! kernel log; everything goes to an event log in DIR, the state that
//! makes a restart report nothing twice to `DIR/state.json`, and the
//! figures to a Prometheus textfile.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::kernel::interrupt::{self, Interrupted};

mod modules;
mod options;
mod round;
mod running;

pub use crate::report::watch::event::Event;
pub use crate::report::watch::run::WatchRun;
use crate::report::watch::run::{leak_list, Trends};
pub use options::{parse_interval, Options};
use running::Watch;

/// Runs the watch until its rounds are done or a signal stops it; prints a
/// line per event when `human`.
pub fn run(opts: &Options, human: bool) -> Result<WatchRun> {
    std::fs::create_dir_all(&opts.out).with_context(|| {
        format!(
            "cannot make {}: give --out a directory you can write",
            opts.out.display()
        )
    })?;
    let (mut w, boot, why) = Watch::open(opts, human)?;
    let started = Instant::now();
    w.event(Event::Start {
        version: env!("CARGO_PKG_VERSION").into(),
        boot_id: boot,
        interval: opts.interval.as_secs_f64(),
        kmemleak: why,
        rounds_before: w.state.rounds,
    });
    let signalled = |e: &anyhow::Error| {
        e.downcast_ref::<Interrupted>()
            .map(|i| i.0.as_str().to_string())
    };
    let stopped_by = loop {
        if let Some(sig) = interrupt::requested() {
            break sig.as_str().to_string();
        }
        if let Err(e) = w.round() {
            // A signal mid-round: the window has restored kmemleak.
            let Some(sig) = signalled(&e) else {
                return Err(e);
            };
            break sig;
        }
        if opts.rounds.is_some_and(|n| w.run.rounds >= n) {
            break "rounds".to_string();
        }
        if let Err(e) = interrupt::sleep(opts.interval) {
            break signalled(&e).unwrap_or_else(|| format!("{e:#}"));
        }
    };
    w.event(Event::Stop {
        rounds: w.run.rounds,
        reason: stopped_by.clone(),
    });
    w.persist();
    let mut run = w.run.clone();
    run.stopped_by = stopped_by;
    run.seconds = started.elapsed().as_secs_f64();
    run.rounds_total = w.state.rounds;
    run.trends = Trends {
        slab: w.fit_slab.line(),
        mem_available: w.fit_avail.line(),
        slab_recent: w.recent_slab.line(),
        mem_available_recent: w.recent_avail.line(),
    };
    run.leaks = leak_list(&w.state);
    if w.log.pending() > 0 {
        run.warnings.push(format!(
            "{} events could not be written to {}: {}",
            w.log.pending(),
            opts.out.display(),
            w.log.failing.as_deref().unwrap_or("?")
        ));
    }
    Ok(run)
}
