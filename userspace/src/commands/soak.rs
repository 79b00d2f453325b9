// SPDX-License-Identifier: GPL-2.0
//! `leaklab soak`: many load/run/unload cycles of leaklab.ko in one
//! kmemleak window (a [`Run`]: the loads at one place share one copy of
//! the module's symbols), with the kernel's memory sampled as they go.
//!
//! With the fixed variants only, nothing may leak: kmemleak stays empty and
//! MemAvailable and Slab only wander. With one leaky sample a cycle, the
//! leak grows linearly: the fitted slope, in bytes a cycle, is set against
//! what the module says each run leaks (the resource-exhaustion curve).

use std::{path::PathBuf, time::Instant};

use crate::{
    analysis::trend::slope,
    kernel::{
        interrupt,
        module::Ko,
        procfs::{read_slabinfo, MemInfo},
    },
    kmemleak::{window::Window, Kmemleak},
    ko::{Control, Variant},
    output::schema::Schema,
    pipeline::run::Run,
    report::soak::{bounds, Sample, SoakRun},
};
use anyhow::Result;

/// What to soak.
#[derive(Debug, Clone)]
pub struct Plan {
    /// leaklab.ko.
    pub module: PathBuf,
    /// Load/run/unload cycles.
    pub cycles: u32,
    /// Also run this pattern's leaky variant a cycle, `leaky_runs` times.
    pub leaky: Option<String>,
    /// Runs of the leaky variant a cycle.
    pub leaky_runs: u32,
    /// Sample memory every this many cycles.
    pub every: u32,
}

/// One cycle: loads `ko`, runs every pattern's fixed variant once and
/// `leaky`'s leaky one `runs` times, and unloads it; the bytes and objects
/// the leaky runs leaked, as the module states them (`None` without one).
fn one_cycle(run: &mut Run, ko: &Ko, leaky: Option<&str>, runs: u32) -> Result<Option<(u64, u64)>> {
    let mut module = run.load(ko)?;
    let mut leaked = None;
    let ran = (|| -> Result<()> {
        let ctl = Control::open()?;
        for p in ctl.patterns()? {
            ctl.trigger(&p.name, Variant::Fixed, 1)?;
            if leaky == Some(p.name.as_str()) {
                anyhow::ensure!(
                    !p.grows,
                    "{} grows only while the module is loaded and is freed at unload: a soak across loads sees nothing of it; pick a pattern that leaks (leaklab patterns)",
                    p.name
                );
                anyhow::ensure!(
                    p.kmemleak,
                    "{} leaks what kmemleak cannot see, and soak counts kmemleak's reports: pick a pattern kmemleak sees (leaklab patterns)",
                    p.name
                );
                ctl.trigger(&p.name, Variant::Leaky, runs)?;
                let runs = u64::from(runs);
                leaked = Some((p.bytes.saturating_mul(runs), p.objects.saturating_mul(runs)));
            }
        }
        Ok(())
    })();
    let unloaded = run.unload(&mut module);
    ran?;
    unloaded?;
    Ok(leaked)
}

/// kmemleak's cache of per-allocation records.
const TRACKER: &str = "kmemleak_object";

/// Runs the soak.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<SoakRun> {
    let ko = Ko::open(&plan.module)?;
    let kmemleak = Kmemleak::open()?;
    let mut run = Run::new(Some(Window::open(&kmemleak)?), None)?;
    let start = Instant::now();
    let sample = |cycle: u32| -> Result<Sample> {
        let m = MemInfo::read()?;
        Ok(Sample {
            cycle,
            seconds: start.elapsed().as_secs_f64(),
            mem_available_kib: m.mem_available,
            slab_kib: m.slab,
            tracked_objects: read_slabinfo()
                .unwrap_or_default()
                .get(TRACKER)
                .map_or(0, |c| c.active),
        })
    };
    // A first cycle, unsampled, warms what any load fills once (the
    // caches of module loading, debugfs and kmemleak itself): in a short
    // soak its step would read as a slope.
    progress("soak: warming up");
    one_cycle(&mut run, &ko, None, 0)?;
    let mut samples = vec![sample(0)?];
    let (mut leak_per_cycle, mut leaked) = (0, 0);
    for cycle in 1..=plan.cycles {
        interrupt::check()?;
        if let Some((bytes, objects)) =
            one_cycle(&mut run, &ko, plan.leaky.as_deref(), plan.leaky_runs)?
        {
            leak_per_cycle = bytes;
            leaked += objects;
        }
        if cycle % plan.every.max(1) == 0 || cycle == plan.cycles {
            samples.push(sample(cycle)?);
            progress(&format!("soak: {cycle}/{} cycles", plan.cycles));
        }
    }
    if let Some(p) = &plan.leaky {
        anyhow::ensure!(
            leak_per_cycle > 0,
            "no pattern named {p:?}: 'leaklab patterns' lists them"
        );
    }
    let settled = run.harvest(Instant::now(), progress, &|_, _| true)?.settled;
    let xs: Vec<f64> = samples.iter().map(|s| s.cycle as f64).collect();
    let kib = |f: fn(&Sample) -> i64| {
        samples
            .iter()
            .map(|s| f(s) as f64 * 1024.0)
            .collect::<Vec<_>>()
    };
    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    let slab_slope = slope(&xs, &kib(|s| s.slab_kib));
    let tracked: Vec<f64> = samples.iter().map(|s| s.tracked_objects as f64).collect();
    let tracked_slope = slope(&xs, &tracked);
    let tracker_object_size = read_slabinfo()
        .unwrap_or_default()
        .get(TRACKER)
        .map_or(0, |c| c.object_size);
    let mut run = SoakRun {
        schema: Schema::Soak.name().into(),
        cycles: plan.cycles,
        leaky: plan.leaky.clone(),
        leaky_runs: plan.leaky_runs,
        leak_per_cycle,
        reported: settled.reports.len() as u64,
        leaked,
        slab_slope,
        tracker_object_size,
        tracked_slope,
        leak_slope: slab_slope - tracked_slope * tracker_object_size as f64,
        available_slope: slope(&xs, &kib(|s| s.mem_available_kib)),
        slab_drift_kib: last.slab_kib - first.slab_kib,
        available_drift_kib: last.mem_available_kib - first.mem_available_kib,
        seconds: start.elapsed().as_secs_f64(),
        samples,
        stable: settled.stable,
        problems: Vec::new(),
    };
    run.problems = bounds(&run);
    Ok(run)
}
