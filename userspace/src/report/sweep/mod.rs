// SPDX-License-Identifier: GPL-2.0
//! The document of `sweep` ([`Sweep`]): one row per module of a kernel's
//! tree, each loaded and unloaded in cycles and judged by `check`'s
//! detectors; the leaks grouped by culprit across modules; its table, KTAP
//! and LAVA cases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::{Check, Leak};
use crate::{
    analysis::{detector::Detector, known},
    output::{
        ktap::{self, Case},
        Outcome, Verdict,
    },
};

/// What became of one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Loaded and unloaded, and nothing left behind.
    Clean,
    /// Left allocations behind.
    Leaked,
    /// A detector could not decide (events lost, a failed init not placed).
    Inconclusive,
    /// Its init failed (no hardware, a parameter missing) or the kernel
    /// refused it: a result, not a failure of the sweep.
    DidNotLoad,
    /// Not tried: built in, or loaded already.
    Skipped,
    /// It would not unload.
    Stuck,
    /// The machine oopsed, hung or tainted itself while it ran.
    Crashed,
}

impl Status {
    /// Its word in the table.
    pub fn word(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Leaked => "LEAKED",
            Self::Inconclusive => "inconclusive",
            Self::DidNotLoad => "did not load",
            Self::Skipped => "skipped",
            Self::Stuck => "STUCK",
            Self::Crashed => "CRASHED",
        }
    }
}

/// One place a module leaked from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepLeak {
    /// Its title, as syzkaller titles kmemleak reports.
    pub title: Option<String>,
    /// The culprit frame.
    pub culprit: Option<String>,
    /// The culprit's `file:line`, where the module has line information.
    pub line: Option<String>,
    /// Objects over the module's cycles.
    pub objects: u64,
    /// Bytes over the module's cycles.
    pub bytes: u64,
    /// Its backtrace, symbolized (the module's frames with `file:line`
    /// where it has line information).
    #[serde(default)]
    pub frames: Vec<String>,
    /// Why it is the kernel's own state, not the module's: for one listed
    /// apart ([`Row::kernel_wide`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One module's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The module's name.
    pub module: String,
    /// Its file, relative to the tree.
    pub path: String,
    /// What became of it.
    pub status: Status,
    /// Why (an init's error, what stopped it, why it was skipped).
    pub detail: Option<String>,
    /// Objects left behind, over its cycles.
    pub objects: u64,
    /// Bytes left behind, over its cycles.
    pub bytes: u64,
    /// Where they were allocated.
    pub leaks: Vec<SweepLeak>,
    /// Seconds it took.
    pub seconds: f64,
    /// For a leak: whether a check of this module alone, in a fresh
    /// machine, found it again (`None`: not tried).
    pub confirmed: Option<bool>,
    /// Allocations that outlived it but are the kernel's own state
    /// ([`crate::analysis::known`]), listed apart with their reasons and
    /// not counted above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_wide: Vec<SweepLeak>,
}

impl SweepLeak {
    fn of(l: &Leak) -> Self {
        Self {
            title: l.title.clone(),
            culprit: l.culprit.clone(),
            line: l.culprit_line.clone(),
            objects: l.objects as u64,
            bytes: l.bytes,
            frames: l.frames.clone(),
            reason: None,
        }
    }
}

impl Row {
    /// A row without a check: skipped, did not load, or crashed.
    pub fn without_check(module: &str, path: &str, status: Status, detail: String) -> Self {
        Self {
            module: module.to_string(),
            path: path.to_string(),
            status,
            detail: Some(detail),
            objects: 0,
            bytes: 0,
            leaks: Vec::new(),
            seconds: 0.0,
            confirmed: None,
            kernel_wide: Vec::new(),
        }
    }

    /// The row of module file `path`'s `check`, which took `seconds`.
    pub fn of_check(path: &str, check: &Check, seconds: f64) -> Self {
        // kmemleak's leaks, then the trace's that kmemleak did not list.
        let mut leaks: Vec<SweepLeak> = check.leaks.iter().map(SweepLeak::of).collect();
        for l in check.traced_leaks() {
            let l = SweepLeak::of(l);
            if !leaks
                .iter()
                .any(|k| k.culprit == l.culprit && k.line == l.line)
            {
                leaks.push(l);
            }
        }
        // The kernel's own state, apart.
        let Sorted {
            leaks,
            kernel_wide,
            objects,
            bytes,
        } = Sorted::by_known(leaks);
        let init_error = check
            .cycles
            .iter()
            .all(|c| !c.loaded)
            .then(|| check.cycles.iter().find_map(|c| c.init_error.clone()))
            .flatten();
        let (status, detail) = match (check.verdict(), check.stuck(), init_error) {
            (_, Some(c), _) => (Status::Stuck, c.unload_error.clone()),
            (Verdict::Failed, None, _) if leaks.is_empty() => (Status::Clean, None),
            (Verdict::Failed, None, _) => (Status::Leaked, None),
            (Verdict::Inconclusive, None, _) => (Status::Inconclusive, undecided(check)),
            (Verdict::Passed, None, Some(e)) => (Status::DidNotLoad, Some(e)),
            (Verdict::Passed, None, None) => (Status::Clean, None),
        };
        Self {
            module: check.module.clone(),
            path: path.to_string(),
            status,
            detail,
            objects,
            bytes,
            leaks,
            seconds,
            confirmed: None,
            kernel_wide,
        }
    }

    /// The row with its leaks sorted again by the kernel's own state known
    /// now ([`known::kernel_wide`]): a row kept before a kind was known
    /// (a resumed sweep, a LAVA log) reads as one swept today. A leaked
    /// row left with nothing of its own is clean; a clean one whose
    /// apart leaks are no longer known is leaked, unconfirmed.
    pub fn with_known(mut self) -> Self {
        let all = std::mem::take(&mut self.leaks)
            .into_iter()
            .chain(std::mem::take(&mut self.kernel_wide));
        let Sorted {
            leaks,
            kernel_wide,
            objects,
            bytes,
        } = Sorted::by_known(all);
        (self.objects, self.bytes) = (objects, bytes);
        match self.status {
            Status::Leaked if leaks.is_empty() => {
                self.status = Status::Clean;
                self.confirmed = None;
            }
            Status::Clean if !leaks.is_empty() => self.status = Status::Leaked,
            _ => {}
        }
        self.leaks = leaks;
        self.kernel_wide = kernel_wide;
        self
    }

    /// Whether it counts against the sweep: a leak not refuted by a check
    /// of the module alone, a module that would not unload or crashed.
    pub fn fails(&self) -> bool {
        match self.status {
            Status::Leaked => self.confirmed != Some(false),
            Status::Stuck | Status::Crashed => true,
            _ => false,
        }
    }
}

/// A row's leaks sorted by the kernel's own state known
/// ([`known::kernel_wide`]), and what the module's own come to.
struct Sorted {
    leaks: Vec<SweepLeak>,
    kernel_wide: Vec<SweepLeak>,
    objects: u64,
    bytes: u64,
}

impl Sorted {
    fn by_known(all: impl IntoIterator<Item = SweepLeak>) -> Self {
        let (kernel_wide, leaks): (Vec<SweepLeak>, Vec<SweepLeak>) = all
            .into_iter()
            .map(|mut l| {
                l.reason = known::kernel_wide(&l.frames).map(String::from);
                l
            })
            .partition(|l| l.reason.is_some());
        let (objects, bytes) = leaks.iter().fold((0u64, 0u64), |(o, b), l| {
            (o.saturating_add(l.objects), b.saturating_add(l.bytes))
        });
        Self {
            leaks,
            kernel_wide,
            objects,
            bytes,
        }
    }
}

/// A line of `sweep --stream`: what a supervisor reading the machine's
/// output (leaklab's own guests, a LAVA job) keeps as it comes, one JSON
/// object a line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// First: the kernel and the detectors.
    Start {
        /// The kernel release.
        kernel: String,
        /// The detectors that judge.
        detectors: Vec<Detector>,
    },
    /// A module's row, once it is done.
    Row(Row),
}

/// A sweep saved before `protocol` was leaklab's.
fn leaklab() -> String {
    "leaklab".into()
}

/// Why `check` could not decide.
fn undecided(check: &Check) -> Option<String> {
    let t = check.trace.as_ref()?;
    let mut why = t.undecided.clone();
    if t.lost > 0 {
        why.insert(0, format!("the trace lost {} events", t.lost));
    }
    Some(why.join("; "))
        .filter(|w| !w.is_empty())
        .or_else(|| (!check.stable).then(|| "kmemleak's reports did not settle".into()))
}

/// The outcome (`--format json`: schema `leaklab.sweep/1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sweep {
    /// `leaklab.sweep/1`.
    pub schema: String,
    /// The kernel release swept.
    pub kernel: String,
    /// Load/unload cycles per module.
    pub cycles: u32,
    /// How each module was judged: `leaklab`, or `lkft` (Linaro LKFT's
    /// protocol, to compare with).
    #[serde(default = "leaklab")]
    pub protocol: String,
    /// The detectors that judged.
    pub detectors: Vec<Detector>,
    /// One row per module, in the tree's order.
    pub rows: Vec<Row>,
    /// Machines that ran at once.
    pub jobs: u32,
    /// Wall time of this run, seconds (a resumed sweep: the last part's).
    pub seconds: f64,
}

impl Sweep {
    /// Rows with this status.
    pub fn count(&self, status: Status) -> usize {
        self.rows.iter().filter(|r| r.status == status).count()
    }

    /// The modules that leaked and were not checked again alone.
    pub fn unconfirmed_leaks(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| r.status == Status::Leaked && r.confirmed.is_none())
            .map(|r| r.module.as_str())
            .collect()
    }

    /// The allocations listed apart as the kernel's own state, grouped by
    /// reason: each reason with the modules that showed it.
    pub fn kernel_wide(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.rows {
            for l in &r.kernel_wide {
                let modules = groups
                    .entry(l.reason.clone().unwrap_or_default())
                    .or_default();
                if !modules.contains(&r.module) {
                    modules.push(r.module.clone());
                }
            }
        }
        groups.into_iter().collect()
    }

    /// The leaks grouped by culprit across modules: each culprit (its
    /// title, or frame) with the modules that leaked there, most modules
    /// first. One bug in a shared helper shows once.
    pub fn by_culprit(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.rows.iter().filter(|r| r.status == Status::Leaked) {
            for l in &r.leaks {
                let key = l
                    .title
                    .clone()
                    .or_else(|| l.culprit.clone())
                    .unwrap_or_else(|| "unknown culprit".into());
                let modules = groups.entry(key).or_default();
                if !modules.contains(&r.module) {
                    modules.push(r.module.clone());
                }
            }
        }
        let mut groups: Vec<(String, Vec<String>)> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        groups
    }

    /// One test per module, `leak_<module>`: failed by a leak, a module
    /// that would not unload or crashed; skipped when it did not load or
    /// was not tried.
    pub fn tests(&self) -> Vec<Case> {
        self.rows
            .iter()
            .map(|r| {
                let name = format!("leak_{}", ktap::name(&r.module));
                let why = |w: &str| Some(format!("{w}{}", detail(r)));
                let (ok, reason) = match r.status {
                    Status::Clean => (true, None),
                    Status::DidNotLoad | Status::Skipped => (true, why("SKIP ")),
                    Status::Inconclusive => (true, why("SKIP inconclusive")),
                    _ if !r.fails() => (true, why("leak not found again alone")),
                    s => (false, why(s.word())),
                };
                Case::new(ok, name, reason).counting(r.objects)
            })
            .collect()
    }
}

/// `: DETAIL`, or nothing.
fn detail(r: &Row) -> String {
    match &r.detail {
        Some(d) if r.status == Status::DidNotLoad || r.status == Status::Skipped => d.clone(),
        Some(d) => format!(": {d}"),
        None => String::new(),
    }
}

impl Outcome for Sweep {
    /// Fails when a module leaked (unless its check alone refuted it),
    /// would not unload or crashed; inconclusive when none did but a
    /// detector could not decide on one.
    fn verdict(&self) -> Verdict {
        if self.rows.iter().any(Row::fails) {
            Verdict::Failed
        } else if self.count(Status::Inconclusive) > 0 {
            Verdict::Inconclusive
        } else {
            Verdict::Passed
        }
    }

    fn summary(&self) -> String {
        let failing: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| r.fails())
            .map(|r| r.module.as_str())
            .collect();
        let counts = format!(
            "{} module(s): {} clean, {} leaked, {} did not load, {} skipped, {} inconclusive, {} stuck, {} crashed",
            self.rows.len(),
            self.count(Status::Clean),
            self.count(Status::Leaked),
            self.count(Status::DidNotLoad),
            self.count(Status::Skipped),
            self.count(Status::Inconclusive),
            self.count(Status::Stuck),
            self.count(Status::Crashed),
        );
        match self.verdict() {
            Verdict::Passed => format!("ok: {counts}"),
            Verdict::Inconclusive => format!("INCONCLUSIVE: {counts}"),
            Verdict::Failed => format!("FAIL: {} ({counts})", failing.join(", ")),
        }
    }

    fn human(&self) -> String {
        let mut s = format!(
            "leaklab sweep of {} ({} cycle(s) a module, by {}{}; {} machine(s), {:.0} s)\n{:<28} {:<13} {:>7} {:>9} {:>7}  where / why\n",
            self.kernel,
            self.cycles,
            match self.detectors.is_empty() {
                true => "MemAvailable".to_string(),
                false => self
                    .detectors
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(" and "),
            },
            if self.protocol == "lkft" {
                ", the LKFT way"
            } else {
                ""
            },
            self.jobs,
            self.seconds,
            "module",
            "status",
            "objects",
            "bytes",
            "seconds"
        );
        for r in &self.rows {
            let confirmed = match (r.status, r.confirmed) {
                (Status::Leaked, Some(true)) => " (confirmed alone)",
                (Status::Leaked, Some(false)) => " (not found again alone)",
                _ => "",
            };
            let place = r
                .leaks
                .iter()
                .map(|l| match (&l.culprit, &l.line) {
                    (Some(c), Some(at)) => format!("{c} at {at}"),
                    (Some(c), None) => c.clone(),
                    _ => "?".into(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let why = match (&r.detail, place.is_empty()) {
                (_, false) => place,
                (Some(d), true) => d.clone(),
                (None, true) => String::new(),
            };
            s += &format!(
                "{:<28} {:<13} {:>7} {:>9} {:>7.1}  {why}{confirmed}\n",
                r.module,
                r.status.word(),
                r.objects,
                r.bytes,
                r.seconds
            );
        }
        let groups = self.by_culprit();
        if !groups.is_empty() {
            s += "leaks by culprit:\n";
            for (culprit, modules) in groups {
                s += &format!("  {culprit}: {}\n", modules.join(", "));
            }
        }
        let apart = self.kernel_wide();
        if !apart.is_empty() {
            s += "the kernel's own state, not held against the modules:\n";
            for (reason, modules) in apart {
                s += &format!("  {}: {reason}\n", modules.join(", "));
            }
        }
        s
    }

    fn ktap(&self) -> Option<String> {
        Some(ktap::document(
            &format!("leaklab sweep of {}", self.kernel),
            &self.tests(),
        ))
    }
}

#[cfg(test)]
mod tests;
