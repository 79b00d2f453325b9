// SPDX-License-Identifier: GPL-2.0
//! What a watch found: the run's document (`leaklab.watch/1`), its leaks
//! and trends, and how they read for people.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{Leak, State};
use crate::{
    analysis::{findings::FindingKind, trend::Line},
    output::{utc, Outcome, Verdict},
};

/// What the watch found (`--format json`: schema `leaklab.watch/1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchRun {
    /// `leaklab.watch/1`.
    pub schema: String,
    /// The directory.
    pub dir: String,
    /// Rounds this run.
    pub rounds: u64,
    /// Rounds over every run on the directory.
    pub rounds_total: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Objects reported this run for the first time.
    pub new_objects: u64,
    /// Every leak found on the directory, by backtrace, the first found
    /// first.
    pub leaks: Vec<LeakSummary>,
    /// Notable kernel log lines this run, by kind.
    pub findings: BTreeMap<String, u64>,
    /// Slab and MemAvailable over the run and the last hour, bytes a second.
    pub trends: Trends,
    /// Warnings: Slab growing while kmemleak is silent.
    pub warnings: Vec<String>,
    /// Rounds that failed, writes that failed, samples given up.
    pub errors: Health,
    /// Why it stopped.
    pub stopped_by: String,
}

/// A leak in the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeakSummary {
    /// The backtrace's fingerprint.
    pub fingerprint: String,
    /// What is known of it.
    #[serde(flatten)]
    pub leak: Leak,
}

/// The slopes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trends {
    /// Slab over the whole run.
    pub slab: Line,
    /// MemAvailable over the whole run.
    pub mem_available: Line,
    /// Slab over the last hour.
    pub slab_recent: Line,
    /// MemAvailable over the last hour.
    pub mem_available_recent: Line,
}

/// The watch's own troubles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    /// Rounds whose kmemleak scan failed.
    pub kmemleak: u64,
    /// Failed writes of the event log, the state or the textfile.
    pub writes: u64,
    /// Samples given up while the event log could not be written.
    pub dropped_samples: u64,
}

/// The leaks of a state, the first found first.
pub fn leak_list(state: &State) -> Vec<LeakSummary> {
    let mut v: Vec<LeakSummary> = state
        .leaks
        .iter()
        .map(|(f, l)| LeakSummary {
            fingerprint: f.clone(),
            leak: l.clone(),
        })
        .collect();
    v.sort_by(|a, b| a.leak.first_seen.total_cmp(&b.leak.first_seen));
    v
}

/// A slope in bytes a second as KiB an hour, signed.
pub fn per_hour(l: &Line) -> String {
    format!("{:+.0} KiB/h (r² {:.2})", l.slope * 3600.0 / 1024.0, l.r2)
}

/// The leaks as lines for people.
pub fn leak_lines(leaks: &[LeakSummary]) -> String {
    leaks
        .iter()
        .map(|l| {
            format!(
                "  {}  {:>5} objects {:>8} bytes  {}{}{}\n",
                utc(l.leak.first_seen),
                l.leak.objects,
                l.leak.bytes,
                l.leak.culprit.as_deref().unwrap_or("?"),
                l.leak
                    .module
                    .as_deref()
                    .map_or(String::new(), |m| format!(" [{m}]")),
                l.leak
                    .culprit_line
                    .as_deref()
                    .map_or(String::new(), |s| format!(" at {s}")),
            )
        })
        .collect()
}

impl Outcome for WatchRun {
    /// Failed when this run found new leaks or the kernel warned, oopsed or
    /// hit a BUG.
    fn verdict(&self) -> Verdict {
        let kernel = self
            .findings
            .keys()
            .any(|k| k != FindingKind::Kmemleak.name());
        Verdict::of(self.new_objects == 0 && !kernel)
    }

    fn human(&self) -> String {
        let mut out = format!(
            "watch: {} rounds in {:.0} s, stopped by {} ({} rounds on {} in all); {} new objects reported\n",
            self.rounds, self.seconds, self.stopped_by, self.rounds_total, self.dir, self.new_objects
        );
        if !self.leaks.is_empty() {
            out += "leaks found there (first seen, objects, bytes, culprit):\n";
            out += &leak_lines(&self.leaks);
        }
        out += &format!(
            "trend: Slab {} over the run, {} over the last hour; MemAvailable {} over the run\n",
            per_hour(&self.trends.slab),
            per_hour(&self.trends.slab_recent),
            per_hour(&self.trends.mem_available)
        );
        for (k, n) in &self.findings {
            out += &format!("kernel log: {n} {k} line(s)\n");
        }
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        let e = &self.errors;
        if e.kmemleak + e.writes + e.dropped_samples > 0 {
            out += &format!(
                "health: {} failed kmemleak rounds, {} failed writes, {} samples given up\n",
                e.kmemleak, e.writes, e.dropped_samples
            );
        }
        out
    }
}
