// SPDX-License-Identifier: GPL-2.0
//! The steps every run that loads a module takes: open a kmemleak window,
//! watch the kernel log, load the module and record where it sits
//! ([`Session::open`]); unload it, let kmemleak settle and read what it
//! reported ([`Session::harvest`]). `cycle` and `matrix` drive the samples
//! between the two; `fuzz` and `faults` judge with [`Session::finish`]: only
//! the leaky samples may leak, and only a leaky sample may explain a kernel
//! warning.

use std::time::Instant;

use crate::{
    analysis::{
        attribute::{attribute, Example},
        findings::{self, explains, known_kernel_leak},
        symbolize::Symbolizer,
    },
    kernel::{
        kmsg::KmsgWatch,
        module::{Ko, ModuleLayout},
    },
    kmemleak::{
        report::Report,
        window::{Settled, Window},
        Kmemleak,
    },
    ko::Variant,
    report::judgement::{Judgement, KnownLeak},
    trace::tracer::Tracer,
};
use anyhow::Result;

use super::{
    detectors::Detectors,
    harvest::{modules_hold, Held, TraceHarvest},
    run::{Loaded, Run},
};

/// A module loaded inside the detectors' window, and what is needed to
/// judge after: a [`Run`] of one module. Dropping it (also on an error)
/// unloads the module and closes the window, restoring kmemleak's settings.
pub struct Session<'k> {
    run: Run<'k>,
    loaded: Loaded,
}

/// What the window gave once the module was gone.
pub struct Harvest {
    /// kmemleak's settled reports (none, and settled, without kmemleak).
    pub settled: Settled,
    /// What the allocation trace found, when it ran.
    pub traced: Option<TraceHarvest>,
    /// The kernel log since the session opened.
    pub log: Vec<String>,
    /// The kernel log from here on.
    pub kmsg: KmsgWatch,
    /// The symbols of every module of the session.
    pub sym: Symbolizer,
    /// Where the module was loaded.
    pub layout: ModuleLayout,
}

impl<'k> Session<'k> {
    /// Opens a window (earlier reports flushed) and loads `ko` in it.
    pub fn open(kmemleak: &'k Kmemleak, ko: &Ko) -> Result<Self> {
        let mut run = Run::new(Some(Window::open(kmemleak)?), None)?;
        let loaded = run.load(ko)?;
        Ok(Self { run, loaded })
    }

    /// Starts the detectors `detectors`, runs `before_load` ([`Run::open_with`])
    /// and loads `ko`.
    pub fn open_with<T>(
        detectors: &'k Detectors,
        ko: &Ko,
        before_load: impl FnOnce() -> Result<T>,
    ) -> Result<(Self, T)> {
        let (mut run, before) = Run::open_with(detectors, before_load)?;
        let loaded = run.load(ko)?;
        Ok((Self { run, loaded }, before))
    }

    /// The allocation trace, when it runs.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.run.tracer()
    }

    /// The frames of the module, and of any module added later.
    pub fn sym(&self) -> &Symbolizer {
        &self.run.sym
    }

    /// Loads `ko` beside the session's module and unloads it again, its
    /// frames added to the symbols: a reference module whose leaks land in
    /// the same window. Returns its name.
    pub fn load_and_unload(&mut self, ko: &Ko) -> Result<String> {
        let mut other = self.run.load(ko)?;
        self.run.unload(&mut other)?;
        Ok(ko.name().to_string())
    }

    /// Unloads the module (its exit-time leaks happen here), waits out
    /// kmemleak's minimum age and scans until the reports settle.
    pub fn harvest(self, progress: &mut dyn FnMut(&str)) -> Result<Harvest> {
        self.harvest_settling_on(progress, &|_, _| true)
    }

    /// As [`Session::harvest`], the scans having to agree only on the
    /// reports `judged` keeps ([`Window::close_settling_on`]).
    fn harvest_settling_on(
        self,
        progress: &mut dyn FnMut(&str),
        judged: &dyn Fn(&Report, &Symbolizer) -> bool,
    ) -> Result<Harvest> {
        let Self {
            mut run,
            mut loaded,
        } = self;
        run.unload(&mut loaded)?;
        let h = run.harvest(Instant::now(), progress, judged)?;
        Ok(Harvest {
            settled: h.settled,
            traced: h.traced,
            log: h.log,
            kmsg: h.kmsg,
            sym: h.sym,
            layout: loaded.layout,
        })
    }

    /// What the trace has outstanding of the session's modules now, of
    /// what was allocated after event `since` ([`Tracer::seq`]): the
    /// allocations whose stack passes through one of them, except those an
    /// allocator made for itself ([`crate::trace::internal`]).
    pub fn module_allocations(&self, tracer: &Tracer, since: u64) -> Result<Vec<Held>> {
        Ok(modules_hold(&tracer.ledger(), self.sym(), &tracer.names()?, since).reports)
    }

    /// Harvests and judges: reports and warnings are allowed only from the
    /// leaky variants of `leaky`.
    pub fn finish(self, leaky: &[String], progress: &mut dyn FnMut(&str)) -> Result<Judgement> {
        // The judgement counts the leaky samples' reports but judges only
        // the others: those must settle.
        let outside = |r: &Report, sym: &Symbolizer| {
            let a = attribute(r, sym);
            !matches!((&a.pattern, a.variant), (Some(p), Some(Variant::Leaky)) if leaky.contains(p))
        };
        let h = self.harvest_settling_on(progress, &outside)?;
        let mut j = Judgement {
            stable: h.settled.stable,
            kernel_log: findings::findings(&h.log)
                .into_iter()
                .filter(|f| !leaky.iter().any(|p| explains(p, Variant::Leaky, f)))
                .collect(),
            ..Judgement::default()
        };
        for r in &h.settled.reports {
            let a = attribute(r, &h.sym);
            match (&a.pattern, a.variant) {
                (Some(p), Some(Variant::Leaky)) if leaky.contains(p) => j.leaky_reports += 1,
                _ => {
                    let frames = Example::of(r, &h.sym).symbolized;
                    if let Some(why) = known_kernel_leak(&frames) {
                        j.known_kernel.push(KnownLeak::new(r.size, r.address, why));
                        continue;
                    }
                    j.outside.push(format!(
                        "{} bytes at {:#x} ({}), allocated at {}",
                        r.size,
                        r.address,
                        a.pattern.as_deref().unwrap_or("no sample"),
                        frames.join(" < ")
                    ))
                }
            }
        }
        Ok(j)
    }
}
