// SPDX-License-Identifier: GPL-2.0
//! `leaklab lava results`: the gate on a LAVA job's log.
//!
//! LAVA says a job passed whenever its infrastructure worked, whatever its
//! test cases said, so a gate must read the cases. This reads the log
//! `lava-run` writes (one YAML flow mapping a line) or `lavacli jobs logs
//! --raw` prints (the same lines, each a list item): the test cases, the
//! job's own result, and the console. When the console holds leaklab's KTAP
//! (the shell-less job), every KTAP line must be a LAVA case with the same
//! result, so a monitor that misses a line is caught; PID 1's `@exit N` must
//! be the `exit` case.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Context, Result};

use crate::{
    output::{ktap, schema::Schema},
    report::lava::{entries, text, Case, LavaResults, Mismatch},
    vm::init::Tag,
};

/// Reads a LAVA job log.
pub fn read(path: &Path) -> Result<LavaResults> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the LAVA log {}", path.display()))?;
    let r = parse(&text);
    if r.job.is_empty() && r.cases.is_empty() {
        bail!(
            "{} holds no LAVA results: give the log lava-run wrote or 'lavacli jobs logs --raw ID' printed",
            path.display()
        );
    }
    Ok(r)
}

/// The results of a log's text.
pub fn parse(log: &str) -> LavaResults {
    let mut cases = Vec::new();
    let mut job = String::new();
    let mut job_error = None;
    let mut ktap: BTreeMap<String, String> = BTreeMap::new();
    let mut ktap_lines = 0;
    let mut exit_status = None;
    for (lvl, msg) in entries(log) {
        match lvl.as_str() {
            "results" => {
                let definition = text(&msg, "definition").unwrap_or_default();
                let case = text(&msg, "case").unwrap_or_default();
                let result = text(&msg, "result").unwrap_or_default();
                if definition == "lava" {
                    if case == "job" {
                        job = result;
                        job_error = text(&msg, "error_msg");
                    }
                    continue;
                }
                let id = msg
                    .get("extra")
                    .and_then(|e| text(e, "test_case_id"))
                    .unwrap_or_else(|| case.clone());
                cases.push(Case {
                    definition,
                    case,
                    id,
                    result,
                    measurement: text(&msg, "measurement"),
                    units: text(&msg, "units"),
                });
            }
            "target" => {
                let Some(line) = msg.as_str() else { continue };
                match Tag::split(line.trim_end()) {
                    Some((Tag::Stdout, t)) => {
                        if let Some(l) = ktap::read_line(t) {
                            ktap_lines += 1;
                            let result = if l.ok { "pass" } else { "fail" };
                            ktap.insert(l.name.into(), result.into());
                        }
                    }
                    Some((Tag::Exit, t)) => exit_status = t.trim().parse().ok(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mismatches: Vec<Mismatch> = ktap
        .iter()
        .filter_map(|(name, console)| {
            let lava = cases
                .iter()
                .find(|c| &c.id == name)
                .map(|c| c.result.clone());
            (lava.as_ref() != Some(console)).then(|| Mismatch {
                name: name.clone(),
                console: console.clone(),
                lava,
            })
        })
        .collect();
    let exit_case = cases.iter().find(|c| c.id == "exit");
    let exit_ok = match (exit_status, exit_case) {
        (Some(s), Some(c)) => (s == 0) == (c.result == "pass"),
        // A test shell's job reports the status as a case of its own.
        (None, _) => cases.iter().any(|c| c.id.ends_with("exit_status")),
        (Some(_), None) => false,
    };
    let ok = job == "pass"
        && !cases.is_empty()
        && cases.iter().all(|c| c.result == "pass")
        && mismatches.is_empty()
        && exit_ok;
    LavaResults {
        schema: Schema::LavaResults.name(),
        job,
        job_error,
        cases,
        ktap_lines,
        mismatches,
        exit_status,
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Outcome, Verdict};

    fn results(lines: &[&str]) -> LavaResults {
        parse(&lines.join("\n"))
    }

    const JOB_PASS: &str = r#"{"dt": "x", "lvl": "results", "msg": {"case": "job", "definition": "lava", "result": "pass"}}"#;

    fn case(id: &str, result: &str) -> String {
        format!(
            r#"{{"dt": "x", "lvl": "results", "msg": {{"case": "{}", "definition": "leaklab-matrix", "extra": {{"test_case_id": "{id}"}}, "level": "3.1", "result": "{result}"}}}}"#,
            id.replace('.', "_")
        )
    }

    fn target(line: &str) -> String {
        format!(r#"{{"dt": "x", "lvl": "target", "msg": "{line}"}}"#)
    }

    fn exit(result: &str) -> String {
        format!(
            r#"{{"dt": "x", "lvl": "results", "msg": {{"case": "exit", "definition": "leaklab", "extra": {{"test_case_id": "exit"}}, "result": "{result}"}}}}"#
        )
    }

    #[test]
    fn a_clean_job_passes() {
        let r = results(&[
            &target("@1 ok 1 cycle1.a.leaky"),
            &target("@1 ok 2 cycle1.a.fixed"),
            &target("@exit 0"),
            &case("cycle1.a.leaky", "pass"),
            &case("cycle1.a.fixed", "pass"),
            &exit("pass"),
            JOB_PASS,
        ]);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.verdict(), Verdict::Passed);
        assert_eq!(r.ktap_lines, 2);
        assert_eq!(r.exit_status, Some(0));
    }

    #[test]
    fn a_failed_case_fails_though_lava_passed_the_job() {
        let r = results(&[
            &target("@1 not ok 1 cycle1.a.leaky # kmemleak reported 0"),
            &target("@exit 1"),
            &case("cycle1.a.leaky", "fail"),
            &exit("fail"),
            JOB_PASS,
        ]);
        assert!(!r.ok);
        assert_eq!(r.verdict(), Verdict::Failed);
        assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    }

    #[test]
    fn a_ktap_line_lava_missed_or_misread_fails() {
        let r = results(&[
            &target("@1 ok 1 cycle1.a.leaky"),
            &target("@1 not ok 2 cycle1.a.fixed # leaked"),
            &target("@exit 1"),
            &case("cycle1.a.leaky", "pass"),
            &exit("fail"),
            JOB_PASS,
        ]);
        assert_eq!(r.mismatches.len(), 1);
        assert_eq!(r.mismatches[0].name, "cycle1.a.fixed");
        assert_eq!(r.mismatches[0].lava, None);
        let r = results(&[
            &target("@1 not ok 1 cycle1.a.leaky"),
            &target("@exit 0"),
            &case("cycle1.a.leaky", "pass"),
            &exit("pass"),
            JOB_PASS,
        ]);
        assert!(!r.ok);
        assert_eq!(r.mismatches[0].lava.as_deref(), Some("pass"));
    }

    #[test]
    fn a_missing_exit_case_fails() {
        let r = results(&[
            &target("@1 ok 1 cycle1.a.leaky"),
            &target("@exit 0"),
            &case("cycle1.a.leaky", "pass"),
            JOB_PASS,
        ]);
        assert!(!r.ok);
    }

    #[test]
    fn an_infrastructure_error_is_no_verdict() {
        let r = results(&[
            r#"{"dt": "x", "lvl": "results", "msg": {"case": "job", "definition": "lava", "error_msg": "Connection closed", "error_type": "Infrastructure", "result": "fail"}}"#,
        ]);
        assert_eq!(r.verdict(), Verdict::Inconclusive);
        assert_eq!(r.job_error.as_deref(), Some("Connection closed"));
    }

    #[test]
    fn tagged_scalars_and_lavacli_list_items_are_read() {
        let r = results(&[
            r#"- {"dt": "x", "lvl": "results", "msg": {"case": "file-download", "definition": "lava", "extra": {"size": ! "18225744"}, "result": "pass"}}"#,
            r#"- {"dt": "x", "lvl": "results", "msg": {"case": "objects", "definition": "leaklab-matrix", "measurement": ! "2.0", "units": "objects", "result": "pass"}}"#,
            &format!("- {JOB_PASS}"),
        ]);
        assert_eq!(r.job, "pass");
        assert_eq!(r.cases.len(), 1);
        assert_eq!(r.cases[0].measurement.as_deref(), Some("2.0"));
    }
}
