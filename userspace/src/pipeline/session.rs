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
        kmod::LoadedModule,
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
    trace::{
        ledger::{Allocation, Ledger},
        names::Names,
        tracer::Tracer,
        vmalloc::{Area, Loads},
        Space,
    },
};
use anyhow::Result;

use super::detectors::Detectors;

/// A module loaded inside one kmemleak window, and what is needed to judge
/// after. Dropping it (also on an error) unloads the module and closes the
/// window, restoring kmemleak's settings.
pub struct Session<'k> {
    window: Option<Window<'k>>,
    tracer: Option<Tracer>,
    /// With the trace: each module's vmalloc areas around its load, and
    /// those from before the session's module was loaded.
    vmalloc: Option<(Loads, Vec<Area>)>,
    kmsg: KmsgWatch,
    module: LoadedModule,
    /// Where the module was loaded.
    pub layout: ModuleLayout,
    /// Its frames, and those of any module added later.
    pub sym: Symbolizer,
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
        let window = Window::open(kmemleak)?;
        Ok(Self::load(Some(window), None, ko, || Ok(()))?.0)
    }

    /// Starts the detectors `detectors` (a kmemleak window, earlier reports
    /// flushed; the allocation trace), runs `before_load` (its own reads of
    /// procfs done, with the trace paused: nothing is the module's before
    /// it is loaded, and a slab shrink makes many events), and loads `ko`.
    pub fn open_with<T>(
        detectors: &'k Detectors,
        ko: &Ko,
        before_load: impl FnOnce() -> Result<T>,
    ) -> Result<(Self, T)> {
        let tracer = detectors.trace.map(Tracer::start).transpose()?;
        if let Some(t) = &tracer {
            t.read_names_ahead()?;
        }
        let window = detectors.kmemleak.as_ref().map(Window::open).transpose()?;
        Self::load(window, tracer, ko, before_load)
    }

    fn load<T>(
        window: Option<Window<'k>>,
        tracer: Option<Tracer>,
        ko: &Ko,
        before_load: impl FnOnce() -> Result<T>,
    ) -> Result<(Self, T)> {
        let before = match &tracer {
            Some(t) => t.paused(before_load)?,
            None => before_load()?,
        };
        // Traced vmalloc areas are in the ledger; otherwise vmallocinfo.
        let vmalloc = match &tracer {
            Some(t) if !t.traces_vmalloc() => Some((Loads::default(), Loads::before_load()?)),
            _ => None,
        };
        let kmsg = KmsgWatch::start()?;
        let module = LoadedModule::load(ko)?;
        let layout = module.layout(ko)?;
        let mut sym = Symbolizer::default();
        sym.add(&layout, ko)?;
        let session = Self {
            window,
            tracer,
            vmalloc,
            kmsg,
            module,
            layout,
            sym,
        };
        Ok((session, before))
    }

    /// The allocation trace, when it runs.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// Notes the vmalloc areas of module `name` before it goes, with
    /// those from before it came (trace only).
    fn note_vmalloc(&mut self, name: &str, before: Vec<Area>) -> Result<()> {
        match &mut self.vmalloc {
            Some((loads, _)) => loads.before_unload(name, before),
            None => Ok(()),
        }
    }

    /// Loads `ko` beside the session's module and unloads it again, its
    /// frames added to the symbols: a reference module whose leaks land in
    /// the same window. Returns its name.
    pub fn load_and_unload(&mut self, ko: &Ko) -> Result<String> {
        let before = match self.vmalloc {
            Some(_) => Loads::before_load()?,
            None => Vec::new(),
        };
        let mut other = LoadedModule::load(ko)?;
        let layout = other.layout(ko)?;
        self.sym.add(&layout, ko)?;
        self.note_vmalloc(ko.name(), before)?;
        other.unload()?;
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
        mut self,
        progress: &mut dyn FnMut(&str),
        judged: &dyn Fn(&Report, &Symbolizer) -> bool,
    ) -> Result<Harvest> {
        let name = self.layout.name.clone();
        let before = self
            .vmalloc
            .as_mut()
            .map_or_else(Vec::new, |(_, before)| std::mem::take(before));
        self.note_vmalloc(&name, before)?;
        self.module.unload()?;
        let youngest = Instant::now();
        let sym = &self.sym;
        let settled = match self.window.take() {
            Some(w) => w.close_settling_on(youngest, progress, &|r| judged(r, sym))?,
            None => Settled {
                reports: Vec::new(),
                scans: 0,
                stable: true,
            },
        };
        let traced = match self.tracer.take() {
            Some(t) => Some(self.harvest_trace(t, progress)?),
            None => None,
        };
        Ok(Harvest {
            settled,
            traced,
            log: self.kmsg.drain(),
            kmsg: self.kmsg,
            sym: self.sym,
            layout: self.layout,
        })
    }

    /// What the trace has outstanding of the session's modules now, of
    /// what was allocated after event `since` ([`Tracer::seq`]): the
    /// allocations whose stack passes through one of them, except those an
    /// allocator made for itself ([`crate::trace::internal`]).
    pub fn module_allocations(&self, tracer: &Tracer, since: u64) -> Result<Vec<Held>> {
        Ok(modules_hold(&tracer.ledger(), &self.sym, &tracer.names()?, since).reports)
    }

    /// Lets deferred frees land, then stops tracing and keeps what the
    /// modules' stacks passed through ([`harvest_trace`]), with the vmalloc
    /// areas they left.
    fn harvest_trace(
        &self,
        tracer: Tracer,
        progress: &mut dyn FnMut(&str),
    ) -> Result<TraceHarvest> {
        let mut h = harvest_trace(tracer, &self.sym, progress)?;
        if let Some((loads, _)) = &self.vmalloc {
            h.vmalloc = loads.left()?;
        }
        Ok(h)
    }

    /// Harvests and judges: reports and warnings are allowed only from the
    /// leaky variants of `leaky`.
    pub fn finish(self, leaky: &[String], progress: &mut dyn FnMut(&str)) -> Result<Judgement> {
        progress("waiting for kmemleak");
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

/// The allocations in `ledger` after event `since` whose stack passes
/// through a module `sym` knows, each with the allocator that made it for
/// itself, if one did ([`crate::trace::internal`]).
fn held<'l>(
    ledger: &'l Ledger,
    sym: &'l Symbolizer,
    names: &'l Names,
    since: u64,
) -> impl Iterator<Item = (&'l Allocation, Option<&'static str>)> {
    let in_module = |address| sym.holds(address);
    ledger
        .outstanding(move |a| a.seq > since && a.stack.iter().any(|&x| in_module(x)))
        .into_iter()
        .map(move |a| (a, names.internal(a, in_module)))
}

/// What the modules `sym` knows hold in `ledger` of what was allocated
/// after event `since`: the allocations whose stack passes through one, as
/// reports named by `names`, less those an allocator made for itself
/// ([`crate::trace::internal`]), which are counted.
pub fn modules_hold(ledger: &Ledger, sym: &Symbolizer, names: &Names, since: u64) -> TraceHarvest {
    let mut h = TraceHarvest::default();
    for (a, internal) in held(ledger, sym, names, since) {
        match internal {
            Some(_) => h.internal += 1,
            None => h.reports.push(Held {
                space: a.space,
                seq: a.seq,
                report: names.report(a, |x| sym.holds(x)),
            }),
        }
    }
    h
}

/// Lets deferred frees land ([`Tracer::settle`]: the number of allocations
/// the modules `sym` knows hold stays the same, counted without naming
/// them), stops tracing, and returns what they hold ([`modules_hold`]) with
/// the trace's counts.
pub fn harvest_trace(
    tracer: Tracer,
    sym: &Symbolizer,
    progress: &mut dyn FnMut(&str),
) -> Result<TraceHarvest> {
    progress("letting deferred frees settle");
    let names = tracer.names()?;
    tracer.settle(|l| held(l, sym, &names, 0).filter(|(_, i)| i.is_none()).count())?;
    let traced = tracer.finish()?;
    Ok(TraceHarvest {
        lost: traced.lost,
        events: traced.events,
        markers: traced.ledger.markers.clone(),
        ..modules_hold(&traced.ledger, sym, &names, 0)
    })
}

/// An allocation a module holds, as the trace saw it.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its allocator.
    pub space: Space,
    /// Its place in the event order (after the [`Tracer::mark`] of the
    /// step that made it).
    pub seq: u64,
    /// The allocation as a report.
    pub report: Report,
}

/// What the allocation trace found once the modules were gone.
#[derive(Debug, Default)]
pub struct TraceHarvest {
    /// Allocations not freed whose stack passed through a module of the
    /// session.
    pub reports: Vec<Held>,
    /// Where each [`Tracer::mark`] fell among the events.
    pub markers: Vec<(String, u64)>,
    /// vmalloc areas a module made and left.
    pub vmalloc: Vec<Report>,
    /// Allocations an allocator made for itself on a module's behalf (a new
    /// slab, kmemleak's metadata): not counted.
    pub internal: u64,
    /// Events lost: the trace is inconclusive when this is not 0.
    pub lost: u64,
    /// Events read.
    pub events: u64,
}

impl TraceHarvest {
    /// Every leak found: the allocations, then the vmalloc areas.
    pub fn leaks(&self) -> impl Iterator<Item = &Report> {
        self.reports.iter().map(|h| &h.report).chain(&self.vmalloc)
    }
}
