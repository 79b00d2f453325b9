// SPDX-License-Identifier: GPL-2.0
//! The document of `lava results` ([`LavaResults`]): a LAVA job's test
//! cases set against leaklab's own console, and its rendering; and the
//! reading of a LAVA job's log, line by line ([`entries`], [`console`]).

use serde::Serialize;
use serde_json::Value;

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

/// One log line as a JSON value: a YAML flow mapping (`{"dt": ..., "lvl":
/// ..., "msg": ...}`) is JSON but for the non-specific tag `!` PyYAML puts
/// before some quoted scalars; `lavacli --raw` makes each line a list item.
fn line_value(line: &str) -> Option<Value> {
    let line = line.trim_end();
    let line = line.strip_prefix("- ").unwrap_or(line);
    if !line.starts_with('{') {
        return None;
    }
    // Inside a JSON string a quote is escaped, so `": ! "` only occurs
    // between a key and its tagged value.
    serde_json::from_str(&line.replace("\": ! \"", "\": \"")).ok()
}

/// The entries of a LAVA job's log (what `lava-run` writes, or `lavacli
/// jobs logs --raw ID` prints): each line's level (`results`, `target`,
/// `info`, ...) and message; lines that are not entries left out.
pub fn entries(log: &str) -> impl Iterator<Item = (String, Value)> + '_ {
    log.lines().filter_map(line_value).filter_map(|mut v| {
        let lvl = v.get("lvl")?.as_str()?.to_string();
        Some((lvl, v.get_mut("msg")?.take()))
    })
}

/// Field `key` of `v` as text (a number as its digits), if set.
pub fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A `target` entry's message as the console printed the line: LAVA's
/// shell logger puts a backslash before each double quote (for its YAML),
/// which this takes out again, and the line's end.
pub fn console(msg: &str) -> String {
    msg.trim_end().replace("\\\"", "\"")
}

/// When the log's first and last entries were written, seconds apart
/// (their `dt`, UTC `YYYY-MM-DDTHH:MM:SS.ffffff`); 0 without two.
pub fn span(log: &str) -> f64 {
    let times: Vec<f64> = log
        .lines()
        .filter_map(line_value)
        .filter_map(|v| v.get("dt")?.as_str().and_then(seconds_of))
        .collect();
    match (times.first(), times.last()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => 0.0,
    }
}

/// Seconds since 1970 of a `dt` stamp.
fn seconds_of(dt: &str) -> Option<f64> {
    let (date, time) = dt.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next()?.parse::<f64>().ok()?;
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
    // days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_line_is_the_one_printed() {
        let log = r#"{"dt": "2026-12-07T23:59:59.5", "lvl": "target", "msg": "@1 {\\\"row\\\": {\\\"module\\\": \\\"md4\\\"}}"}
- {"dt": "2026-12-08T00:00:01.0", "lvl": "info", "msg": "x"}
"#;
        let e: Vec<(String, Value)> = entries(log).collect();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, "target");
        assert_eq!(
            console(e[0].1.as_str().unwrap()),
            r#"@1 {"row": {"module": "md4"}}"#
        );
        assert!((span(log) - 1.5).abs() < 1e-6, "{}", span(log));
    }
}
