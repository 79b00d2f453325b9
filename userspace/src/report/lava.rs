// SPDX-License-Identifier: GPL-2.0
//! The document of `lava results` ([`LavaResults`]): a LAVA job's test
//! cases set against leaklab's own console, and its rendering.

use serde::Serialize;

use crate::output::{Outcome, Verdict};

/// One LAVA test case.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// The test definition (the monitor's name, or the test shell's).
    pub definition: String,
    /// The case as LAVA stores it (lowercased, non-word characters as `_`).
    pub case: String,
    /// The name the device gave (`extra.test_case_id`), or the case.
    pub id: String,
    /// pass, fail, skip or unknown.
    pub result: String,
    /// The measurement, if the case has one.
    pub measurement: Option<String>,
    /// Its units.
    pub units: Option<String>,
}

/// A KTAP line of the console that LAVA did not report as it was.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// The KTAP test's name.
    pub name: String,
    /// Its result on the console.
    pub console: String,
    /// LAVA's result for it, if it has the case.
    pub lava: Option<String>,
}

/// What a LAVA job's log says.
#[derive(Debug, Serialize)]
pub struct LavaResults {
    /// `leaklab.lava-results/1`.
    pub schema: &'static str,
    /// The job's own result (LAVA's `lava/job` case): pass unless the
    /// infrastructure failed.
    pub job: String,
    /// Why LAVA failed the job, if it did.
    pub job_error: Option<String>,
    /// The test cases, in the order LAVA logged them.
    pub cases: Vec<Case>,
    /// The KTAP lines on the console (0 when the console held none).
    pub ktap_lines: usize,
    /// KTAP lines LAVA reported otherwise, or not at all.
    pub mismatches: Vec<Mismatch>,
    /// leaklab's exit status as PID 1 printed it, if the console holds it.
    pub exit_status: Option<i32>,
    /// All cases passed, each KTAP line is a case with its result, and the
    /// exit status is a passing case.
    pub ok: bool,
}

impl Outcome for LavaResults {
    fn human(&self) -> String {
        let mut s = String::new();
        let mut definition = "";
        for c in &self.cases {
            if c.definition != definition {
                definition = &c.definition;
                s += &format!("{definition}\n");
            }
            let m = match (&c.measurement, &c.units) {
                (Some(m), Some(u)) => format!("  {m} {u}"),
                (Some(m), None) => format!("  {m}"),
                _ => String::new(),
            };
            s += &format!("  {:<8} {}{m}\n", c.result, c.id);
        }
        for m in &self.mismatches {
            s += &format!(
                "{}: the console says {}, LAVA {}\n",
                m.name,
                m.console,
                m.lava.as_deref().unwrap_or("has no such case")
            );
        }
        let failed = self.cases.iter().filter(|c| c.result != "pass").count();
        s += &format!(
            "LAVA job: {}{}; {} cases, {} not passed; {} KTAP lines on the console; leaklab exited {}\n",
            self.job,
            self.job_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            self.cases.len(),
            failed,
            self.ktap_lines,
            self.exit_status
                .map_or_else(|| "?".to_string(), |s| s.to_string()),
        );
        s
    }

    fn verdict(&self) -> Verdict {
        if self.job != "pass" {
            Verdict::Inconclusive
        } else {
            Verdict::of(self.ok)
        }
    }

    fn summary(&self) -> String {
        match self.verdict() {
            Verdict::Passed => "ok: every case passed".into(),
            Verdict::Inconclusive => format!(
                "INCONCLUSIVE: LAVA's job did not complete ({}): no verdict; see the log",
                self.job_error.as_deref().unwrap_or("no job result")
            ),
            Verdict::Failed => "FAIL: not every case passed".into(),
        }
    }
}
