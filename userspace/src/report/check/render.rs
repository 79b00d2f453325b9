// SPDX-License-Identifier: GPL-2.0
//! How a [`Check`] reads: a table of cycles and each leak with its
//! backtrace for people, KTAP for kernel CI.

use super::{total, Check, CycleRecord, Leak, TraceCheck};
use crate::analysis::detector::Detector;
use crate::output::{
    ktap::{self, Case},
    Outcome, Verdict,
};
use crate::trace::allocinfo::AllocInfo;

/// `1-10`, `1, 3, 5-7`: the cycles, short.
fn ranges(cycles: impl IntoIterator<Item = u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    let show = |(a, b): (u32, u32)| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    for n in cycles {
        run = match run {
            Some((a, b)) if n == b + 1 => Some((a, n)),
            Some(r) => {
                out.push(show(r));
                Some((n, n))
            }
            None => Some((n, n)),
        };
    }
    out.extend(run.map(show));
    out.join(", ")
}

impl Leak {
    /// `N object(s), B bytes`.
    pub(super) fn size(&self) -> String {
        format!("{} object(s), {} bytes", self.objects, self.bytes)
    }

    /// Which cycles allocated it: `in every cycle (1-10)`, `in cycle 1`.
    pub(super) fn when(&self, cycles: usize) -> String {
        let known = ranges(self.per_cycle.keys().copied());
        let mut s = match self.per_cycle.len() {
            0 => "cycle unknown".to_string(),
            n if n == cycles && n > 1 => format!("in every cycle ({known})"),
            1 => format!("in cycle {known}"),
            _ => format!("in cycles {known}"),
        };
        if let Some(first) = self.first_cycle.filter(|_| self.per_cycle.len() > 1) {
            s += &format!(", first in cycle {first}");
        }
        if self.unknown_cycle > 0 && !self.per_cycle.is_empty() {
            s += &format!(
                ", {} allocated by {} (cycle unknown)",
                self.unknown_cycle,
                self.comms.join("/")
            );
        } else if self.per_cycle.is_empty() && !self.comms.is_empty() {
            s += &format!(": allocated by {}", self.comms.join("/"));
        }
        s
    }

    /// The leak's name: its title, else its culprit frame.
    pub(super) fn name(&self) -> &str {
        self.title
            .as_deref()
            .or(self.culprit.as_deref())
            .unwrap_or("memory leak")
    }

    /// Whether `others` (the other detector's leaks) hold this one: the
    /// same culprit frame.
    fn among(&self, others: &[Leak]) -> bool {
        others
            .iter()
            .any(|o| o.culprit == self.culprit && o.culprit_line == self.culprit_line)
    }

    fn human(&self, cycles: usize) -> String {
        let mut s = format!("{}: {}, {}\n", self.name(), self.size(), self.when(cycles));
        for f in &self.frames {
            s += &format!("    {f}\n");
        }
        s
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// The allocation profiling view: what the module's own call sites held
/// at its unloads, and what Rust's helpers gained.
fn allocinfo_human(a: &AllocInfo, module: &str) -> String {
    let mut s = format!(
        "allocinfo (a view, not part of the verdict): {module}'s own call sites held {} bytes at its unloads; Rust's allocation helpers gained {} bytes\n",
        a.at_unload_bytes(),
        a.rust_helper_bytes()
    );
    for site in &a.at_unload {
        s += &format!("  {} bytes at unload: {}\n", site.bytes, site.site);
    }
    for site in &a.rust_helpers {
        s += &format!("  {:+} bytes: {}\n", site.bytes, site.site);
    }
    s
}

impl Outcome for Check {
    /// Failed when the module leaked (by any detector) or would not
    /// unload; inconclusive when kmemleak's reports did not settle or the
    /// trace lost events or could not place a failed init's code.
    fn verdict(&self) -> Verdict {
        if !self.stable || self.trace.as_ref().is_some_and(TraceCheck::undecided) {
            return Verdict::Inconclusive;
        }
        Verdict::of(
            self.leaks.is_empty() && self.traced_leaks().is_empty() && self.stuck().is_none(),
        )
    }

    fn html(&self) -> Option<String> {
        Some(self.page())
    }

    fn human(&self) -> String {
        let n = self.cycles.len();
        let mut s = self.heading();
        s += &self.cycle_table();
        let both = self.detectors.len() > 1;
        for l in &self.leaks {
            let only = if both && !l.among(self.traced_leaks()) {
                " (kmemleak only: allocated outside the module's own call chain?)"
            } else {
                ""
            };
            s += &format!("LEAK{only} {}", l.human(n));
        }
        for l in self.traced_leaks() {
            if both && l.among(&self.leaks) {
                continue;
            }
            let only = if both {
                " (trace only: pages, an object still referenced, or one a stale pointer hides from kmemleak)"
            } else {
                ""
            };
            s += &format!("LEAK by trace{only} {}", l.human(n));
        }
        if !self.outside.is_empty() {
            let objects: usize = self.outside.iter().map(|l| l.objects).sum();
            s += &format!(
                "outside {}'s code paths, not held against it: {objects} object(s) in {} place(s)\n",
                self.module,
                self.outside.len()
            );
            for l in &self.outside {
                s += &format!("  {}", l.human(n));
            }
        }
        if let Some(a) = &self.allocinfo {
            s += &allocinfo_human(a, &self.module);
        }
        if self.detectors.contains(&Detector::Kmemleak) {
            s += &format!("note: {}\n", crate::kmemleak::BLIND_SPOTS);
        }
        if let Some(t) = &self.trace {
            s += &format!("note: {}\n", t.blind_spots);
        }
        s
    }

    fn summary(&self) -> String {
        let n = self.cycles.len();
        // kmemleak's count where it judged, else the trace's.
        let (objects, bytes, places) = if self.detectors.contains(&Detector::Kmemleak) {
            let (o, b) = self.leaked();
            (o, b, self.leaks.len())
        } else {
            let (o, b) = total(self.traced_leaks());
            (o, b, self.traced_leaks().len())
        };
        let traced = match (&self.trace, self.detectors.len() > 1) {
            (Some(t), true) => {
                let (o, b) = total(&t.leaks);
                format!(
                    "; the trace: {o} object(s), {b} bytes, in {} place(s)",
                    t.leaks.len()
                )
            }
            _ => String::new(),
        };
        let stuck = self
            .stuck()
            .map(|c| format!("; it would not unload in cycle {}", c.cycle))
            .unwrap_or_default();
        let failed_inits = self
            .cycles
            .iter()
            .filter(|c| c.init_error.is_some())
            .count();
        let inits = match failed_inits {
            0 => String::new(),
            f => format!("; its init failed in {f} of {n} cycle(s)"),
        };
        match self.verdict() {
            Verdict::Inconclusive => match self.trace.as_ref().filter(|t| t.undecided()) {
                Some(t) if t.lost > 0 => format!(
                    "INCONCLUSIVE: the allocation trace lost {} events: run it again with a larger --trace-buffer-kb",
                    t.lost
                ),
                Some(t) => format!(
                    "INCONCLUSIVE: the allocation trace cannot tell the module's allocations: {}",
                    t.undecided.join("; ")
                ),
                None => format!(
                    "INCONCLUSIVE: kmemleak's reports were still changing after {} scans: run it again",
                    self.scans
                ),
            },
            Verdict::Passed => format!("ok: no leaks from {} in {n} cycle(s){inits}", self.module),
            Verdict::Failed if objects == 0 && traced.is_empty() => {
                format!("FAIL: no leaks from {} in {n} cycle(s){stuck}{inits}", self.module)
            }
            Verdict::Failed => format!(
                "FAIL: {} leaked {objects} object(s), {bytes} bytes, in {places} place(s) in {n} cycle(s){traced}{stuck}{inits}",
                self.module,
            ),
        }
    }

    /// Its KTAP: [`Check::tests`].
    fn ktap(&self) -> Option<String> {
        Some(ktap::document(
            &format!("leaklab check {}", self.module),
            &self.tests(),
        ))
    }
}

impl Check {
    /// The check's tests, as KTAP and LAVA report them: a case per cycle
    /// (it loaded or its init failed as a result, and it unloaded), then
    /// one per leak counting its objects, or one saying there is none.
    pub fn tests(&self) -> Vec<Case> {
        let n = self.cycles.len();
        let mut cases: Vec<Case> = self
            .cycles
            .iter()
            .map(|c| {
                Case::new(
                    c.unloaded != Some(false),
                    format!("cycle_{}", c.cycle),
                    c.unload_error.clone().or_else(|| {
                        c.init_error
                            .as_ref()
                            .map(|e| format!("SKIP init failed: {e}"))
                    }),
                )
            })
            .collect();
        for l in &self.leaks {
            let at = l
                .culprit_line
                .as_deref()
                .map(|at| format!(" at {at}"))
                .unwrap_or_default();
            cases.push(
                Case::new(
                    false,
                    l.name().replace(' ', "_"),
                    Some(format!("{}{at}, {}", l.size(), l.when(n))),
                )
                .counting(l.objects as u64),
            );
        }
        for l in self.traced_leaks() {
            cases.push(
                Case::new(
                    false,
                    format!("trace_{}", l.name().replace(' ', "_")),
                    Some(format!("{}, {}", l.size(), l.when(n))),
                )
                .counting(l.objects as u64),
            );
        }
        if self.leaks.is_empty() && self.traced_leaks().is_empty() {
            let trace = self.trace.as_ref().filter(|t| t.undecided());
            cases.push(
                Case::new(
                    self.stable && trace.is_none(),
                    format!("no_leaks_from_{}", self.module),
                    match (self.stable, trace) {
                        (false, _) => Some("kmemleak's reports did not settle".to_string()),
                        (true, None) => None,
                        (true, Some(t)) if t.lost > 0 => {
                            Some(format!("the trace lost {} events", t.lost))
                        }
                        (true, Some(t)) => Some(t.undecided.join("; ")),
                    },
                )
                .counting(0),
            );
        }
        cases
    }
}

impl Check {
    /// The run's first lines: the module, its kernel, cycles, parameters,
    /// exercise, and each detector's own line.
    pub(super) fn heading(&self) -> String {
        let n = self.cycles.len();
        let mut s = format!(
            "leaklab check: {} ({}) on {}, {n} cycle(s)",
            self.module,
            self.path.display(),
            self.kernel
        );
        if !self.params.is_empty() {
            s += &format!(", params: {}", self.params.join(" "));
        }
        if !self.exercise.is_empty() {
            let names: Vec<String> = self
                .exercise
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            s += &format!(", exercise: {}", names.join(" "));
        }
        if self.detectors.contains(&Detector::Kmemleak) {
            s += &format!(
                "\nkmemleak: task stacks scanned, {} scan(s) after the last cycle{}{}",
                self.scans,
                if self.stable {
                    ", settled"
                } else {
                    ", NOT settled"
                },
                if self.kept_loaded {
                    ", module kept loaded"
                } else {
                    ""
                }
            );
        }
        if let Some(t) = &self.trace {
            s += &format!(
                "\ntrace: {} events, {} lost, {} leak(s) once the module was gone",
                t.events,
                t.lost,
                t.leaks.len()
            );
        }
        s
    }

    /// The table of cycles, with each failed init and unload under its row.
    fn cycle_table(&self) -> String {
        let line = |r: &[String; 5]| {
            format!(
                "{:>5}  {:<8} {:<9} {:<8} {:>6}\n",
                r[0], r[1], r[2], r[3], r[4]
            )
        };
        let mut s = String::new();
        s += "\n";
        s += &line(&CYCLE_COLUMNS.map(String::from));
        for c in &self.cycles {
            s += &line(&cycle_row(c));
            if let Some(e) = &c.init_error {
                s += &format!("       init failed: {e}\n");
            }
            if let Some(e) = &c.unload_error {
                s += &format!("       would not unload: {e}\n");
            }
        }
        s
    }
}

/// The columns of the table of cycles.
pub(super) const CYCLE_COLUMNS: [&str; 5] = ["cycle", "loaded", "exercise", "unloaded", "leaked"];

/// Cycle `c`'s row in the table of cycles.
pub(super) fn cycle_row(c: &CycleRecord) -> [String; 5] {
    let exercise = match c.exercise.iter().find(|&&st| st != 0) {
        Some(st) => format!("exit {st}"),
        None if c.exercise.is_empty() => "-".into(),
        None => "ok".into(),
    };
    [
        c.cycle.to_string(),
        yes(c.loaded).into(),
        exercise,
        c.unloaded.map_or("-", yes).into(),
        c.leaked.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::ranges;
    use crate::{output::Verdict, report::check::Check};

    /// A real check of the example driver (error_path, x86_64).
    fn saved() -> Check {
        serde_json::from_str(include_str!(
            "../../../tests/data/check/error_path-x86_64.json"
        ))
        .unwrap()
    }

    #[test]
    fn leaks_are_listed_by_objects_then_bytes_then_fingerprint() {
        let c = saved();
        let leak = |objects, bytes, fingerprint: &str| {
            let mut l = c.leaks[0].clone();
            (l.objects, l.bytes, l.fingerprint) = (objects, bytes, fingerprint.into());
            l
        };
        let mut leaks = [
            leak(10, 1280, "0a"),
            leak(2, 9000, "00"),
            leak(10, 2560, "ff"),
            leak(10, 1280, "01"),
        ];
        leaks.sort_by(crate::report::check::Leak::listed_order);
        let order: Vec<_> = leaks
            .iter()
            .map(|l| (l.objects, l.bytes, l.fingerprint.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (10, 2560, "ff"),
                (10, 1280, "01"),
                (10, 1280, "0a"),
                (2, 9000, "00")
            ]
        );
    }

    #[test]
    fn a_failed_init_the_trace_could_not_place_is_inconclusive_not_ok() {
        use crate::output::Outcome;
        let mut c = saved();
        c.leaks.clear();
        if let Some(t) = c.trace.as_mut() {
            t.leaks.clear();
        }
        assert_eq!(
            c.verdict(),
            Verdict::Passed,
            "nothing found, nothing undecided"
        );
        c.trace.as_mut().unwrap().undecided =
            vec!["cycle 1: its init failed and where it was loaded is unknown (no probe)".into()];
        assert_eq!(c.verdict(), Verdict::Inconclusive);
        assert!(
            c.summary().contains(
                "INCONCLUSIVE: the allocation trace cannot tell the module's allocations: cycle 1:"
            ),
            "{}",
            c.summary()
        );
        let tests = c.tests();
        assert!(tests.iter().any(|t| !t.ok), "the KTAP case fails too");
    }

    #[test]
    fn cycles_read_as_ranges() {
        assert_eq!(ranges([1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(ranges([4]), "4");
        assert_eq!(ranges([]), "");
    }
}
