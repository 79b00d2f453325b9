// SPDX-License-Identifier: GPL-2.0
//! `leaklab lava cases`: a leaklab result as LAVA test cases, one line each,
//! `NAME RESULT [MEASUREMENT UNITS]`, which the project's test definition
//! (`lava/leaklab-lava.sh`) hands to LAVA's `lava-test-case`.
//!
//! Names are the result's own (`cycle1.error_path.leaky`, `kernel_config`);
//! the test definition puts the command's name before them. It reads
//! `doctor --format json` (a case per check), `matrix`, `cycle` or `check
//! --format json` (their KTAP tests, each leak measured in the objects the
//! detectors found), or any KTAP (a case per test line, unmeasured).

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::{
    output::{ktap, schema::Schema},
    report::Document,
};

/// One test case for `lava-test-case`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LavaCase {
    /// Its name: no spaces.
    pub name: String,
    /// pass, fail or skip.
    pub result: &'static str,
    /// A measurement and its units.
    pub measurement: Option<(u64, &'static str)>,
}

impl LavaCase {
    /// The line the test definition reads.
    pub fn line(&self) -> String {
        let mut s = format!("{} {}", self.name, self.result);
        if let Some((m, units)) = self.measurement {
            s += &format!(" {m} {units}");
        }
        s
    }
}

/// The cases of a saved result.
pub fn read(path: &Path) -> Result<Vec<LavaCase>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cases = of_text(&text).with_context(|| format!("reading {}", path.display()))?;
    if cases.is_empty() {
        bail!(
            "{} holds no test results: give leaklab's doctor, matrix, cycle or check JSON, or KTAP",
            path.display()
        );
    }
    Ok(cases)
}

fn pass_fail(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "fail"
    }
}

fn of_text(text: &str) -> Result<Vec<LavaCase>> {
    if text.trim_start().starts_with("KTAP version") {
        return Ok(of_ktap(text));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .context("neither KTAP nor JSON: give leaklab's --format json or --format ktap output")?;
    let schema = value
        .get("schema")
        .and_then(|s| s.as_str())
        .map(String::from);
    let incomplete = |s: &str| {
        format!("an incomplete {s} document: give the whole file leaklab wrote with --format json")
    };
    let Some(s) = schema else {
        bail!("JSON without a leaklab schema")
    };
    let no_cases = || {
        format!(
            "a {s} result has no cases: give doctor, matrix, cycle, check or sweep JSON, or KTAP"
        )
    };
    let kind = Schema::of(&s)
        .filter(|k| {
            matches!(
                k,
                Schema::Doctor | Schema::Cycle | Schema::Check | Schema::Sweep
            )
        })
        .with_context(no_cases)?;
    let tests = Document::read(kind, value)
        .with_context(no_cases)?
        .with_context(|| incomplete(&s))?
        .tests()
        .with_context(no_cases)?;
    Ok(tests.iter().map(of_case).collect())
}

/// A test of leaklab's own, measured in the objects it counted.
fn of_case(t: &ktap::Case) -> LavaCase {
    LavaCase {
        name: ktap::name(&t.name),
        result: if t.skipped() { "skip" } else { pass_fail(t.ok) },
        measurement: t.objects.map(|o| (o, "objects")),
    }
}

/// KTAP's test lines, unmeasured; a `# SKIP` directive is a skip.
fn of_ktap(text: &str) -> Vec<LavaCase> {
    text.lines()
        .filter_map(ktap::read_line)
        .map(|l| {
            of_case(&ktap::Case::new(
                l.ok,
                l.name.into(),
                l.directive.map(String::from),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ktap_lines_become_cases() {
        let cases = of_ktap(
            "KTAP version 1\n# leaklab check x\n1..3\nok 1 cycle_1\nnot ok 2 kmalloc leak # 64 bytes\nok 3 cycle_2 # SKIP init failed\n# Totals: pass:2 fail:1\n",
        );
        let lines: Vec<String> = cases.iter().map(LavaCase::line).collect();
        assert_eq!(lines, ["cycle_1 pass", "kmalloc_leak fail", "cycle_2 skip"]);
    }

    #[test]
    fn doctor_checks_become_cases() {
        let json = r#"{"schema": "leaklab.doctor/1", "kernel": "6.12", "machine": "x86_64",
            "board": null, "cpu": null, "memory_mib": 488, "scan_seconds": null,
            "checks": [
              {"name": "root", "status": "ok", "detail": "", "fix": null},
              {"name": "kernel config", "status": "fail", "detail": "", "fix": "x"},
              {"name": "canary (kmemleak)", "status": "skip", "detail": "", "fix": null}],
            "canary": null, "ok": false}"#;
        let lines: Vec<String> = of_text(json).unwrap().iter().map(LavaCase::line).collect();
        assert_eq!(
            lines,
            ["root pass", "kernel_config fail", "canary_kmemleak skip"]
        );
    }

    #[test]
    fn check_results_become_measured_cases() {
        let leak = |title: &str, objects: usize| {
            serde_json::json!({"title": title, "culprit": null, "culprit_line": null,
                "objects": objects, "bytes": 64 * objects, "per_cycle": {"1": objects},
                "first_cycle": 1, "unknown_cycle": 0, "comms": ["insmod"], "frames": [],
                "fingerprint": "f"})
        };
        let cycle = |n: u32, init_error: Option<&str>| {
            serde_json::json!({"cycle": n, "loaded": init_error.is_none(),
                "init_error": init_error, "exercise": [], "unloaded": init_error.map_or(Some(true), |_| None),
                "unload_error": null, "leaked": 0})
        };
        let check = |leaks: Vec<serde_json::Value>| {
            serde_json::json!({"schema": "leaklab.check/1", "kernel": "6.12", "module": "drv",
                "path": "drv.ko", "params": [], "exercise": [], "kept_loaded": false,
                "cycles": [cycle(1, None), cycle(2, Some("-ENODEV"))], "leaks": leaks,
                "outside": [leak("memory leak in other", 9)], "scans": 2, "stable": true,
                "stacks_scanned": true, "blind_spots": "", "detectors": ["kmemleak"],
                "trace": null, "allocinfo": null})
            .to_string()
        };
        let lines = |json: String| -> Vec<String> {
            of_text(&json).unwrap().iter().map(LavaCase::line).collect()
        };
        assert_eq!(
            lines(check(vec![leak("memory leak in drv_probe", 3)])),
            [
                "cycle_1 pass",
                "cycle_2 skip",
                "memory_leak_in_drv_probe fail 3 objects"
            ]
        );
        assert_eq!(
            lines(check(vec![])),
            [
                "cycle_1 pass",
                "cycle_2 skip",
                "no_leaks_from_drv pass 0 objects"
            ]
        );
    }

    #[test]
    fn other_input_is_refused() {
        assert!(of_text("{\"schema\": \"leaklab.watch/1\"}").is_err());
        let e = of_text("{\"schema\": \"leaklab.check/1\"}").unwrap_err();
        assert!(
            format!("{e:#}")
                .starts_with("an incomplete leaklab.check/1 document: give the whole file"),
            "{e:#}"
        );
        assert!(of_text("hello").is_err());
    }
}
