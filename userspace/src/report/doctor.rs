// SPDX-License-Identifier: GPL-2.0
//! The document of `doctor` ([`Diagnosis`]): its checks, each detector's
//! canary, and its renderings.

use serde::{Deserialize, Serialize};

use crate::{
    analysis::detector::Detector,
    output::{
        ktap::{self, Case},
        Outcome, Verdict,
    },
};

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
pub fn canary_check(detector: Detector) -> String {
    format!("canary ({})", detector.name())
}

impl Diagnosis {
    /// The diagnosis as tests, as KTAP and LAVA report them: one per check,
    /// named as LAVA keeps it (`kernel_config`, `canary_kmemleak`). Ok and
    /// warn pass, fail fails with what was found, skip is a SKIP; a canary
    /// counts the objects its detector found for the leaky run.
    pub fn tests(&self) -> Vec<Case> {
        self.checks
            .iter()
            .map(|c| {
                let case = match c.status {
                    Status::Ok | Status::Warn => Case::new(true, ktap::name(&c.name), None),
                    Status::Fail => Case::new(false, ktap::name(&c.name), Some(c.detail.clone())),
                    Status::Skip => Case::new(
                        true,
                        ktap::name(&c.name),
                        Some(format!("SKIP {}", c.detail)),
                    ),
                };
                let canary = self
                    .canaries
                    .iter()
                    .find(|k| c.name == canary_check(k.detector));
                match canary {
                    Some(k) => case.counting(k.found_leaky),
                    None => case,
                }
            })
            .collect()
    }
}

impl Outcome for Diagnosis {
    fn verdict(&self) -> Verdict {
        Verdict::of(self.ok)
    }

    /// KTAP: [`Diagnosis::tests`].
    fn ktap(&self) -> Option<String> {
        Some(ktap::document(
            &format!("leaklab doctor on {}", self.kernel),
            &self.tests(),
        ))
    }

    /// The human report: a header, a line per check (and its fix), a verdict.
    fn human(&self) -> String {
        let mut out = format!(
            "leaklab doctor: kernel {} on {}{}{}, {} MiB\n",
            self.kernel,
            self.machine,
            self.board
                .as_deref()
                .map_or(String::new(), |b| format!(", {b}")),
            self.cpu
                .as_deref()
                .map_or(String::new(), |c| format!(", {c}")),
            self.memory_mib
        );
        for check in &self.checks {
            let status = match check.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            out += &format!("  {status:<5} {:<14} {}\n", check.name, check.detail);
            if let Some(fix) = &check.fix {
                out += &format!("  {:<5} {:<14} fix: {fix}\n", "", "");
            }
        }
        out += &format!("note: {}\n", crate::ko::LAB_HELP);
        out
    }

    fn summary(&self) -> String {
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        if failed == 0 {
            "ok: leaklab can show leaks on this machine".into()
        } else {
            format!("FAIL: {failed} check(s) failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diagnosis_reads_as_ktap() {
        let check = |name: &str, status, detail: &str| Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: None,
        };
        let d = Diagnosis {
            schema: "leaklab.doctor/1".into(),
            kernel: "6.12".into(),
            machine: "x86_64".into(),
            board: None,
            cpu: None,
            memory_mib: 488,
            scan_seconds: None,
            checks: vec![
                check("kernel config", Status::Ok, "all set"),
                check("debugfs", Status::Warn, "was not mounted: mounted it"),
                check("kmemleak", Status::Fail, "kmemleak is disabled"),
                check("canary (kmemleak)", Status::Skip, "kmemleak failed"),
                check("canary (trace)", Status::Ok, "seen"),
            ],
            canary: None,
            canaries: vec![Canary {
                detector: Detector::Trace,
                pattern: "error_path".into(),
                expected: 1,
                found_leaky: 1,
                found_fixed: 0,
                culprit_line: None,
                seconds: 1.0,
            }],
            ok: false,
        };
        assert_eq!(
            d.ktap().unwrap(),
            "KTAP version 1\n# leaklab doctor on 6.12\n1..5\n\
             ok 1 kernel_config\n\
             ok 2 debugfs\n\
             not ok 3 kmemleak # kmemleak is disabled\n\
             ok 4 canary_kmemleak # SKIP kmemleak failed\n\
             ok 5 canary_trace\n\
             # Totals: pass:3 fail:1 xfail:0 xpass:0 skip:1 error:0\n"
        );
        let counted: Vec<Option<u64>> = d.tests().iter().map(|t| t.objects).collect();
        assert_eq!(counted, [None, None, None, None, Some(1)]);
    }
}
