//! `leaklab patterns` and `leaklab trigger`: the loaded module's catalogue,
//! and running a sample by hand.

use anyhow::Result;
use serde::Serialize;

use crate::{
    ko::{Control, PatternInfo, StatRecord, Variant},
    output::{Outcome, Verdict},
    trace::tracer::Tracer,
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
    /// Events the allocation trace read, and lost, when it ran.
    traced: Option<(u64, u64)>,
}

impl Serialize for Triggered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.stats.serialize(s)
    }
}

/// Runs `variant` of `pattern` `runs` times in the loaded module; with
/// `trace`, under the allocation trace, as a leak check would run it (what
/// it costs: `make bench`).
pub fn trigger(pattern: &str, variant: Variant, runs: u32, trace: bool) -> Result<Triggered> {
    let ctl = Control::open()?;
    let tracer = trace.then(|| Tracer::start(None)).transpose()?;
    ctl.trigger(pattern, variant, runs)?;
    let traced = match tracer {
        Some(t) => {
            let t = t.finish()?;
            Some((t.events, t.lost))
        }
        None => None,
    };
    let stats = ctl
        .stats()?
        .into_iter()
        .find(|s| s.pattern == pattern && s.variant == variant);
    Ok(Triggered {
        stats,
        runs,
        traced,
    })
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
