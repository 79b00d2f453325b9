// SPDX-License-Identifier: GPL-2.0
//! The document of `faults` ([`FaultRun`]) and its rendering.

use serde::{Deserialize, Serialize};

use super::judgement::Judgement;
use crate::output::{Outcome, Verdict};

/// One sample under injected failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Injection {
    /// The pattern.
    pub pattern: String,
    /// `leaky` or `fixed`.
    pub variant: String,
    /// Failure points reached in a sweep (the most of any sweep): runs in
    /// which the injected failure fired.
    pub points: u32,
    /// Sweeps made: more than one when a sweep had no run fail. The points
    /// before a sample's own allocation are not always the same (a new slab
    /// page for the allocations before it is a point of its own, when one
    /// is needed), so a sweep can step over the sample's allocation.
    pub sweeps: u32,
    /// Runs, over all sweeps, whose write returned an error (the rest
    /// absorbed the failure: the module's own best-effort allocations,
    /// kmemleak's metadata, the driver core).
    pub errors: u64,
    /// The errors, by name, once each.
    pub errnos: Vec<String>,
    /// Runs the module counted as failed in `stats` meanwhile (must equal
    /// `errors`).
    pub failed_runs: u64,
    /// A run got past every allocation (the count of points is complete).
    pub complete: bool,
}

/// The outcome (`--format json`: schema `leaklab.faults/1`).
#[derive(Debug, Serialize, Deserialize)]
pub struct FaultRun {
    /// `leaklab.faults/1`.
    pub schema: String,
    /// The guest's MemTotal in MiB.
    pub memory_mib: u64,
    /// Each sample under injected failures.
    pub injected: Vec<Injection>,
    /// The leak cap in bytes.
    pub cap_bytes: u64,
    /// Bytes the leaky runs leaked, by the module's count, at the end.
    pub leaked_bytes: u64,
    /// Leaky runs made before every pattern was refused.
    pub leaky_runs: u64,
    /// After the cap, a run of every pattern was refused with ENOSPC and the
    /// leaked bytes did not move.
    pub cap_held: bool,
    /// What kmemleak and the kernel log said.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// All as required.
    pub ok: bool,
}

impl Outcome for FaultRun {
    fn verdict(&self) -> Verdict {
        self.judgement.verdict(self.ok)
    }

    /// The human summary: a line per sample, the cap, then each problem.
    fn human(&self) -> String {
        let mut out = format!(
            "faults ({} MiB guest): each allocation of each sample failed in turn\n",
            self.memory_mib
        );
        for i in &self.injected {
            out += &format!(
                "  {:<18} {:<6} {:>3} failure point(s){}{}: {} refused ({}), {} counted failed\n",
                i.pattern,
                i.variant,
                i.points,
                if i.complete { "" } else { " (NOT all reached)" },
                if i.sweeps > 1 {
                    format!(" in {} sweeps", i.sweeps)
                } else {
                    String::new()
                },
                i.errors,
                i.errnos.join(" "),
                i.failed_runs,
            );
        }
        out += &format!(
            "leak cap {} bytes: {} leaky runs leaked {} bytes; then every run refused (ENOSPC) and nothing more leaked: {}\n",
            self.cap_bytes,
            self.leaky_runs,
            self.leaked_bytes,
            if self.cap_held { "yes" } else { "NO" }
        );
        out += &self.judgement.human();
        out
    }
}
