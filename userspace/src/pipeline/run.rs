// SPDX-License-Identifier: GPL-2.0
//! The detectors' watch over a run ([`Run`]): opened before the run's first
//! module is loaded, each load recorded (where the module sits, its frames,
//! with the trace its vmalloc areas), and harvested once the last is gone.
//! A [`Session`](super::session::Session) is a run of one module; `census`
//! loads many in one.

use std::time::{Duration, Instant};

use anyhow::Result;
use nix::errno::Errno;

use super::{
    detectors::Detectors,
    harvest::{harvest_trace, TraceHarvest},
};
use crate::{
    analysis::symbolize::Symbolizer,
    kernel::{
        initprobe::InitProbe,
        kmod::{LoadError, LoadedModule},
        kmsg::KmsgWatch,
        module::{Ko, ModuleLayout},
        thread::in_fresh_thread,
    },
    kmemleak::{
        report::Report,
        window::{Settled, Window},
    },
    trace::{
        tracer::Tracer,
        vmalloc::{Area, Loads},
    },
};

/// The detectors open over a run of module loads. Dropping it (also on an
/// error) closes them, restoring kmemleak's and tracefs' settings.
pub struct Run<'k> {
    window: Option<Window<'k>>,
    /// kmemleak's answer, once it settled ([`Run::settle_kmemleak`]).
    settled: Option<Settled>,
    tracer: Option<Tracer>,
    /// The init probe ([`Options::probe`]), or why it could not be armed;
    /// dropped after the trace (declared after it).
    probe: Option<Result<InitProbe>>,
    /// With a trace that has no vmalloc events: each module's vmalloc
    /// areas around its load.
    vmalloc: Option<Loads>,
    kmsg: KmsgWatch,
    /// The frames of every module loaded in the run.
    pub sym: Symbolizer,
}

/// What a run opens beside its detectors.
#[derive(Default)]
pub struct Options<'a> {
    /// Arms the init probe for this module (before the trace starts: on a
    /// kernel before eventfs, 6.6, arming makes every event's files anew,
    /// tens of thousands of allocations freed by RCU), so that a load
    /// whose init fails is placed ([`Run::attempt`]).
    pub probe: Option<&'a Ko>,
    /// kmemleak scans task stacks ([`Window::open_scanning_stacks`]): for
    /// a module that gets none of the lab's help.
    pub scan_stacks: bool,
}

/// One load of a module in a run, whose init may fail ([`Run::attempt`]).
pub struct Attempted {
    /// The thread that loaded it: kmemleak's `pid` of what its init
    /// allocated, and the loader its frames resolve by.
    pub loader: u32,
    /// Whether where its code was is known (also when its init failed):
    /// its frames were added to the run's symbols.
    pub placed: bool,
    /// Why an init that failed could not be placed.
    pub unplaced: Option<String>,
    /// The loaded module, or the error its init returned.
    pub result: std::result::Result<Loaded, Errno>,
}

/// A module loaded in a run; dropping it unloads it.
pub struct Loaded {
    /// The module.
    pub module: LoadedModule,
    /// Where it was loaded.
    pub layout: ModuleLayout,
    /// The vmalloc areas before it was loaded (trace only).
    before: Vec<Area>,
}

/// What the detectors gave once the run's modules were gone.
pub struct RunHarvest {
    /// kmemleak's settled reports (none, and settled, without kmemleak).
    pub settled: Settled,
    /// What the allocation trace found, when it ran.
    pub traced: Option<TraceHarvest>,
    /// The kernel log since the run opened.
    pub log: Vec<String>,
    /// The kernel log from here on.
    pub kmsg: KmsgWatch,
    /// The frames of every module of the run.
    pub sym: Symbolizer,
}

impl<'k> Run<'k> {
    /// A run over kmemleak's `window` (earlier reports flushed) and the
    /// allocation trace `tracer`, each when given; the kernel log is
    /// watched from here.
    pub fn new(window: Option<Window<'k>>, tracer: Option<Tracer>) -> Result<Self> {
        // Traced vmalloc areas are in the ledger; otherwise vmallocinfo.
        let vmalloc = match &tracer {
            Some(t) if !t.traces_vmalloc() => Some(Loads::default()),
            _ => None,
        };
        Ok(Self {
            window,
            settled: None,
            tracer,
            probe: None,
            vmalloc,
            kmsg: KmsgWatch::start()?,
            sym: Symbolizer::default(),
        })
    }

    /// Starts `detectors` (a kmemleak window, earlier reports flushed; the
    /// allocation trace), then runs `before_load` (its own reads of procfs
    /// done, with the trace paused: nothing is a module's before one is
    /// loaded, and a slab shrink makes many events).
    pub fn open_with<T>(
        detectors: &'k Detectors,
        before_load: impl FnOnce() -> Result<T>,
    ) -> Result<(Self, T)> {
        Self::open(detectors, Options::default(), before_load)
    }

    /// As [`Run::open_with`], with what `options` asks for beside.
    pub fn open<T>(
        detectors: &'k Detectors,
        options: Options,
        before_load: impl FnOnce() -> Result<T>,
    ) -> Result<(Self, T)> {
        let probe = options.probe.map(InitProbe::arm);
        let tracer = detectors.trace.map(Tracer::start).transpose()?;
        if let Some(t) = &tracer {
            t.read_names_ahead()?;
        }
        let open = match options.scan_stacks {
            true => Window::open_scanning_stacks,
            false => Window::open,
        };
        let window = detectors.kmemleak.as_ref().map(open).transpose()?;
        let before = match &tracer {
            Some(t) => t.paused(before_load)?,
            None => before_load()?,
        };
        let mut run = Self::new(window, tracer)?;
        run.probe = probe;
        Ok((run, before))
    }

    /// The allocation trace, when it runs.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// Marks `name` in the trace, when it runs: what is allocated after it
    /// comes after the mark ([`Tracer::mark`]).
    pub fn mark(&self, name: &str) -> Result<()> {
        match &self.tracer {
            Some(t) => t.mark(name),
            None => Ok(()),
        }
    }

    /// Loads `ko`, records where it sits and adds its frames.
    pub fn load(&mut self, ko: &Ko) -> Result<Loaded> {
        let before = self.vmalloc_now()?;
        let module = LoadedModule::load(ko)?;
        let layout = module.layout(ko)?;
        self.sym.add(&layout, ko)?;
        Ok(Loaded {
            module,
            layout,
            before,
        })
    }

    /// Loads `ko` with `params`, its init allowed to fail; where its code
    /// was is recorded either way when it can be told (by the init probe,
    /// [`Options::probe`], else by sysfs while the load runs), and its
    /// frames added. A load the kernel refused is an error.
    pub fn attempt(&mut self, ko: &Ko, params: &str) -> Result<Attempted> {
        let before = self.vmalloc_now()?;
        let probe = self.probe.as_ref().and_then(|p| p.as_ref().ok());
        let mut attempt = LoadedModule::attempt(ko, params, probe);
        let (result, layout) = match attempt.result {
            Ok(module) => {
                let layout = module.layout(ko)?;
                self.sym.add(&layout, ko)?;
                let loaded = Loaded {
                    module,
                    layout,
                    before,
                };
                return Ok(Attempted {
                    loader: attempt.loader,
                    placed: true,
                    unplaced: None,
                    result: Ok(loaded),
                });
            }
            Err(LoadError::Refused(e)) => return Err(e),
            Err(LoadError::Init(e)) => (Err(e), attempt.layout.take()),
        };
        let unplaced = match &layout {
            Some(l) => {
                self.sym.add(l, ko)?;
                None
            }
            None => Some(self.why_unplaced(attempt.unknown.take())),
        };
        Ok(Attempted {
            loader: attempt.loader,
            placed: layout.is_some(),
            unplaced,
            result,
        })
    }

    /// Why a failed init could not be placed: the attempt's reason, and the
    /// probe's where there was none.
    fn why_unplaced(&self, unknown: Option<String>) -> String {
        let no_probe = self.probe.as_ref().and_then(|p| p.as_ref().err());
        match (unknown, no_probe) {
            (Some(why), Some(p)) => format!("{why}; the probe: {p:#}"),
            (Some(why), None) => why,
            (None, _) => "the probe saw no init run".to_string(),
        }
    }

    /// The vmalloc areas now, where the trace cannot see them.
    fn vmalloc_now(&self) -> Result<Vec<Area>> {
        match self.vmalloc {
            Some(_) => Loads::before_load(),
            None => Ok(Vec::new()),
        }
    }

    /// Notes what `loaded` holds that the trace cannot see for itself (its
    /// vmalloc areas): call it right before unloading the module.
    pub fn unloading(&mut self, loaded: &mut Loaded) -> Result<()> {
        match &mut self.vmalloc {
            Some(loads) => {
                loads.before_unload(&loaded.layout.name, std::mem::take(&mut loaded.before))
            }
            None => Ok(()),
        }
    }

    /// Unloads `loaded` (its exit-time leaks happen here).
    pub fn unload(&mut self, loaded: &mut Loaded) -> Result<()> {
        self.unloading(loaded)?;
        loaded.module.unload()
    }

    /// Unloads `loaded` from a thread of its own ([`in_fresh_thread`]),
    /// waiting up to `patience` for its users to go
    /// ([`LoadedModule::unload_within`]). When it will not go, the error
    /// says why, and the module stays loaded until `loaded` is dropped.
    pub fn unload_within(&mut self, loaded: &mut Loaded, patience: Duration) -> Result<()> {
        self.unloading(loaded)?;
        in_fresh_thread(|| loaded.module.unload_within(patience))
    }

    /// Closes kmemleak's window, when it has one, and keeps its answer for
    /// [`Run::harvest`]: waits out kmemleak's minimum age from `youngest`
    /// and scans until the reports `judged` keeps settle
    /// ([`Window::close_settling_on`]). A module kept loaded through the
    /// scans is unloaded after this and before the harvest.
    pub fn settle_kmemleak(
        &mut self,
        youngest: Instant,
        progress: &mut dyn FnMut(&str),
        judged: &dyn Fn(&Report, &Symbolizer) -> bool,
    ) -> Result<()> {
        let sym = &self.sym;
        if let Some(w) = self.window.take() {
            progress("waiting for kmemleak");
            self.settled = Some(w.close_settling_on(youngest, progress, &|r| judged(r, sym))?);
        }
        Ok(())
    }

    /// Once the run's modules are gone: settles kmemleak, unless
    /// [`Run::settle_kmemleak`] did already (from `youngest`, the last
    /// allocation of interest, on the reports `judged` keeps); lets the
    /// trace's deferred frees land and keeps what the modules' stacks
    /// passed through, with the vmalloc areas they left.
    pub fn harvest(
        mut self,
        youngest: Instant,
        progress: &mut dyn FnMut(&str),
        judged: &dyn Fn(&Report, &Symbolizer) -> bool,
    ) -> Result<RunHarvest> {
        self.settle_kmemleak(youngest, progress, judged)?;
        let settled = self.settled.take().unwrap_or(Settled {
            reports: Vec::new(),
            scans: 0,
            stable: true,
        });
        let traced = match self.tracer.take() {
            Some(t) => {
                let mut h = harvest_trace(t, &self.sym, progress)?;
                if let Some(loads) = &self.vmalloc {
                    h.vmalloc = loads.left()?;
                }
                Some(h)
            }
            None => None,
        };
        // The probe's instance goes once the trace is read.
        self.probe = None;
        Ok(RunHarvest {
            settled,
            traced,
            log: self.kmsg.drain(),
            kmsg: self.kmsg,
            sym: self.sym,
        })
    }
}
