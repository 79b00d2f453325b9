// SPDX-License-Identifier: GPL-2.0
//! Which leak detectors judge a run: kmemleak, the allocation trace over
//! tracefs, or both (the default: every one this kernel has).

pub use crate::analysis::detector::Detector;
use crate::{kmemleak::Kmemleak, trace::tracer};
use anyhow::{bail, Result};

/// Whether this kernel has `detector`; `Err` says why not and what to do.
pub fn supported(detector: Detector) -> Result<()> {
    match detector {
        Detector::Kmemleak => Kmemleak::open().map(|_| ()),
        Detector::Trace => tracer::supported(),
    }
}

/// The detectors asked for (none: every one this kernel has) and the
/// trace's ring buffer per CPU in KiB (`None`: the default).
#[derive(Debug, Clone, Default)]
pub struct DetectorChoice {
    /// The detectors to judge by; empty for all this kernel supports.
    pub detectors: Vec<Detector>,
    /// The trace's buffer per CPU, KiB.
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
    pub fn resolve(args: &DetectorChoice) -> Result<Self> {
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
                .filter(|d| supported(*d).is_ok())
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
