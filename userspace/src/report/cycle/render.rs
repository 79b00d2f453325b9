// SPDX-License-Identifier: GPL-2.0
//! A cycle's result for people (the table, then what went wrong) and for
//! kernel CI (KTAP).

use super::verdict::{Count, CycleRecord, CycleRun};
use crate::analysis::detector::Detector;
use crate::output::{
    ktap::{self, Case},
    Outcome, Verdict,
};

impl Outcome for CycleRun {
    /// Inconclusive when a window did not settle (whatever the rows say:
    /// they were judged on a set still changing); else as the rows are.
    fn verdict(&self) -> Verdict {
        if self.unsettled().is_some() {
            Verdict::Inconclusive
        } else {
            Verdict::of(self.ok)
        }
    }

    fn summary(&self) -> String {
        if let Some(c) = self.unsettled() {
            if let Some(t) = c.trace.as_ref().filter(|t| t.lost > 0) {
                return format!(
                    "INCONCLUSIVE: the allocation trace lost {} events in cycle {} (a full ring buffer): run it again with a larger --trace-buffer-kb",
                    t.lost, c.cycle
                );
            }
            return format!(
                "INCONCLUSIVE: kmemleak's reports in cycle {} were still changing after {} scans: run it again, on a quieter machine",
                c.cycle, c.scans
            );
        }
        match (self.ok, self.cycles.iter().find_map(|c| c.nothing_judged())) {
            (true, _) => "as expected".into(),
            (false, Some(why)) => format!("NOT as expected: {why}"),
            (false, None) => "NOT as expected".into(),
        }
    }

    /// KTAP version 1, as kselftest prints it: one test per cycle, pattern
    /// and variant (`cycle1.error_path.leaky`), plus per cycle one for
    /// unexpected leaks and one for the kernel log.
    fn ktap(&self) -> Option<String> {
        Some(ktap::document(
            &format!("leaklab cycle on {}", self.kernel),
            &self.tests(),
        ))
    }

    fn html(&self) -> Option<String> {
        Some(self.page())
    }

    /// A compact table (a column per detector), then what went wrong.
    fn human(&self) -> String {
        let mut s = String::new();
        for c in &self.cycles {
            s += &self.table(c);
            s += &self.details(c);
        }
        if self.detectors.contains(&Detector::Trace) {
            s += &format!("trace: {}\n", crate::trace::BLIND_SPOTS);
        }
        s
    }
}

impl CycleRun {
    /// Cycle `c`'s heading: its number and what each detector did.
    pub(super) fn heading(&self, c: &CycleRecord) -> String {
        let mut head = format!("cycle {}", c.cycle);
        if self.detectors.contains(&Detector::Kmemleak) {
            head += &format!(" (kmemleak: {} scans)", c.scans);
        }
        if let Some(t) = &c.trace {
            head += &format!(
                " (trace: {} events, {} lost, {} allocator-internal)",
                t.events, t.lost, t.internal
            );
        }
        head
    }

    /// Cycle `c`'s rows, as its table shows them ([`COLUMNS`]): a row per
    /// pattern and variant and per reference module, a column per
    /// detector; with whether each went wrong.
    pub(super) fn rows(&self, c: &CycleRecord) -> Vec<([String; 7], bool)> {
        let mut rows = Vec::new();
        for v in &c.verdicts {
            let expected = v.trace.as_ref().map_or(v.expected, |t| t.expected);
            let kmemleak = match (v.kmemleak, v.blind.is_some()) {
                (false, _) => "-".to_string(),
                (true, false) => count(&v.found),
                (true, true) => format!("{} *", count(&v.found)),
            };
            let trace = v.trace.as_ref().map_or("-".into(), |t| count(&t.found));
            let mut verdict = match &v.reason {
                None => "ok".to_string(),
                Some(r) => format!("FAIL: {r}"),
            };
            if let Some(g) = v.trace.as_ref().and_then(|t| t.growth.as_ref()) {
                let (objects, bytes) = g.per_run();
                verdict += &format!("; grows {objects} objects / {bytes} B a run while loaded");
            }
            let row = [
                v.pattern.clone(),
                v.variant.name().to_string(),
                v.runs.to_string(),
                count(&expected),
                kmemleak,
                trace,
                verdict,
            ];
            rows.push((row, v.reason.is_some()));
        }
        for x in &c.references {
            let row = [
                x.module.clone(),
                if x.expected > 0 { "calib" } else { "none" }.to_string(),
                1.to_string(),
                x.expected.to_string(),
                if self.detectors.contains(&Detector::Kmemleak) {
                    count(&x.found)
                } else {
                    "-".into()
                },
                x.trace_found.as_ref().map_or("-".into(), count),
                match (&x.reason, &x.note) {
                    (None, None) => "ok".to_string(),
                    (None, Some(n)) => format!("ok ({n})"),
                    (Some(r), _) => format!("FAIL: {r}"),
                },
            ];
            rows.push((row, x.reason.is_some()));
        }
        rows
    }

    /// Cycle `c`'s heading and its table.
    fn table(&self, c: &CycleRecord) -> String {
        let line = |r: &[String; 7]| {
            format!(
                "{:<18} {:<6} {:>5} {:>9} {:>10} {:>10}  {}\n",
                r[0], r[1], r[2], r[3], r[4], r[5], r[6]
            )
        };
        let mut s = format!("{}\n", self.heading(c));
        s += &line(&COLUMNS.map(String::from));
        for (row, _) in self.rows(c) {
            s += &line(&row);
        }
        s
    }

    /// What went wrong in cycle `c`: what one detector alone saw, the
    /// culprits and misses of each row, the unexpected leaks, the kernel
    /// log's findings.
    fn details(&self, c: &CycleRecord) -> String {
        let mut s = String::new();
        let blind: Vec<_> = c
            .verdicts
            .iter()
            .filter_map(|v| v.blind.as_ref().map(|b| (v, b)))
            .collect();
        if !blind.is_empty() && self.detectors.len() > 1 {
            s += "* seen by one detector only:\n";
            for (v, b) in blind {
                s += &format!("    {} {}: {b}\n", v.pattern, v.variant.name());
            }
        }
        for v in c
            .verdicts
            .iter()
            .filter(|v| v.runs > 0 && (v.example.is_some() || !v.missed.is_empty()))
        {
            s += &format!("\n{} {}:\n", v.pattern, v.variant.name());
            for (culprit, n) in &v.culprits {
                s += &format!("    {n} x {culprit}\n");
            }
            for m in &v.missed {
                s += &format!(
                    "    not reported: {} (kmemleak: references counted {}, flags {}, checksum {})\n",
                    m.address,
                    m.count.map_or("?".into(), |c| c.to_string()),
                    m.flags.as_deref().unwrap_or("?"),
                    m.checksum.map_or("?".into(), |c| c.to_string())
                );
            }
            if let Some(e) = &v.example {
                s += &format!("    e.g. {} bytes, allocated at:\n", e.size);
                for f in &e.symbolized {
                    s += &format!("      {f}\n");
                }
            }
        }
        for u in &c.unexpected {
            s += &format!(
                "unexpected: {} bytes at {:#x}, culprit {}\n",
                u.report.size,
                u.report.address,
                u.attribution.culprit.as_deref().unwrap_or("?")
            );
        }
        for u in c.trace.iter().flat_map(|t| &t.unexpected) {
            s += &format!(
                "unexpected (trace): {} bytes at {:#x}, culprit {}\n",
                u.report.size,
                u.report.address,
                u.attribution.culprit.as_deref().unwrap_or("?")
            );
        }
        for f in &c.kernel_log {
            s += &format!("kernel log ({}): {}\n", f.kind, f.line);
        }
        s
    }
}

/// The columns of a cycle's table.
pub(super) const COLUMNS: [&str; 7] = [
    "pattern", "variant", "runs", "expected", "kmemleak", "trace", "verdict",
];

/// Objects and bytes as `objects/bytesB`.
fn count(c: &Count) -> String {
    format!("{}/{}B", c.objects, c.bytes)
}

impl CycleRun {
    /// The run's tests, as KTAP and LAVA report them: one per cycle,
    /// pattern and variant, one per reference module, and per cycle one for
    /// unexpected leaks and one for the kernel log (and the trace's).
    pub fn tests(&self) -> Vec<Case> {
        let mut tests = Vec::new();
        for c in &self.cycles {
            for v in &c.verdicts {
                tests.push(
                    Case::new(
                        v.ok,
                        format!("cycle{}.{}.{}", c.cycle, v.pattern, v.variant.name()),
                        v.reason.clone(),
                    )
                    .counting(match &v.trace {
                        Some(t) => t.found.objects.max(v.found.objects),
                        None => v.found.objects,
                    }),
                );
            }
            for x in &c.references {
                tests.push(
                    Case::new(
                        x.ok,
                        format!("cycle{}.reference.{}", c.cycle, x.module),
                        x.reason.clone().or_else(|| x.note.clone()),
                    )
                    .counting(x.found.objects),
                );
            }
            tests.push(Case::new(
                c.unexpected.is_empty(),
                format!("cycle{}.unexpected_leaks", c.cycle),
                (!c.unexpected.is_empty())
                    .then(|| format!("{} reports outside the driven samples", c.unexpected.len())),
            ));
            if let Some(t) = &c.trace {
                tests.push(Case::new(
                    t.unexpected.is_empty(),
                    format!("cycle{}.trace_unexpected", c.cycle),
                    (!t.unexpected.is_empty()).then(|| {
                        format!(
                            "{} allocations outside the driven samples",
                            t.unexpected.len()
                        )
                    }),
                ));
                tests.push(Case::new(
                    t.lost == 0,
                    format!("cycle{}.trace_complete", c.cycle),
                    (t.lost > 0).then(|| format!("{} trace events lost", t.lost)),
                ));
            }
            if !c.stable {
                tests.push(Case::new(
                    false,
                    format!("cycle{}.settled", c.cycle),
                    Some(format!(
                        "kmemleak's reports still changing after {} scans",
                        c.scans
                    )),
                ));
            }
            tests.push(Case::new(
                c.kernel_log.is_empty(),
                format!("cycle{}.kernel_log", c.cycle),
                c.kernel_log
                    .first()
                    .map(|f| format!("{}: {}", f.kind, f.line)),
            ));
        }
        tests
    }
}
