//! `leaklab patterns` and `leaklab trigger`: the loaded module's catalogue,
//! and running a sample by hand.

use anyhow::Result;
use serde::Serialize;

use crate::{
    ko::{Control, PatternInfo, StatRecord, Variant},
    output::{Outcome, Verdict},
};

/// The catalogue (JSON: the list of patterns).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Patterns(Vec<PatternInfo>);

/// The loaded module's catalogue.
pub fn patterns() -> Result<Patterns> {
    Ok(Patterns(Control::open()?.patterns()?))
}

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
    stats: Option<StatRecord>,
    runs: u32,
}

impl Serialize for Triggered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.stats.serialize(s)
    }
}

/// Runs `variant` of `pattern` `runs` times in the loaded module.
pub fn trigger(pattern: &str, variant: Variant, runs: u32) -> Result<Triggered> {
    let ctl = Control::open()?;
    ctl.trigger(pattern, variant, runs)?;
    let stats = ctl
        .stats()?
        .into_iter()
        .find(|s| s.pattern == pattern && s.variant == variant);
    Ok(Triggered { stats, runs })
}

impl Outcome for Triggered {
    fn verdict(&self) -> Verdict {
        Verdict::Passed
    }

    fn human(&self) -> String {
        self.stats.as_ref().map_or(String::new(), |s| {
            format!(
                "{} {}: {} run(s); totals: runs={} leaked={} ({} bytes)\n",
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
