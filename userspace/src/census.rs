//! The first main job: load and unload modules, let kmemleak look, and count
//! the unreferenced objects each module left behind.
//!
//! Each module is loaded, its section addresses and debugfs entries are
//! recorded, and it is unloaded. Then kmemleak scans: once at once (so every
//! new object gets its first checksum), and again once the youngest
//! allocation is older than kmemleak's minimum age, repeating until two scans
//! in a row report the same set. Reports are attributed to a module by their
//! frames: a `[module]` tag, or a bare address inside a recorded section.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    kmemleak::{Kmemleak, DEBUGFS},
    kmod,
    layout::ModuleLayout,
    report::Report,
    symbolize::Symbolizer,
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
        self.bytes += r.size;
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
}

impl Census {
    /// Whether every module loaded and unloaded.
    pub fn ok(&self) -> bool {
        self.modules.iter().all(|m| m.loaded && m.unloaded)
    }

    /// A short table for people.
    pub fn human(&self) -> String {
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

/// Loads and unloads each of `modules`, then counts kmemleak's reports per
/// module: harvested with the scan protocol, or `naive`ly (`clear`, the work,
/// `scan` twice, read), as a baseline to measure the protocol against.
pub fn run(modules: &[PathBuf], naive: bool) -> Result<Census> {
    let kmemleak = Kmemleak::open()?;
    // Flush what boot left behind, so the count starts from here.
    let window = if naive {
        kmemleak.clear()?;
        None
    } else {
        Some(crate::scan::Window::open(&kmemleak)?)
    };

    let mut results = Vec::new();
    let mut symbols = Symbolizer::default();
    let mut last_load = Instant::now();
    for path in modules {
        let mut m = ModuleResult {
            path: path.clone(),
            name: None,
            loaded: false,
            unloaded: false,
            debugfs: BTreeMap::new(),
            error: None,
            leaks: LeakCount::default(),
        };
        match kmod::load_in_own_thread(path) {
            Ok((name, loader)) => {
                last_load = Instant::now();
                m.loaded = true;
                m.debugfs = debugfs_entries(&name);
                let recorded = ModuleLayout::record(&name, path).and_then(|mut l| {
                    l.loader = Some(loader);
                    symbols.add(&l, path)
                });
                if let Err(e) = recorded {
                    m.error = Some(format!("{e:#}"));
                }
                match kmod::unload(&name) {
                    Ok(()) => m.unloaded = true,
                    Err(e) => m.error = Some(format!("{e:#}")),
                }
                m.name = Some(name);
            }
            Err(e) => m.error = Some(format!("{e:#}")),
        }
        results.push(m);
    }

    let (reports, scans) = match window {
        Some(w) => {
            let settled = w.close(last_load)?;
            (settled.reports, settled.scans)
        }
        None => {
            kmemleak.scan()?;
            kmemleak.scan()?;
            (crate::report::parse(&kmemleak.read()?), 2)
        }
    };
    let mut unattributed = LeakCount::default();
    for r in &reports {
        match attribute(r, &symbols) {
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
        kernel: crate::monitor::kernel_release(),
        modules: results,
        unattributed,
        scans,
    })
}

/// Returns the module a report's frames point into, if any.
pub fn attribute<'a>(r: &Report, symbols: &'a Symbolizer) -> Option<&'a str> {
    symbols.owner_of(r)
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

/// The `.ko` files in `dir`, sorted by name.
pub fn modules_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{layout::Section, report};

    #[test]
    fn reused_init_sections_are_told_apart_by_the_loading_thread() {
        // Two modules loaded one after the other, each from its own thread:
        // the second one's init text lands where the first one's was freed.
        let mut symbols = Symbolizer::default();
        for (name, loader) in [("kmemleak_test", 18), ("rust_minimal", 40)] {
            symbols.add_layout(ModuleLayout {
                name: name.into(),
                sections: vec![Section {
                    name: ".init.text".into(),
                    address: 0xffffffffa001c000,
                    size: 0x100,
                }],
                loader: Some(loader),
            });
        }
        let report = |pid: u32| {
            let text = format!("unreferenced object 0xffff888003a8e000 (size 32):\n  comm \"exe\", pid {pid}, jiffies 4294892816\n  backtrace (crc 1):\n    __kmalloc_cache_noprof+0x104/0x114\n    0xffffffffa001c029\n    do_one_initcall+0x72/0x153\n");
            report::parse(&text).remove(0)
        };
        assert_eq!(attribute(&report(18), &symbols), Some("kmemleak_test"));
        assert_eq!(attribute(&report(40), &symbols), Some("rust_minimal"));
    }

    #[test]
    fn bare_addresses_and_tags_are_attributed() {
        let mut symbols = Symbolizer::default();
        symbols.add_layout(ModuleLayout {
            name: "kmemleak_test".into(),
            sections: vec![Section {
                name: ".init.text".into(),
                address: 0xffffffffa0000000,
                size: 0x300,
            }],
            loader: Some(18),
        });
        let text = "unreferenced object 0xffff888003a8e000 (size 32):\n  backtrace (crc 1):\n    __kmalloc_cache_noprof+0x1a2/0x2a0\n    0xffffffffa000023a\n";
        let r = &report::parse(text)[0];
        assert_eq!(attribute(r, &symbols), Some("kmemleak_test"));
        let outside = text.replace("0xffffffffa000023a", "0xffffffffa0000300");
        assert_eq!(attribute(&report::parse(&outside)[0], &symbols), None);
        let tagged = text.replace(
            "0xffffffffa000023a",
            "kmemleak_test_init+0x2a/0x100 [kmemleak_test]",
        );
        assert_eq!(
            attribute(&report::parse(&tagged)[0], &symbols),
            Some("kmemleak_test")
        );
    }
}
