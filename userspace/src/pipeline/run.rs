//! The detectors' watch over a run ([`Run`]): opened before the run's first
//! module is loaded, each load recorded (where the module sits, its frames,
//! with the trace its vmalloc areas), and harvested once the last is gone.
//! A [`Session`](super::session::Session) is a run of one module; `census`
//! loads many in one.

use std::time::Instant;

use anyhow::Result;

use super::{
    detectors::Detectors,
    harvest::{harvest_trace, TraceHarvest},
};
use crate::{
    analysis::symbolize::Symbolizer,
    kernel::{
        kmod::LoadedModule,
        kmsg::KmsgWatch,
        module::{Ko, ModuleLayout},
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
    tracer: Option<Tracer>,
    /// With a trace that has no vmalloc events: each module's vmalloc
    /// areas around its load.
    vmalloc: Option<Loads>,
    kmsg: KmsgWatch,
    /// The frames of every module loaded in the run.
    pub sym: Symbolizer,
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
            tracer,
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
        let tracer = detectors.trace.map(Tracer::start).transpose()?;
        if let Some(t) = &tracer {
            t.read_names_ahead()?;
        }
        let window = detectors.kmemleak.as_ref().map(Window::open).transpose()?;
        let before = match &tracer {
            Some(t) => t.paused(before_load)?,
            None => before_load()?,
        };
        Ok((Self::new(window, tracer)?, before))
    }

    /// The allocation trace, when it runs.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// Loads `ko`, records where it sits and adds its frames.
    pub fn load(&mut self, ko: &Ko) -> Result<Loaded> {
        let before = match self.vmalloc {
            Some(_) => Loads::before_load()?,
            None => Vec::new(),
        };
        let module = LoadedModule::load(ko)?;
        let layout = module.layout(ko)?;
        self.sym.add(&layout, ko)?;
        Ok(Loaded {
            module,
            layout,
            before,
        })
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

    /// Once the run's modules are gone: waits out kmemleak's minimum age
    /// from `youngest` (the last allocation of interest) and scans until
    /// the reports `judged` keeps settle ([`Window::close_settling_on`]);
    /// lets the trace's deferred frees land and keeps what the modules'
    /// stacks passed through, with the vmalloc areas they left.
    pub fn harvest(
        mut self,
        youngest: Instant,
        progress: &mut dyn FnMut(&str),
        judged: &dyn Fn(&Report, &Symbolizer) -> bool,
    ) -> Result<RunHarvest> {
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
            Some(t) => {
                let mut h = harvest_trace(t, &self.sym, progress)?;
                if let Some(loads) = &self.vmalloc {
                    h.vmalloc = loads.left()?;
                }
                Some(h)
            }
            None => None,
        };
        Ok(RunHarvest {
            settled,
            traced,
            log: self.kmsg.drain(),
            kmsg: self.kmsg,
            sym: self.sym,
        })
    }
}
