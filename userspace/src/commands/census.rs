//! The first main job: load and unload modules, let kmemleak look, and count
//! the unreferenced objects each module left behind.
//!
//! Each module is loaded, its section addresses and debugfs entries are
//! recorded, and it is unloaded. Then kmemleak scans: once at once (so every
//! new object gets its first checksum), and again once the youngest
//! allocation is older than kmemleak's minimum age, repeating until two scans
//! in a row report the same set. Reports are attributed to a module by their
//! frames: a `[module]` tag, or a bare address inside a recorded section.
//!
//! The verdict fails when a module leaked (objects attributed to it), or
//! did not load or unload; it is inconclusive when kmemleak's set did not
//! settle.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Result;
use serde::Serialize;

use crate::{
    analysis::symbolize::Symbolizer,
    kernel::{kmod::LoadedModule, module::Ko, procfs::kernel_release},
    kmemleak::{
        report::{self, Report},
        window::Window,
        Kmemleak, DEBUGFS,
    },
    output::{Outcome, Verdict},
    vm::initramfs::{modules_in, MODULE_DIR},
};

/// What happened to one module.
#[derive(Debug, Serialize)]
pub struct ModuleResult {
    /// The `.ko` file.
    pub path: PathBuf,
    /// The module's name, once known.
    pub name: Option<String>,
    /// Whether it loaded.
    pub loaded: bool,
    /// Whether it unloaded.
    pub unloaded: bool,
    /// The files of `/sys/kernel/debug/<name>/` while it was loaded.
    pub debugfs: BTreeMap<String, DebugfsFile>,
    /// What a loading or unloading error said.
    pub error: Option<String>,
    /// Reports attributed to the module.
    pub leaks: LeakCount,
}

/// One file of a module's debugfs directory.
#[derive(Debug, Serialize)]
pub struct DebugfsFile {
    /// Permission bits, e.g. `0o400` (as a number).
    pub mode: u32,
    /// Content read while the module was loaded, when readable and short.
    pub content: Option<String>,
}

/// A count of leaked objects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeakCount {
    /// Unreferenced objects.
    pub objects: usize,
    /// Their total size.
    pub bytes: u64,
}

impl LeakCount {
    fn add(&mut self, r: &Report) {
        self.objects += 1;
        self.bytes = self.bytes.saturating_add(r.size);
    }
}

/// The whole census.
#[derive(Debug, Serialize)]
pub struct Census {
    /// Schema name and version of this JSON document.
    pub schema: &'static str,
    /// The running kernel's release.
    pub kernel: String,
    /// One entry per module, in the order given.
    pub modules: Vec<ModuleResult>,
    /// Reports that no module's frames explain (the kernel's own).
    pub unattributed: LeakCount,
    /// Scans run after the modules were unloaded.
    pub scans: usize,
    /// Whether two scans in a row agreed (`None`: the naive harvest, which
    /// does not ask).
    pub stable: Option<bool>,
}

impl Census {
    /// What makes the census fail, module by module: a leak, a load or an
    /// unload that did not happen.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.modules {
            let name = m
                .name
                .clone()
                .unwrap_or_else(|| m.path.display().to_string());
            if !m.loaded {
                out.push(format!("{name} did not load"));
            } else if !m.unloaded {
                out.push(format!("{name} did not unload"));
            }
            if m.leaks.objects > 0 {
                out.push(format!(
                    "{name} leaked {} object(s), {} bytes",
                    m.leaks.objects, m.leaks.bytes
                ));
            }
        }
        out
    }
}

impl Outcome for Census {
    /// Passes when every module loaded, unloaded and has no leak
    /// attributed to it; fails otherwise (the README's "1 leaks"); is
    /// inconclusive when kmemleak's set did not settle, whatever it held.
    /// Reports of no module's (the kernel's own) do not fail it.
    fn verdict(&self) -> Verdict {
        if self.stable == Some(false) {
            return Verdict::Inconclusive;
        }
        Verdict::of(self.problems().is_empty())
    }

    fn summary(&self) -> String {
        match self.verdict() {
            Verdict::Inconclusive => "INCONCLUSIVE: kmemleak's reports were still changing when the scans ran out: run it again".into(),
            Verdict::Passed => format!(
                "ok: {} module(s) loaded and unloaded, no leaks",
                self.modules.len()
            ),
            Verdict::Failed => format!("FAIL: {}", self.problems().join("; ")),
        }
    }

    /// A short table for people.
    fn human(&self) -> String {
        let mut s = format!(
            "kmemleak census on {} ({} scans after unload)\n{:<20} {:>6} {:>8} {:>8} {:>8}  {}\n",
            self.kernel, self.scans, "module", "loaded", "unloaded", "objects", "bytes", "debugfs"
        );
        for m in &self.modules {
            let name = m
                .name
                .clone()
                .unwrap_or_else(|| m.path.display().to_string());
            s += &format!(
                "{:<20} {:>6} {:>8} {:>8} {:>8}  {}\n",
                name,
                yes(m.loaded),
                yes(m.unloaded),
                m.leaks.objects,
                m.leaks.bytes,
                if m.debugfs.is_empty() {
                    "-".to_string()
                } else {
                    m.debugfs.keys().cloned().collect::<Vec<_>>().join(",")
                }
            );
            if let Some(e) = &m.error {
                s += &format!("  error: {e}\n");
            }
        }
        s += &format!(
            "{:<20} {:>6} {:>8} {:>8} {:>8}\n",
            "(not a module)", "", "", self.unattributed.objects, self.unattributed.bytes
        );
        s
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// Loads and unloads each of `modules` (none: every module in the guest's
/// module directory), then counts kmemleak's reports per module: harvested
/// with the scan protocol, or `naive`ly (`clear`, the work, `scan` twice,
/// read), as a baseline to measure the protocol against.
pub fn run(modules: Vec<PathBuf>, naive: bool) -> Result<Census> {
    let modules = if modules.is_empty() {
        modules_in(Path::new(MODULE_DIR))?
    } else {
        modules
    };
    anyhow::ensure!(
        !modules.is_empty(),
        "no modules given and none in {MODULE_DIR}: name the .ko files to load"
    );
    let kmemleak = Kmemleak::open()?;
    // Flush what boot left behind, so the count starts from here.
    let window = if naive {
        kmemleak.clear()?;
        None
    } else {
        Some(Window::open(&kmemleak)?)
    };

    let mut results = Vec::new();
    let mut symbols = Symbolizer::default();
    let mut last_load = Instant::now();
    for path in &modules {
        let mut m = ModuleResult {
            path: path.clone(),
            name: None,
            loaded: false,
            unloaded: false,
            debugfs: BTreeMap::new(),
            error: None,
            leaks: LeakCount::default(),
        };
        let loaded = Ko::open(path).and_then(|ko| Ok((LoadedModule::load(&ko)?, ko)));
        match loaded {
            Ok((mut module, ko)) => {
                last_load = Instant::now();
                m.loaded = true;
                m.debugfs = debugfs_entries(ko.name());
                let recorded = module.layout(&ko).and_then(|l| symbols.add(&l, &ko));
                if let Err(e) = recorded {
                    m.error = Some(format!("{e:#}"));
                }
                match module.unload() {
                    Ok(()) => m.unloaded = true,
                    Err(e) => m.error = Some(format!("{e:#}")),
                }
                m.name = Some(ko.name().to_string());
            }
            Err(e) => m.error = Some(format!("{e:#}")),
        }
        results.push(m);
    }

    let (reports, scans, stable) = match window {
        Some(w) => {
            let settled = w.close(last_load)?;
            (settled.reports, settled.scans, Some(settled.stable))
        }
        None => {
            kmemleak.scan()?;
            kmemleak.scan()?;
            (report::parse(&kmemleak.read()?), 2, None)
        }
    };
    let mut unattributed = LeakCount::default();
    for r in &reports {
        match symbols.owner_of(r) {
            Some(name) => {
                if let Some(m) = results.iter_mut().find(|m| m.name.as_deref() == Some(name)) {
                    m.leaks.add(r);
                }
            }
            None => unattributed.add(r),
        }
    }
    Ok(Census {
        schema: "leaklab.census/1",
        kernel: kernel_release(),
        modules: results,
        unattributed,
        scans,
        stable,
    })
}

fn debugfs_entries(name: &str) -> BTreeMap<String, DebugfsFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(DEBUGFS).join(name);
    let Ok(entries) = fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let mode = e.metadata().map_or(0, |m| m.permissions().mode() & 0o7777);
            let content = fs::read(e.path())
                .ok()
                .filter(|c| c.len() <= 4096)
                .map(|c| String::from_utf8_lossy(&c).into_owned());
            (
                e.file_name().to_string_lossy().into_owned(),
                DebugfsFile { mode, content },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(leaked: usize, stable: Option<bool>) -> Census {
        Census {
            schema: "leaklab.census/1",
            kernel: "6.12.0".into(),
            modules: vec![ModuleResult {
                path: "/lib/modules/kmemleak-test.ko".into(),
                name: Some("kmemleak_test".into()),
                loaded: true,
                unloaded: true,
                debugfs: BTreeMap::new(),
                error: None,
                leaks: LeakCount {
                    objects: leaked,
                    bytes: 32 * leaked as u64,
                },
            }],
            unattributed: LeakCount {
                objects: 3,
                bytes: 96,
            },
            scans: 2,
            stable,
        }
    }

    #[test]
    fn a_module_that_leaks_fails_the_census() {
        let leaky = census(25, Some(true));
        assert_eq!(leaky.verdict(), Verdict::Failed);
        assert_eq!(
            leaky.summary(),
            "FAIL: kmemleak_test leaked 25 object(s), 800 bytes"
        );
        assert_eq!(census(25, None).verdict(), Verdict::Failed);
        // The kernel's own reports (not a module's) do not fail it.
        assert_eq!(census(0, Some(true)).verdict(), Verdict::Passed);
        assert_eq!(census(25, Some(false)).verdict(), Verdict::Inconclusive);
        let mut stuck = census(0, Some(true));
        stuck.modules[0].unloaded = false;
        assert_eq!(stuck.verdict(), Verdict::Failed);
        assert_eq!(stuck.summary(), "FAIL: kmemleak_test did not unload");
    }
}
