// SPDX-License-Identifier: GPL-2.0
//! A watch directory read back, for `leaklab show DIR`: the leaks found,
//! the trends of the samples in the event log (rotated files included), and
//! the plot of memory over time with the leaks marked.

use std::path::Path;

use anyhow::{Context, Result};

use super::{
    event::{self, Event, Logged},
    log,
    run::{leak_lines, leak_list, per_hour},
    state::{State, SCHEMA},
    RECENT,
};
use crate::{
    analysis::trend::{Fit, Recent},
    output::{
        plot::{Chart, Series},
        utc,
    },
};

/// What a watch directory holds.
pub struct WatchDir {
    /// The state.
    pub state: State,
    /// The events of the log, oldest first (unreadable lines skipped).
    pub events: Vec<Logged>,
    /// Lines that were not events (a line cut by a crash, say).
    pub skipped: usize,
}

/// The most rotated logs looked for.
const ROTATED_MAX: usize = 64;

impl WatchDir {
    /// Reads `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("state.json");
        anyhow::ensure!(
            path.is_file(),
            "{} holds no state.json: it is not a directory `leaklab watch --out` wrote",
            dir.display()
        );
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let state: State = serde_json::from_str(&text)
            .ok()
            .filter(|s: &State| s.schema == SCHEMA)
            .with_context(|| {
                format!("{} is not a leaklab watch state ({SCHEMA})", path.display())
            })?;
        let (mut events, mut skipped) = (Vec::new(), 0);
        for file in log::files(dir, ROTATED_MAX).iter().rev() {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for line in text.lines() {
                match serde_json::from_str::<Logged>(line) {
                    Ok(e) => events.push(e),
                    Err(_) => skipped += 1,
                }
            }
        }
        Ok(Self {
            state,
            events,
            skipped,
        })
    }

    /// The samples: (time, Slab KiB, MemAvailable KiB).
    fn samples(&self) -> impl Iterator<Item = (f64, i64, i64)> + '_ {
        self.events.iter().filter_map(|e| match e.event {
            Event::Sample {
                slab_kib,
                mem_available_kib,
                ..
            } => Some((e.time, slab_kib, mem_available_kib)),
            _ => None,
        })
    }

    /// The directory for people.
    pub fn human(&self) -> String {
        let leaks = leak_list(&self.state);
        let mut out = format!(
            "watch directory: {} rounds, {} leaks by backtrace ({} objects)\n",
            self.state.rounds,
            leaks.len(),
            leaks.iter().map(|l| l.leak.objects).sum::<u64>()
        );
        if !leaks.is_empty() {
            out += "leaks (first seen, objects, bytes, culprit):\n";
            out += &leak_lines(&leaks);
        }
        let (mut slab, mut avail) = (Fit::default(), Fit::default());
        let mut recent = Recent::new(RECENT, 0.0);
        let (mut first, mut last) = (None, None);
        for (t, s, a) in self.samples() {
            slab.add(t, s as f64 * 1024.0);
            avail.add(t, a as f64 * 1024.0);
            recent.add(t, s as f64 * 1024.0);
            first.get_or_insert(t);
            last = Some(t);
        }
        if let (Some(f), Some(l)) = (first, last) {
            out += &format!(
                "samples from {} to {}\ntrend: Slab {} over the log, {} over its last hour; MemAvailable {} over the log\n",
                utc(f),
                utc(l),
                per_hour(&slab.line()),
                per_hour(&recent.line()),
                per_hour(&avail.line())
            );
        }
        for e in &self.events {
            match &e.event {
                Event::Finding { finding, line } => {
                    out += &format!("{} kernel log: {finding}: {line}\n", utc(e.time));
                }
                Event::Trend { .. } => out += &format!("{}\n", event::human_line(e)),
                _ => {}
            }
        }
        if self.skipped > 0 {
            out += &format!(
                "{} lines of the log were not events (skipped)\n",
                self.skipped
            );
        }
        out
    }

    /// Slab and MemAvailable, MiB since the first sample, over minutes; the
    /// leaks marked when they were found.
    pub fn chart(&self) -> Chart {
        let first = self.samples().next();
        let t0 = first.map_or(0.0, |f| f.0);
        let minutes = |t: f64| (t - t0) / 60.0;
        let curve = |pick: fn(&(f64, i64, i64)) -> i64| -> Vec<(f64, f64)> {
            let base = first.as_ref().map_or(0, pick);
            self.samples()
                .map(|s| (minutes(s.0), (pick(&s) - base) as f64 / 1024.0))
                .collect()
        };
        Chart {
            title: "leaklab watch: memory change over time".into(),
            x_label: "minutes".into(),
            y_label: "MiB since the first sample".into(),
            series: vec![
                Series {
                    label: "Slab".into(),
                    points: curve(|s| s.1),
                    colour: (31, 119, 180),
                    dashed: false,
                },
                Series {
                    label: "MemAvailable".into(),
                    points: curve(|s| s.2),
                    colour: (44, 160, 44),
                    dashed: true,
                },
            ],
            marks: self
                .events
                .iter()
                .filter(|e| matches!(e.event, Event::Leak { .. }))
                .map(|e| minutes(e.time))
                .collect(),
            marks_label: "leak found".into(),
        }
    }
}
