// SPDX-License-Identifier: GPL-2.0
//! The document of `parse` and `scan` ([`Grouped`]): kmemleak's reports
//! grouped by backtrace, for people and machines.

use anyhow::Result;
use serde::Serialize;

use crate::{
    analysis::{
        group::{self, Group},
        symbolize::Symbolizer,
    },
    kmemleak::report::Report,
    output::{Outcome, Verdict},
};

/// Reports grouped by backtrace, for people and machines.
pub struct Grouped {
    /// The JSON document: the caller's head fields, `reports` and `groups`.
    json: serde_json::Value,
    count: usize,
    garbled: usize,
    groups: Vec<Group>,
    /// kmemleak's set settled (a saved file's always counts as settled).
    settled: bool,
    /// The suspected leaks the input's kernel log announced
    /// (`kmemleak: N new suspected memory leaks`; `parse` only).
    announced: u64,
}

impl Serialize for Grouped {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

impl Grouped {
    /// `count` reports (of which `reports` are kept for JSON) as `groups`,
    /// with `head`'s fields first in the JSON.
    pub fn new(
        reports: &[Report],
        count: usize,
        garbled: usize,
        groups: Vec<Group>,
        mut head: serde_json::Value,
    ) -> Result<Self> {
        head["reports"] = serde_json::to_value(reports)?;
        head["groups"] = serde_json::to_value(&groups)?;
        Ok(Self {
            json: head,
            count,
            garbled,
            groups,
            settled: true,
            announced: 0,
        })
    }

    /// The same, from a log that announced `announced` suspected leaks
    /// (JSON: `announced`, when there were any).
    pub fn announcing(mut self, announced: u64) -> Self {
        if announced > 0 {
            self.json["announced"] = announced.into();
        }
        Self { announced, ..self }
    }

    /// Whether the log announced more leaks than it holds reports of
    /// (a log of a kernel booted without `kmemleak.verbose=1`).
    fn missing_reports(&self) -> bool {
        self.announced > self.count as u64
    }

    /// What to say of a log that announced leaks it does not hold.
    fn missing_note(&self) -> String {
        let held = match self.count {
            0 => "no reports".to_string(),
            k => format!("only {k} report(s)"),
        };
        format!(
            "the log announces {} suspected leak(s) but holds {held}: boot with kmemleak.verbose=1 or read /sys/kernel/debug/kmemleak (leaklab scan)",
            self.announced
        )
    }

    /// `reports`, from a scan whose set `settled` or not, grouped with `sym`.
    pub fn of(
        reports: &[Report],
        sym: &Symbolizer,
        head: serde_json::Value,
        settled: bool,
    ) -> Result<Self> {
        let groups = group::group(reports, sym);
        let garbled = reports.iter().filter(|r| r.garbled).count();
        let grouped = Self::new(reports, reports.len(), garbled, groups, head)?;
        Ok(Self { settled, ..grouped })
    }
}

impl Outcome for Grouped {
    /// Fails when there are reports; inconclusive when kmemleak's set was
    /// still changing (`scan`), or when a log announces suspected leaks
    /// and holds none of their reports (`parse`).
    ///
    /// The latter is not a pass, since kmemleak did suspect leaks, and not
    /// a failure either: kmemleak reports an object that it later finds
    /// referenced again no more (its file drops it), so an announcement
    /// alone is no leak the tool can show, and nothing in the log says
    /// what or where it was. The answer is elsewhere (the reports, from
    /// `kmemleak.verbose=1` or the kmemleak file), as for an unsettled
    /// scan: exit 3. A log that holds some of its reports fails on those.
    fn verdict(&self) -> Verdict {
        if !self.settled || (self.count == 0 && self.missing_reports()) {
            return Verdict::Inconclusive;
        }
        Verdict::of(self.count == 0)
    }

    fn summary(&self) -> String {
        if !self.settled {
            return "INCONCLUSIVE: kmemleak's reports were still changing when the scans ran out: run it again".into();
        }
        if self.count == 0 && self.missing_reports() {
            return format!("INCONCLUSIVE: {}", self.missing_note());
        }
        match self.count {
            0 => "ok: no reports".into(),
            n => format!("FAIL: {n} suspected leak(s) reported"),
        }
    }

    fn human(&self) -> String {
        let mut s = format!(
            "{} reports in {} groups{}\n",
            self.count,
            self.groups.len(),
            if self.garbled > 0 {
                format!(" ({} cut short or garbled)", self.garbled)
            } else {
                String::new()
            }
        );
        if self.missing_reports() {
            s += &format!("note: {}\n", self.missing_note());
        }
        for g in &self.groups {
            let bare = g.culprit.as_deref().is_some_and(|c| c.starts_with("0x"));
            let owner = g
                .sample
                .clone()
                .or_else(|| g.module.clone())
                .unwrap_or_else(|| {
                    // A bare address is a module's frame the kernel could
                    // not name: the module was unloaded, or it is still
                    // loaded and the frame is in its init code, freed once
                    // init returned.
                    if bare {
                        "a module's frames without symbols (parse --ko/--sections name them)".into()
                    } else {
                        "kernel".into()
                    }
                });
            s += &format!(
                "\n{} x, {} bytes, {owner}: {}{}\n",
                g.count,
                g.bytes,
                g.culprit.as_deref().unwrap_or("?"),
                g.culprit_line
                    .as_ref()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default()
            );
            for f in &g.frames {
                s += &format!("      {f}\n");
            }
        }
        s += &format!("note: {}\n", crate::kmemleak::BLIND_SPOTS);
        s
    }
}
