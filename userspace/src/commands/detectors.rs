//! Which leak detectors judge a run: kmemleak, the allocation trace over
//! tracefs, or both (the default: every one this kernel has).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::{kmemleak::Kmemleak, trace::tracer};

/// A leak detector.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    /// kmemleak: scans memory for objects nothing points to.
    Kmemleak,
    /// Allocation tracing over tracefs: what the module allocated and did
    /// not free by the time it was gone.
    Trace,
}

impl Detector {
    /// Its name in tables and reasons.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Kmemleak => "kmemleak",
            Detector::Trace => "trace",
        }
    }

    /// Whether this kernel has it; `Err` says why not and what to do.
    pub fn supported(self) -> Result<()> {
        match self {
            Detector::Kmemleak => Kmemleak::open().map(|_| ()),
            Detector::Trace => tracer::supported(),
        }
    }
}

/// `--detector` and `--trace-buffer-kb`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DetectorArgs {
    /// A detector to judge by (repeatable; default: every one this kernel
    /// supports: kmemleak with CONFIG_DEBUG_KMEMLEAK, trace with tracefs).
    #[arg(long = "detector", value_enum)]
    pub detectors: Vec<Detector>,
    /// The allocation trace's ring buffer per CPU, in KiB (default: 8 MiB,
    /// or the kernel's own for a trace instance when larger): events lost
    /// to a full buffer make the run inconclusive.
    #[arg(long, value_name = "KIB")]
    pub trace_buffer_kb: Option<u64>,
}

/// The detectors of a run, each checked to work on this kernel.
#[derive(Debug, Clone)]
pub struct Detectors {
    /// kmemleak, when it judges.
    pub kmemleak: Option<Kmemleak>,
    /// When tracing judges: the trace buffer size per CPU (KiB; `None`:
    /// the kernel's own, [`tracer::Tracer::start`]).
    pub trace: Option<Option<u64>>,
}

impl Detectors {
    /// The detectors asked for, or all this kernel has; fails when one asked
    /// for is missing, or none is there.
    pub fn resolve(args: &DetectorArgs) -> Result<Self> {
        anyhow::ensure!(
            args.trace_buffer_kb != Some(0),
            "--trace-buffer-kb must be at least 1"
        );
        let mut chosen = args.detectors.clone();
        chosen.sort();
        chosen.dedup();
        if chosen.is_empty() {
            chosen = [Detector::Kmemleak, Detector::Trace]
                .into_iter()
                .filter(|d| d.supported().is_ok())
                .collect();
            if chosen.is_empty() {
                bail!(
                    "no leak detector on this kernel: it has neither kmemleak (CONFIG_DEBUG_KMEMLEAK) nor tracefs events (CONFIG_TRACING): see leaklab doctor"
                );
            }
        }
        let mut d = Self {
            kmemleak: None,
            trace: None,
        };
        for c in chosen {
            match c {
                Detector::Kmemleak => d.kmemleak = Some(Kmemleak::open()?),
                // Checked when the tracer starts, before anything is loaded.
                Detector::Trace => d.trace = Some(args.trace_buffer_kb),
            }
        }
        Ok(d)
    }

    /// Which they are, in order.
    pub fn chosen(&self) -> Vec<Detector> {
        let mut v = Vec::new();
        if self.kmemleak.is_some() {
            v.push(Detector::Kmemleak);
        }
        if self.trace.is_some() {
            v.push(Detector::Trace);
        }
        v
    }
}
