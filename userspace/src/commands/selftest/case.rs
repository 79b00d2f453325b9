//! One case of the self-test: what was done, what the contract says and
//! what happened.

use serde::Serialize;

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
