// SPDX-License-Identifier: GPL-2.0
//! The check of any module (`leaklab check`, and each module of `leaklab
//! sweep`): a driver author's own module, C or Rust, loaded and unloaded in
//! cycles with its parameters, exercised by their scripts, and judged by
//! kmemleak with the scan protocol and by the allocation trace.
//!
//! The module gets none of the lab's help (no laundering, no scrubbing):
//! task stacks are scanned, as kmemleak does by default, so an object a
//! sleeping thread keeps in a local is not called a leak. Its sections are
//! recorded each cycle while it is loaded (and while its init runs, for an
//! init that fails), so every frame of it reads `function+off [module] at
//! file.c:LINE` after it is gone. Each leak is tied to the cycle that
//! allocated it by the allocating task's pid: every cycle's tasks (the
//! loading thread, the exercise scripts, the unloading thread) are created
//! after the cycle began, so their pids lie between the cycle's first and
//! the next one's.
//!
//! Every detector the kernel has judges (`--detector`): kmemleak's reports,
//! and the allocation trace's allocations still outstanding once the module
//! is gone (their stack passes through the module), each listed apart.

use std::{collections::BTreeMap, path::Path};

use crate::{
    analysis::{
        attribute::{attribute, Example},
        group::fingerprint,
        symbolize::Symbolizer,
    },
    kernel::{kmod, kmsg::KmsgWatch, module::Ko, procfs::kernel_release, thread::in_fresh_thread},
    kmemleak::{report::Report, BLIND_SPOTS},
    output::schema::Schema,
    pipeline::{
        detectors::{Detector, Detectors},
        run::{Options, Run, RunHarvest},
    },
    report::check::{Check, Leak, TraceCheck},
    trace::allocinfo::{self, AllocInfo},
};
use anyhow::{bail, Result};

mod cycles;
mod plan;

use cycles::{by_cycle, run_cycles, Cycles};
pub use plan::{parse_param, Plan, UNLOAD_PATIENCE};

/// Runs the plan: the cycles in one kmemleak window, then the harvest.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Check> {
    let ko = Ko::open(&plan.module)?;
    kmod::check(&ko)?;
    let name = ko.name().to_string();
    if Path::new("/sys/module")
        .join(&name)
        .join("initstate")
        .exists()
    {
        bail!("{name} is loaded already: unload it first (rmmod {name}), so that leaklab sees every load");
    }
    for script in &plan.exercise {
        anyhow::ensure!(
            script.is_file(),
            "exercise script {} does not exist: give the path of a shell script",
            script.display()
        );
    }
    let detectors = Detectors::resolve(&plan.detectors)?;
    // Where the module's init was loaded, also when it fails: without the
    // probe, sysfs is read while the load runs, which a quick init beats.
    let options = Options {
        probe: Some(&ko),
        scan_stacks: true,
    };
    let (mut run, profiled) = Run::open(&detectors, options, Profiled::start)?;
    let mut cycles = run_cycles(plan, &ko, &mut run, progress)?;
    run.settle_kmemleak(cycles.youngest, progress, &|_, _| true)?;
    if let Some(mut m) = cycles.still_loaded.take() {
        if plan.keep_loaded {
            let last = cycles.records.last_mut();
            let unloaded = in_fresh_thread(|| m.module.unload_within(UNLOAD_PATIENCE));
            if let (Some(c), Err(e)) = (last, &unloaded) {
                c.unloaded = Some(false);
                c.unload_error = Some(format!("{e:#}"));
            }
        }
    }
    let h = run.harvest(cycles.youngest, progress, &|_, _| true)?;
    let mut check = judge(plan, &ko, cycles, &h, detectors.chosen());
    check.allocinfo = profiled.map(|p| p.view(&name)).transpose()?;
    Ok(check)
}

/// The kernel's allocation profiling, where it is on: its call sites
/// before the first load, and the kernel log from then on (the warnings
/// at each unload).
struct Profiled {
    before: Vec<allocinfo::Site>,
    kmsg: KmsgWatch,
}

impl Profiled {
    /// Reads the call sites now; `None` where the kernel does not profile.
    fn start() -> Result<Option<Self>> {
        Ok(match allocinfo::read()? {
            Some(before) => Some(Self {
                before,
                kmsg: KmsgWatch::start()?,
            }),
            None => None,
        })
    }

    /// What it saw of module `name` since [`Profiled::start`].
    fn view(mut self, name: &str) -> Result<AllocInfo> {
        let after = allocinfo::read()?.unwrap_or_default();
        Ok(allocinfo::view(
            name,
            &self.before,
            &after,
            &self.kmsg.drain(),
        ))
    }
}

/// Ties each report of each detector to the module (or not) and to its
/// cycle, and groups them by backtrace.
fn judge(plan: &Plan, ko: &Ko, mut c: Cycles, h: &RunHarvest, detectors: Vec<Detector>) -> Check {
    // The per-cycle counts are kmemleak's, or the trace's without it.
    let by_kmemleak = detectors.contains(&Detector::Kmemleak);
    let settled = &h.settled;
    let reports = settled.reports.iter().map(|r| (r, None));
    let (leaks, outside) = group(reports, ko, &mut c, &h.sym, by_kmemleak);
    let trace = h.traced.as_ref().map(|t| {
        // Every traced allocation passes through the module: none is outside.
        let reports = by_cycle(t).into_iter();
        let (mut leaks, outside) = group(reports, ko, &mut c, &h.sym, !by_kmemleak);
        leaks.extend(outside);
        TraceCheck {
            leaks,
            events: t.events,
            lost: t.lost,
            undecided: std::mem::take(&mut c.undecided),
            blind_spots: crate::trace::BLIND_SPOTS.into(),
        }
    });
    Check {
        schema: Schema::Check.name().into(),
        kernel: kernel_release(),
        module: ko.name().to_string(),
        path: plan.module.clone(),
        params: plan.params.clone(),
        exercise: plan.exercise.clone(),
        kept_loaded: plan.keep_loaded,
        cycles: c.records,
        leaks,
        outside,
        scans: settled.scans,
        stable: settled.stable,
        stacks_scanned: by_kmemleak,
        blind_spots: BLIND_SPOTS.into(),
        detectors,
        trace,
        allocinfo: None,
    }
}

/// Groups `reports` by backtrace into the module's leaks and those outside
/// its code paths, each tied to the cycle that allocated it (the one given
/// with it, or else the one whose tasks allocated it); with `count`,
/// counts the module's in their cycle's record.
fn group<'r>(
    reports: impl Iterator<Item = (&'r Report, Option<u32>)>,
    ko: &Ko,
    c: &mut Cycles,
    sym: &Symbolizer,
    count: bool,
) -> (Vec<Leak>, Vec<Leak>) {
    let mut leaks: Vec<Leak> = Vec::new();
    let mut outside: Vec<Leak> = Vec::new();
    for (r, given) in reports {
        let cycle = given.or_else(|| r.pid.and_then(|p| c.marks.step_of(p)).map(|i| i as u32 + 1));
        // Resolve with the layout of the cycle that allocated it.
        let mut seen = r.clone();
        if let Some(loader) = cycle.and_then(|n| c.resolver.get(n as usize - 1).copied().flatten())
        {
            seen.pid = Some(loader);
        }
        let failed_init = r.pid.is_some_and(|p| c.failed_inits.contains(&p))
            && r.frames
                .iter()
                .any(|f| f.symbol.as_deref() == Some("do_one_initcall"));
        let ours = failed_init || sym.owner_of(&seen) == Some(ko.name());
        let example = Example::of(&seen, sym);
        let a = attribute(&seen, sym);
        let fp = fingerprint(&example.symbolized);
        let list = if ours { &mut leaks } else { &mut outside };
        let i = match list.iter().position(|l| l.fingerprint == fp) {
            Some(i) => i,
            None => {
                list.push(Leak {
                    title: a.title,
                    culprit: a.culprit,
                    culprit_line: a.culprit_line,
                    objects: 0,
                    bytes: 0,
                    per_cycle: BTreeMap::new(),
                    first_cycle: None,
                    unknown_cycle: 0,
                    comms: Vec::new(),
                    frames: example.symbolized,
                    fingerprint: fp,
                });
                list.len() - 1
            }
        };
        let l = &mut list[i];
        l.objects += 1;
        l.bytes = l.bytes.saturating_add(r.size);
        match cycle {
            Some(n) => *l.per_cycle.entry(n).or_default() += 1,
            None => l.unknown_cycle += 1,
        }
        l.first_cycle = l.per_cycle.keys().next().copied();
        if let Some(comm) = &r.comm {
            if !l.comms.contains(comm) {
                l.comms.push(comm.clone());
            }
        }
        if let (true, true, Some(n)) = (count, ours, cycle) {
            if let Some(rec) = c.records.get_mut(n as usize - 1) {
                rec.leaked += 1;
            }
        }
    }
    for list in [&mut leaks, &mut outside] {
        list.sort_by(Leak::listed_order);
    }
    (leaks, outside)
}
