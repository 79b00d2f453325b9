//! What leaklab prints: one [`Outcome`] per command, printed by one
//! [`emit`] as text for people (ending with one closing line), JSON for
//! machines, or KTAP for kernel CI; and the exit status that goes with it.

use std::process::ExitCode;

use anyhow::Result;

pub mod ktap;
pub mod plot;
pub mod progress;

/// Output formats. Human output ends with a closing line `result: ...`;
/// JSON is one document whose `schema` field names its kind and version
/// (Documentation/schema/leaklab-1.schema.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Human,
    /// For machines.
    Json,
    /// KTAP version 1 test results, as kernel CI expects them.
    Ktap,
}

/// The exit statuses, as documented in the README.
pub mod exit {
    /// Everything was as expected.
    pub const PASSED: u8 = 0;
    /// The run worked and found something not as expected (a leak, a
    /// failed check, a report).
    pub const FAILED: u8 = 1;
    /// The run could not be done: bad input or an unusable environment
    /// (one line on stderr says what to do).
    pub const ERROR: u8 = 2;
    /// The run worked but its answer cannot be trusted: kmemleak's set of
    /// reports was still changing when the scans ran out (run it again), or
    /// a log announces suspected leaks but holds none of their reports.
    pub const INCONCLUSIVE: u8 = 3;
    // Stopped by a signal: 128 + the signal's number (130 for SIGINT, 143
    // for SIGTERM), after the cleanup (`kernel::interrupt`).
}

/// A run's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// As required.
    Passed,
    /// Not as required.
    Failed,
    /// No trustworthy answer: kmemleak's reports did not settle, or the
    /// input announces leaks without their reports.
    Inconclusive,
}

impl Verdict {
    /// `Passed` when `ok`, else `Failed`.
    pub fn of(ok: bool) -> Self {
        if ok {
            Self::Passed
        } else {
            Self::Failed
        }
    }

    /// Its exit status.
    pub fn exit_status(self) -> u8 {
        match self {
            Self::Passed => exit::PASSED,
            Self::Failed => exit::FAILED,
            Self::Inconclusive => exit::INCONCLUSIVE,
        }
    }
}

/// What a command found, for people and for machines.
pub trait Outcome: serde::Serialize {
    /// The human report, without its closing line.
    fn human(&self) -> String;
    /// The verdict.
    fn verdict(&self) -> Verdict;
    /// What the closing line says after `result: `.
    fn summary(&self) -> String {
        match self.verdict() {
            Verdict::Passed => "ok".into(),
            Verdict::Failed => "FAIL".into(),
            Verdict::Inconclusive => "INCONCLUSIVE".into(),
        }
    }
    /// The KTAP results, for the commands that speak it.
    fn ktap(&self) -> Option<String> {
        None
    }
}

/// The human report of `o` with its closing line.
pub fn human(o: &impl Outcome) -> String {
    format!("{}result: {}\n", o.human(), o.summary())
}

/// Prints `o` in `format` and returns the exit status of its verdict.
pub fn emit(o: &impl Outcome, format: Format) -> Result<ExitCode> {
    match format {
        Format::Human => print!("{}", human(o)),
        Format::Json => println!("{}", serde_json::to_string_pretty(o)?),
        Format::Ktap => match o.ktap() {
            Some(k) => print!("{k}"),
            None => anyhow::bail!("this command has no KTAP output: use --format human or json"),
        },
    }
    Ok(ExitCode::from(o.verdict().exit_status()))
}
