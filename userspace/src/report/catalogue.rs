// SPDX-License-Identifier: GPL-2.0
//! The documents of `patterns` ([`Patterns`]: the loaded module's
//! catalogue) and `trigger` ([`Triggered`]).

use serde::Serialize;

use crate::{
    ko::{PatternInfo, StatRecord},
    output::{Outcome, Verdict},
};

/// The catalogue (JSON: the list of patterns).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Patterns(pub Vec<PatternInfo>);

impl Outcome for Patterns {
    fn verdict(&self) -> Verdict {
        Verdict::Passed
    }

    fn human(&self) -> String {
        let mut s = format!("{:<18} {:>7} {:>7}  leaks\n", "pattern", "objects", "bytes");
        for p in &self.0 {
            s += &format!(
                "{:<18} {:>7} {:>7}  {}\n    {}\n",
                p.name,
                p.objects,
                p.bytes,
                if p.grows {
                    "grows while loaded"
                } else if !p.kmemleak {
                    "at once, unseen by kmemleak"
                } else if p.after_unload {
                    "after rmmod"
                } else {
                    "at once"
                },
                p.description
            );
        }
        s
    }
}

/// What a trigger did (JSON: the pattern's stats record after it, or null).
pub struct Triggered {
    /// The pattern's stats record after the runs, if it has one.
    pub stats: Option<StatRecord>,
    /// The runs made.
    pub runs: u32,
    /// Events the allocation trace read, and lost, when it ran.
    pub traced: Option<(u64, u64)>,
}

impl Serialize for Triggered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.stats.serialize(s)
    }
}

impl Outcome for Triggered {
    fn verdict(&self) -> Verdict {
        Verdict::Passed
    }

    fn human(&self) -> String {
        let traced = self.traced.map_or(String::new(), |(events, lost)| {
            format!("; traced {events} events, {lost} lost")
        });
        self.stats.as_ref().map_or(String::new(), |s| {
            format!(
                "{} {}: {} run(s); totals: runs={} leaked={} ({} bytes){traced}\n",
                s.pattern,
                s.variant.name(),
                self.runs,
                s.runs,
                s.leaked,
                s.leaked_bytes
            )
        })
    }
}
