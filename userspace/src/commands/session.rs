//! The steps every run that loads a module takes: open a kmemleak window,
//! watch the kernel log, load the module and record where it sits
//! ([`Session::open`]); unload it, let kmemleak settle and read what it
//! reported ([`Session::harvest`]). `cycle` and `matrix` drive the samples
//! between the two; `fuzz` and `faults` judge with [`Session::finish`]: only
//! the leaky samples may leak, and only a leaky sample may explain a kernel
//! warning.

use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        attribute::{attribute, Example},
        findings::{self, explains, known_kernel_leak, Finding},
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
    output::Verdict,
};

/// A module loaded inside one kmemleak window, and what is needed to judge
/// after. Dropping it (also on an error) unloads the module and closes the
/// window, restoring kmemleak's settings.
pub struct Session<'k> {
    window: Window<'k>,
    kmsg: KmsgWatch,
    module: LoadedModule,
    /// Where the module was loaded.
    pub layout: ModuleLayout,
    /// Its frames, and those of any module added later.
    pub sym: Symbolizer,
}

/// What the window gave once the module was gone.
pub struct Harvest {
    /// kmemleak's settled reports.
    pub settled: Settled,
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
        Ok(Self::open_with(kmemleak, ko, || Ok(()))?.0)
    }

    /// As [`Session::open`], running `before_load` once the window is open
    /// (its own reads of procfs done), just before the module loads.
    pub fn open_with<T>(
        kmemleak: &'k Kmemleak,
        ko: &Ko,
        before_load: impl FnOnce() -> Result<T>,
    ) -> Result<(Self, T)> {
        let window = Window::open(kmemleak)?;
        let before = before_load()?;
        let kmsg = KmsgWatch::start()?;
        let module = LoadedModule::load(ko)?;
        let layout = module.layout(ko)?;
        let mut sym = Symbolizer::default();
        sym.add(&layout, ko)?;
        let session = Self {
            window,
            kmsg,
            module,
            layout,
            sym,
        };
        Ok((session, before))
    }

    /// Loads `ko` beside the session's module and unloads it again, its
    /// frames added to the symbols: a reference module whose leaks land in
    /// the same window. Returns its name.
    pub fn load_and_unload(&mut self, ko: &Ko) -> Result<String> {
        let mut other = LoadedModule::load(ko)?;
        let layout = other.layout(ko)?;
        self.sym.add(&layout, ko)?;
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
        self.module.unload()?;
        let youngest = Instant::now();
        let sym = &self.sym;
        let settled = self
            .window
            .close_settling_on(youngest, progress, &|r| judged(r, sym))?;
        Ok(Harvest {
            settled,
            log: self.kmsg.drain(),
            kmsg: self.kmsg,
            sym: self.sym,
            layout: self.layout,
        })
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
                        j.known_kernel
                            .push(format!("{} bytes at {:#x}: {why}", r.size, r.address));
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

/// What kmemleak and the kernel log said about the work.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Judgement {
    /// Kernel log findings no leaky sample explains (must be none).
    pub kernel_log: Vec<Finding>,
    /// kmemleak reports attributed to a leaky sample (allowed).
    pub leaky_reports: u64,
    /// Reports outside the leaky samples (must be none).
    pub outside: Vec<String>,
    /// Whether the judged reports (those outside the leaky samples) settled:
    /// two scans in a row agreed on them.
    pub stable: bool,
    /// Reports of a known kernel leak (see
    /// [`findings::KNOWN_KERNEL_LEAKS`]) that a sample's call into the
    /// kernel set off: reported, not held against the module.
    pub known_kernel: Vec<String>,
}

impl Judgement {
    /// Nothing unexplained.
    pub fn clean(&self) -> bool {
        self.kernel_log.is_empty() && self.outside.is_empty()
    }

    /// The verdict on the work: inconclusive when kmemleak did not settle,
    /// else passed when `ok` and nothing is unexplained.
    pub fn verdict(&self, ok: bool) -> Verdict {
        match self.stable {
            false => Verdict::Inconclusive,
            true => Verdict::of(ok && self.clean()),
        }
    }

    /// Human lines: the report counts, then each problem.
    pub fn human(&self) -> String {
        let mut out = format!(
            "kmemleak: {} report(s) from the leaky samples, {} outside them\n",
            self.leaky_reports,
            self.outside.len()
        );
        for f in &self.kernel_log {
            out += &format!("  kernel log ({}): {}\n", f.kind, f.line);
        }
        for o in &self.outside {
            out += &format!("  leaked outside the leaky samples: {o}\n");
        }
        let mut known: Vec<&str> = self
            .known_kernel
            .iter()
            .filter_map(|k| k.split_once(": ").map(|(_, why)| why))
            .collect();
        known.dedup();
        for why in known {
            let n = self
                .known_kernel
                .iter()
                .filter(|k| k.ends_with(why))
                .count();
            out += &format!("  known kernel leak, not the module's ({n} object(s)): {why}\n");
        }
        out
    }
}
