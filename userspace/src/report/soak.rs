// SPDX-License-Identifier: GPL-2.0
//! The document of `soak` ([`SoakRun`]): memory sampled over many cycles,
//! the bounds it is judged by, its text and its plot.

use serde::{Deserialize, Serialize};

use crate::output::{
    plot::{Chart, Series},
    Outcome, Verdict,
};

/// A soak written before `leaky_runs` ran the leaky pattern once a cycle.
fn one() -> u32 {
    1
}

/// One memory sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// Cycles done.
    pub cycle: u32,
    /// Seconds since the start.
    pub seconds: f64,
    /// MemAvailable, KiB.
    pub mem_available_kib: i64,
    /// Slab, KiB.
    pub slab_kib: i64,
    /// Objects kmemleak tracks (its `kmemleak_object` cache's active
    /// objects: one per live allocation, leaked ones included).
    pub tracked_objects: i64,
}

/// The outcome (`--format json`: schema `leaklab.soak/1`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SoakRun {
    /// `leaklab.soak/1`.
    pub schema: String,
    /// Cycles run.
    pub cycles: u32,
    /// The leaky pattern run each cycle, if any.
    pub leaky: Option<String>,
    /// Runs of the leaky pattern a cycle.
    #[serde(default = "one")]
    pub leaky_runs: u32,
    /// Bytes a cycle's leaky runs leak, as the module states (0 without
    /// one).
    pub leak_per_cycle: u64,
    /// The samples, first before any cycle.
    pub samples: Vec<Sample>,
    /// Objects kmemleak reported at the end.
    pub reported: u64,
    /// Objects the module says it leaked over the soak.
    pub leaked: u64,
    /// Least-squares slope of Slab over cycles, bytes a cycle.
    pub slab_slope: f64,
    /// Least-squares slope of MemAvailable over cycles, bytes a cycle
    /// (negative: memory going away).
    pub available_slope: f64,
    /// Bytes of one `kmemleak_object`, kmemleak's record of an allocation.
    pub tracker_object_size: u64,
    /// Least-squares slope of the objects kmemleak tracks, a cycle.
    pub tracked_slope: f64,
    /// Slab's slope less kmemleak's own records of the leaked objects:
    /// what the leak itself costs, bytes a cycle.
    pub leak_slope: f64,
    /// Slab at the end minus at the start, KiB.
    pub slab_drift_kib: i64,
    /// MemAvailable at the end minus at the start, KiB.
    pub available_drift_kib: i64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Whether kmemleak's set settled at the end (two scans agreed).
    pub stable: bool,
    /// The bounds not met ([`bounds`]); empty when the soak passed.
    pub problems: Vec<String>,
}

/// The fixed soak's bound on memory drift: |Slab drift| and the loss of
/// MemAvailable over the whole soak, KiB.
pub const DRIFT_KIB: i64 = 1024;
/// The leaky soak's bound: the leak's slope within this share of the rate
/// the module states.
pub const SLOPE_TOLERANCE: f64 = 0.25;

/// The soak's bounds, checked: with the fixed variants only, kmemleak
/// reports nothing and memory drifts at most [`DRIFT_KIB`]; with a leaky
/// sample, every leaked object is reported and the leak grows at the stated
/// rate, within [`SLOPE_TOLERANCE`].
pub fn bounds(r: &SoakRun) -> Vec<String> {
    let mut problems = Vec::new();
    if r.leaky.is_none() {
        if r.reported != 0 {
            problems.push(format!("kmemleak reported {} objects", r.reported));
        }
        if r.slab_drift_kib.abs() > DRIFT_KIB || r.available_drift_kib < -DRIFT_KIB {
            problems.push(format!(
                "memory drifted beyond {DRIFT_KIB} KiB (Slab {:+} KiB, MemAvailable {:+} KiB)",
                r.slab_drift_kib, r.available_drift_kib
            ));
        }
    } else {
        if r.reported != r.leaked {
            problems.push(format!(
                "kmemleak reported {} of {} leaked objects",
                r.reported, r.leaked
            ));
        }
        let rate = r.leak_per_cycle as f64;
        // Slab also holds kmemleak's own record of each leaked object: the
        // leak's slope is Slab's less those records.
        if (r.leak_slope - rate).abs() > SLOPE_TOLERANCE * rate {
            problems.push(format!(
                "the leak grew {:.0} bytes a cycle, the module states {}",
                r.leak_slope, r.leak_per_cycle
            ));
        }
    }
    problems
}

impl Outcome for SoakRun {
    /// Passes within its [`bounds`]; inconclusive when kmemleak's set did
    /// not settle.
    fn verdict(&self) -> Verdict {
        match self.stable {
            false => Verdict::Inconclusive,
            true => Verdict::of(self.problems.is_empty()),
        }
    }

    /// The human summary.
    fn human(&self) -> String {
        format!(
            "soak: {} cycles in {:.0} s{}\n  kmemleak reported {} object(s); the module leaked {}\n  Slab: {:+} KiB ({:+.1} bytes a cycle, {:+.1} without kmemleak's records); MemAvailable: {:+} KiB ({:+.1} bytes a cycle)\n",
            self.cycles,
            self.seconds,
            self.leaky.as_deref().map_or(String::new(), |p| format!(
                ", {p} leaky {} a cycle ({} bytes)",
                match self.leaky_runs {
                    1 => "once".to_string(),
                    n => format!("{n} times"),
                },
                self.leak_per_cycle
            )),
            self.reported,
            self.leaked,
            self.slab_drift_kib,
            self.slab_slope,
            self.leak_slope,
            self.available_drift_kib,
            self.available_slope,
        ) + &self
            .problems
            .iter()
            .map(|p| format!("  bound not met: {p}\n"))
            .collect::<String>()
    }
}

/// Colours of the runs, in order.
const COLOURS: [(u8, u8, u8); 4] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
];

/// A run's name: its leaky pattern, or "fixed".
pub fn name(run: &SoakRun) -> String {
    run.leaky
        .as_deref()
        .map_or("fixed".into(), |p| format!("{p} leaky"))
}

/// Slab and MemAvailable of each soak run, MiB since its first sample, over
/// cycles.
pub fn chart(runs: &[SoakRun]) -> Chart {
    let mut series = Vec::new();
    for (run, colour) in runs.iter().zip(COLOURS.iter().cycle()) {
        let Some(first) = run.samples.first() else {
            continue;
        };
        let curve = |field: fn(&Sample) -> i64| {
            run.samples
                .iter()
                .map(|s| {
                    let kib = field(s).saturating_sub(field(first));
                    (f64::from(s.cycle), kib as f64 / 1024.0)
                })
                .collect()
        };
        series.push(Series {
            label: format!("{}: Slab", name(run)),
            points: curve(|s| s.slab_kib),
            colour: *colour,
            dashed: false,
        });
        series.push(Series {
            label: format!("{}: MemAvailable", name(run)),
            points: curve(|s| s.mem_available_kib),
            colour: *colour,
            dashed: true,
        });
    }
    Chart {
        title: "leaklab soak: memory change over cycles".into(),
        x_label: "cycles".into(),
        y_label: "MiB since start".into(),
        series,
        marks: Vec::new(),
        marks_label: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soak(leaky: Option<&str>) -> SoakRun {
        SoakRun {
            schema: "leaklab.soak/1".into(),
            cycles: 1000,
            leaky: leaky.map(str::to_string),
            leaky_runs: 1,
            leak_per_cycle: if leaky.is_some() { 256 } else { 0 },
            samples: Vec::new(),
            reported: 0,
            leaked: 0,
            slab_slope: 0.0,
            available_slope: 0.0,
            tracker_object_size: 168,
            tracked_slope: 0.0,
            leak_slope: 0.0,
            slab_drift_kib: 272,
            available_drift_kib: -500,
            seconds: 100.0,
            stable: true,
            problems: Vec::new(),
        }
    }

    #[test]
    fn the_soak_bounds_pass_and_fail() {
        // Fixed: as measured (Slab +272 KiB, nothing reported).
        assert!(bounds(&soak(None)).is_empty());
        let mut r = soak(None);
        r.reported = 1;
        assert!(bounds(&r)[0].contains("reported 1"));
        let mut r = soak(None);
        r.slab_drift_kib = 2048;
        assert!(bounds(&r)[0].contains("drifted"));
        let mut r = soak(None);
        r.available_drift_kib = -2048;
        assert_eq!(bounds(&r).len(), 1);
        // Leaky: every object reported, the slope within 25% of 256.
        let mut r = soak(Some("error_path"));
        (r.reported, r.leaked, r.leak_slope) = (1000, 1000, 295.0);
        assert!(bounds(&r).is_empty());
        r.leak_slope = 330.0;
        assert!(bounds(&r)[0].contains("grew 330"));
        r.leak_slope = 256.0;
        r.reported = 999;
        assert!(bounds(&r)[0].contains("999 of 1000"));
        // Not settled: inconclusive whatever the bounds say.
        let mut r = soak(None);
        r.stable = false;
        assert_eq!(r.verdict(), Verdict::Inconclusive);
        r.stable = true;
        r.problems = bounds(&r);
        assert_eq!(r.verdict(), Verdict::Passed);
    }
}
