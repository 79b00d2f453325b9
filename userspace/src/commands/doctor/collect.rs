// SPDX-License-Identifier: GPL-2.0
//! The doctor's checks, collected as they are made.

use crate::report::doctor::{Check, Status};

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
