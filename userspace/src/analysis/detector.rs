// SPDX-License-Identifier: GPL-2.0
//! The leak detectors a run can be judged by.

use serde::{Deserialize, Serialize};

/// A leak detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
}
