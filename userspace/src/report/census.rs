// SPDX-License-Identifier: GPL-2.0
//! The document of `census` ([`Census`]): what each module loaded and
//! unloaded left behind, by kmemleak's count, and its rendering.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Serialize;

use crate::{
    kmemleak::report::Report,
    output::{Outcome, Verdict},
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
    pub fn add(&mut self, r: &Report) {
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
        s += &format!("note: {}\n", crate::kmemleak::BLIND_SPOTS);
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
