//! leaklab.ko loaded inside one kmemleak window, for work whose leaks are
//! judged afterwards (`leaklab fuzz`, `leaklab faults`): only the leaky
//! samples may leak, and only a leaky sample may explain a kernel warning.

use std::{path::Path, time::Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    control::Variant,
    cycle::{attribute, explains, Example},
    kmemleak::Kmemleak,
    kmod,
    layout::ModuleLayout,
    monitor::{self, Finding, KmsgWatch},
    scan::Window,
    symbolize::Symbolizer,
};

/// The module, loaded in a window, and what is needed to judge after.
pub struct Session<'k> {
    /// Taken when the session finishes.
    window: Option<Window<'k>>,
    kmsg: KmsgWatch,
    name: String,
    sym: Symbolizer,
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
    /// Reports of a known kernel leak (see [`KNOWN_KERNEL_LEAKS`]) that a
    /// sample's call into the kernel set off: reported, not held against
    /// the module.
    pub known_kernel: Vec<String>,
}

/// Leaks of the kernel itself that the samples can set off under injected
/// allocation failures: a function in the leaking object's backtrace, and
/// what goes wrong there.
pub const KNOWN_KERNEL_LEAKS: &[(&str, &str)] = &[(
    "sysfs_slab_add",
    "Linux 6.12 mm/slub.c: sysfs_slab_add() returns on a failed kobject_init_and_add() (and after kobject_del()) without kobject_put(), so the kobject's name (kstrdup) leaks whenever creating a slab cache fails there",
)];

impl<'k> Session<'k> {
    /// Opens a window and loads `module` in it.
    pub fn start(kmemleak: &'k Kmemleak, module: &Path) -> Result<Self> {
        let window = Window::open(kmemleak)?;
        let kmsg = KmsgWatch::start()?;
        let (name, loader) = kmod::load_in_own_thread(module)?;
        let mut session = Self {
            window: Some(window),
            kmsg,
            name,
            sym: Symbolizer::default(),
        };
        // From here on, dropping the session unloads the module.
        let mut layout = ModuleLayout::record(&session.name, module)?;
        layout.loader = Some(loader);
        session.sym.add(&layout, module)?;
        Ok(session)
    }

    /// Unloads the module, closes the window, and judges: reports and
    /// warnings are allowed only from the leaky variants of `leaky`.
    pub fn finish(mut self, leaky: &[String], progress: &mut dyn FnMut(&str)) -> Result<Judgement> {
        kmod::unload(&self.name)?;
        self.name.clear();
        let youngest = Instant::now();
        progress("waiting for kmemleak");
        let window = self
            .window
            .take()
            .context("the session was finished before")?;
        let settled = window.close_with(youngest, progress)?;
        let mut j = Judgement {
            kernel_log: monitor::findings(&self.kmsg.drain())
                .into_iter()
                .filter(|f| !leaky.iter().any(|p| explains(p, Variant::Leaky, f)))
                .collect(),
            ..Judgement::default()
        };
        for r in &settled.reports {
            let a = attribute(r, &self.sym);
            match (&a.pattern, a.variant) {
                (Some(p), Some(Variant::Leaky)) if leaky.contains(p) => j.leaky_reports += 1,
                _ => {
                    let frames = Example::of(r, &self.sym).symbolized;
                    let known = KNOWN_KERNEL_LEAKS
                        .iter()
                        .find(|(f, _)| frames.iter().any(|x| x.split('+').next() == Some(f)));
                    if let Some((_, why)) = known {
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

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = kmod::unload(&self.name);
        }
    }
}

impl Judgement {
    /// Nothing unexplained.
    pub fn clean(&self) -> bool {
        self.kernel_log.is_empty() && self.outside.is_empty()
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

/// The last line of a human report: its verdict.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "result: ok\n"
    } else {
        "result: FAIL\n"
    }
}
