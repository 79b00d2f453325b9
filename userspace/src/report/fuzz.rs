// SPDX-License-Identifier: GPL-2.0
//! The document of `fuzz` ([`FuzzRun`]) and its rendering.

use serde::{Deserialize, Serialize};

use super::judgement::Judgement;
use crate::output::{Outcome, Verdict};

/// The outcome (`--format json`: schema `leaklab.fuzz/1`).
#[derive(Debug, Serialize, Deserialize)]
pub struct FuzzRun {
    /// `leaklab.fuzz/1`.
    pub schema: String,
    /// The seed.
    pub seed: u64,
    /// Control files fuzzed.
    pub files: usize,
    /// Writes made.
    pub writes: u64,
    /// Writes outside the contract, each refused with an error.
    pub refused: u64,
    /// Writes outside the contract that were accepted (must be none).
    pub accepted_bad: Vec<String>,
    /// Reads made (odd offsets and sizes).
    pub reads: u64,
    /// Reads that failed (must be none).
    pub failed_reads: Vec<String>,
    /// What kmemleak and the kernel log said.
    #[serde(flatten)]
    pub judgement: Judgement,
    /// All of the above as required.
    pub ok: bool,
}

impl Outcome for FuzzRun {
    fn verdict(&self) -> Verdict {
        self.judgement.verdict(self.ok)
    }

    /// The human summary: figures, then each problem on a line.
    fn human(&self) -> String {
        let mut out = format!(
            "fuzz (seed {}): {} files, {} writes ({} outside the contract, all refused: {}), {} odd reads\n",
            self.seed,
            self.files,
            self.writes,
            self.refused + self.accepted_bad.len() as u64,
            if self.accepted_bad.is_empty() { "yes" } else { "NO" },
            self.reads
        );
        for a in &self.accepted_bad {
            out += &format!("  accepted: {a}\n");
        }
        for r in &self.failed_reads {
            out += &format!("  read failed: {r}\n");
        }
        out += &self.judgement.human();
        out
    }
}
