// SPDX-License-Identifier: GPL-2.0
//! The live canary: one leaky sample a detector must report, its fixed
//! twin it must not.

use std::time::Instant;

use crate::ko::Variant;
use crate::pipeline::detectors::{Detector, DetectorChoice};
use crate::pipeline::lab::{self, Plan};
use crate::report::cycle::{verdict::Verdict, CycleRun};
use crate::report::doctor::{canary_check, Canary};

use super::{collect::Checks, options::Options};

/// Runs the canary's pattern once leaky, once fixed, in one window, judged
/// by `detector` alone.
pub(super) fn run_canary(
    c: &mut Checks,
    opts: &Options,
    detector: Detector,
    progress: &mut dyn FnMut(&str),
) -> Option<Canary> {
    let check = canary_check(detector);
    let check = check.as_str();
    let by = detector.name();
    let plan = Plan {
        module: opts.module.clone(),
        patterns: vec![opts.canary.clone()],
        variants: vec![Variant::Leaky, Variant::Fixed],
        runs: 1,
        cycles: 1,
        references: Vec::new(),
        detectors: DetectorChoice {
            detectors: vec![detector],
            ..DetectorChoice::default()
        },
    };
    let t = Instant::now();
    let run = match lab::run(&plan, progress) {
        Ok(run) => run,
        Err(e) => {
            c.fail(
                check,
                format!("{e:#}"),
                "fix what the line says, then run doctor again",
            );
            return None;
        }
    };
    let canary = summarize(&run, &opts.canary, detector, t.elapsed().as_secs_f64());
    let Some(canary) = canary else {
        c.fail(
            check,
            format!("the module has no pattern {:?}", opts.canary),
            "pick one `leaklab patterns` lists (--canary)",
        );
        return None;
    };
    let seen = canary.found_leaky == canary.expected && canary.expected > 0;
    let where_ = canary
        .culprit_line
        .as_deref()
        .map_or(String::new(), |l| format!(" at {l}"));
    if !seen {
        c.fail(
            check,
            format!(
                "{by} found {} of the {} object(s) {} leaky leaks: this detector cannot see the leak here, so its silence proves nothing",
                canary.found_leaky, canary.expected, canary.pattern
            ),
            "see Documentation/scan-protocol.md (stale pointers, slab_nomerge) and the kernel log",
        );
    } else if canary.found_fixed != 0 {
        c.fail(
            check,
            format!(
                "{by} found {} object(s) for {} fixed, which frees everything: its findings here are not to be trusted",
                canary.found_fixed, canary.pattern
            ),
            "see the kernel log and Documentation/scan-protocol.md",
        );
    } else if let Some(u) = run.unsettled() {
        c.fail(
            check,
            match u.trace.as_ref().filter(|t| t.lost > 0) {
                Some(t) => format!("the trace lost {} events: no trustworthy answer", t.lost),
                None => format!(
                    "kmemleak's reports were still changing after {} scans: no trustworthy answer",
                    u.scans
                ),
            },
            "run doctor again, on a quieter machine",
        );
    } else if !run.ok {
        let why = run
            .cycles
            .iter()
            .flat_map(|r| &r.verdicts)
            .find_map(|v| v.reason.clone())
            .unwrap_or_else(|| "something unexpected leaked or the kernel warned".into());
        c.fail(
            check,
            format!("the leak was seen, but the run failed: {why}"),
            "run `leaklab cycle --pattern ...` for the details",
        );
    } else {
        c.ok(
            check,
            format!(
                "{} leaky: {by} found {} of {} object(s){where_}; {} fixed: none",
                canary.pattern, canary.found_leaky, canary.expected, canary.pattern
            ),
        );
    }
    Some(canary)
}

/// The canary's figures from its run, `None` if `pattern` did not run.
pub(super) fn summarize(
    run: &CycleRun,
    pattern: &str,
    detector: Detector,
    seconds: f64,
) -> Option<Canary> {
    let verdicts: Vec<&Verdict> = run
        .cycles
        .iter()
        .flat_map(|r| &r.verdicts)
        .filter(|v| v.pattern == pattern)
        .collect();
    let leaky = verdicts.iter().find(|v| v.variant == Variant::Leaky)?;
    let fixed = verdicts.iter().find(|v| v.variant == Variant::Fixed);
    let found = |v: &Verdict| match detector {
        Detector::Kmemleak => v.found.objects,
        Detector::Trace => v.trace.as_ref().map_or(0, |t| t.found.objects),
    };
    let expected = match detector {
        Detector::Kmemleak => leaky.expected.objects,
        Detector::Trace => leaky.trace.as_ref().map_or(0, |t| t.expected.objects),
    };
    Some(Canary {
        detector,
        pattern: pattern.into(),
        expected,
        found_leaky: found(leaky),
        found_fixed: fixed.map_or(0, |v| found(v)),
        culprit_line: leaky.culprits.keys().find_map(|c| c.line.clone()),
        seconds,
    })
}
