//! The doctor's document: its checks as they are made, each detector's
//! canary, and the whole diagnosis.

use serde::{Deserialize, Serialize};

use crate::analysis::detector::Detector;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but results may suffer: the detail says how.
    Warn,
    /// leaklab cannot work here until this is fixed.
    Fail,
    /// Not checked, because an earlier check failed.
    Skip,
}

/// One line of the diagnosis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, when it is not ok.
    pub fix: Option<String>,
}

/// What the canary found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Canary {
    /// The detector it proved.
    #[serde(default = "kmemleak")]
    pub detector: Detector,
    /// The sample it ran.
    pub pattern: String,
    /// Objects one leaky run leaks, as the module states.
    pub expected: u64,
    /// Objects the detector found for the leaky run.
    pub found_leaky: u64,
    /// Objects the detector found for the fixed run (must be 0).
    pub found_fixed: u64,
    /// The culprit's source line, as symbolized.
    pub culprit_line: Option<String>,
    /// Wall time of the whole canary, in seconds.
    pub seconds: f64,
}

/// The whole diagnosis (`--format json`: schema `leaklab.doctor/1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diagnosis {
    /// `leaklab.doctor/1`.
    pub schema: String,
    /// The running kernel's release.
    pub kernel: String,
    /// `uname -m`.
    pub machine: String,
    /// The board, from the device tree or DMI.
    pub board: Option<String>,
    /// The CPUs, e.g. `4x Cortex-A76 + 4x Cortex-A55`.
    pub cpu: Option<String>,
    /// MemTotal in MiB.
    pub memory_mib: u64,
    /// Seconds one kmemleak scan took (the cost of every scan leaklab runs).
    pub scan_seconds: Option<f64>,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The first detector's canary, when it ran.
    pub canary: Option<Canary>,
    /// The canary of every detector this kernel has, in order.
    #[serde(default)]
    pub canaries: Vec<Canary>,
    /// No check failed.
    pub ok: bool,
}

/// The detector of a canary saved before there was a choice.
fn kmemleak() -> Detector {
    Detector::Kmemleak
}

/// The name of `detector`'s canary check.
pub(super) fn canary_check(detector: Detector) -> String {
    format!("canary ({})", detector.name())
}

/// Collects the checks as they are made.
#[derive(Default)]
pub(super) struct Checks(pub(super) Vec<Check>);

impl Checks {
    pub(super) fn push(
        &mut self,
        name: &str,
        status: Status,
        detail: String,
        fix: Option<String>,
    ) -> Status {
        self.0.push(Check {
            name: name.into(),
            status,
            detail,
            fix,
        });
        status
    }

    pub(super) fn ok(&mut self, name: &str, detail: String) -> Status {
        self.push(name, Status::Ok, detail, None)
    }

    pub(super) fn warn(&mut self, name: &str, detail: String, fix: &str) -> Status {
        self.push(name, Status::Warn, detail, Some(fix.into()))
    }

    pub(super) fn fail(&mut self, name: &str, detail: String, fix: &str) -> Status {
        self.push(name, Status::Fail, detail, Some(fix.into()))
    }

    pub(super) fn skip(&mut self, name: &str, why: &str) -> Status {
        self.push(name, Status::Skip, why.into(), None)
    }
}
