// SPDX-License-Identifier: GPL-2.0
//! What leaklab prints: one [`Outcome`] per command, printed by one
//! [`emit`] as text for people (ending with one closing line), JSON for
//! machines, KTAP for kernel CI, or one HTML page for a browser; and the
//! exit status that goes with it.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};

pub mod html;
pub mod ktap;
pub mod plot;
pub mod progress;
pub mod prometheus;
pub mod schema;

/// Output formats. Human output ends with a closing line `result: ...`;
/// JSON is one document whose `schema` field names its kind and version
/// (Documentation/schema/leaklab-1.schema.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Human,
    /// For machines.
    Json,
    /// KTAP version 1 test results, as kernel CI expects them.
    Ktap,
    /// One self-contained HTML page ([`html`]), for a browser.
    Html,
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
    /// The report as one HTML page ([`html::Page`]), for the documents
    /// that have one.
    fn html(&self) -> Option<String> {
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
        Format::Html => match o.html() {
            Some(h) => print!("{h}"),
            None => anyhow::bail!(
                "this result has no HTML report (a cycle, matrix, check or sweep has): use --format human or json"
            ),
        },
    }
    Ok(ExitCode::from(o.verdict().exit_status()))
}

/// Where `path` is written before the rename: beside it (the same file
/// system), hidden, and not ending as it does (`.prom`, `.json`), so no
/// reader ever sees a half-written file.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` with `text` atomically: written in full and synced under
/// [`temp_path`], then renamed over it. On failure (a full disk) the old
/// file stays as it was.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// Unix seconds as UTC, `2026-12-02T16:03:04Z` (to the second).
pub fn utc(t: f64) -> String {
    let secs = t.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400.0), "2000-02-29T00:00:00Z");
        // `date -u -d @1796227384`.
        assert_eq!(utc(1_796_227_384.9), "2026-12-02T16:03:04Z");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = std::env::temp_dir().join(format!("leaklab-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("leaklab.prom");
        write_atomically(&path, "a 1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 1\n");
        assert_eq!(temp_path(&path), dir.join(".leaklab.prom.tmp"));
        // The temporary name taken by a directory: the write fails, the
        // file stays as it was.
        fs::create_dir(temp_path(&path)).unwrap();
        assert!(write_atomically(&path, "a 2\n").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 1\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
