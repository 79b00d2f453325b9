// SPDX-License-Identifier: GPL-2.0
//! The document of `selftest` ([`Selftest`]): each case of the control
//! interface's contract, what the contract says and what happened.

use serde::Serialize;

use crate::output::{Outcome, Verdict};

/// One checked case.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// What was done.
    pub name: String,
    /// What the contract says (an errno name, or `ok`).
    pub expected: String,
    /// What happened.
    pub actual: String,
    /// Whether they agree.
    pub ok: bool,
}

impl Case {
    /// The case `name`, passed when `actual` is `expected`.
    pub fn new(name: impl Into<String>, expected: impl Into<String>, actual: String) -> Self {
        let expected = expected.into();
        Self {
            name: name.into(),
            ok: actual == expected,
            expected,
            actual,
        }
    }
}

/// All cases of one run.
#[derive(Debug, Serialize)]
pub struct Selftest {
    /// Schema name and version.
    pub schema: &'static str,
    /// The cases.
    pub cases: Vec<Case>,
    /// Whether all passed.
    pub ok: bool,
}

impl Outcome for Selftest {
    fn verdict(&self) -> Verdict {
        Verdict::of(self.ok)
    }

    /// A line per case.
    fn human(&self) -> String {
        self.cases
            .iter()
            .map(|c| {
                format!(
                    "{} {}: expected {}, got {}\n",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.expected,
                    c.actual
                )
            })
            .collect()
    }
}
