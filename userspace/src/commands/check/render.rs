//! How a [`Check`] reads: a table of cycles and each leak with its
//! backtrace for people, KTAP for kernel CI.

use super::{Check, Leak};
use crate::output::{
    ktap::{self, Case},
    Outcome, Verdict,
};

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
    fn size(&self) -> String {
        format!("{} object(s), {} bytes", self.objects, self.bytes)
    }

    /// Which cycles allocated it: `in every cycle (1-10)`, `in cycle 1`.
    fn when(&self, cycles: usize) -> String {
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
    fn name(&self) -> &str {
        self.title
            .as_deref()
            .or(self.culprit.as_deref())
            .unwrap_or("memory leak")
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

impl Outcome for Check {
    /// Failed when the module leaked or would not unload; inconclusive
    /// when kmemleak's reports did not settle.
    fn verdict(&self) -> Verdict {
        if !self.stable {
            return Verdict::Inconclusive;
        }
        Verdict::of(self.leaks.is_empty() && self.stuck().is_none())
    }

    fn human(&self) -> String {
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
        s += &format!(
            "\nkmemleak: task stacks scanned, {} scan(s) after the last cycle{}{}\n",
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
        s += &format!(
            "{:>5}  {:<8} {:<9} {:<8} {:>6}\n",
            "cycle", "loaded", "exercise", "unloaded", "leaked"
        );
        for c in &self.cycles {
            let exercise = match c.exercise.iter().find(|&&st| st != 0) {
                Some(st) => format!("exit {st}"),
                None if c.exercise.is_empty() => "-".into(),
                None => "ok".into(),
            };
            s += &format!(
                "{:>5}  {:<8} {:<9} {:<8} {:>6}\n",
                c.cycle,
                yes(c.loaded),
                exercise,
                c.unloaded.map_or("-", yes),
                c.leaked
            );
            if let Some(e) = &c.init_error {
                s += &format!("       init failed: {e}\n");
            }
            if let Some(e) = &c.unload_error {
                s += &format!("       would not unload: {e}\n");
            }
        }
        for l in &self.leaks {
            s += &format!("LEAK {}", l.human(n));
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
        s += &format!("note: {}\n", crate::kmemleak::BLIND_SPOTS);
        s
    }

    fn summary(&self) -> String {
        let n = self.cycles.len();
        let (objects, bytes) = self.leaked();
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
            Verdict::Inconclusive => format!(
                "INCONCLUSIVE: kmemleak's reports were still changing after {} scans: run it again",
                self.scans
            ),
            Verdict::Passed => format!("ok: no leaks from {} in {n} cycle(s){inits}", self.module),
            Verdict::Failed if self.leaks.is_empty() => {
                format!("FAIL: no leaks from {} in {n} cycle(s){stuck}{inits}", self.module)
            }
            Verdict::Failed => format!(
                "FAIL: {} leaked {objects} object(s), {bytes} bytes, in {} place(s) in {n} cycle(s){stuck}{inits}",
                self.module,
                self.leaks.len()
            ),
        }
    }

    /// A case per cycle (it loaded or its init failed as a result, and it
    /// unloaded), then one per leak, or one saying there is none.
    fn ktap(&self) -> Option<String> {
        let n = self.cycles.len();
        let mut cases: Vec<Case> = self
            .cycles
            .iter()
            .map(|c| Case {
                ok: c.unloaded != Some(false),
                name: format!("cycle_{}", c.cycle),
                reason: c.unload_error.clone().or_else(|| {
                    c.init_error
                        .as_ref()
                        .map(|e| format!("SKIP init failed: {e}"))
                }),
            })
            .collect();
        for l in &self.leaks {
            let at = l
                .culprit_line
                .as_deref()
                .map(|at| format!(" at {at}"))
                .unwrap_or_default();
            cases.push(Case {
                ok: false,
                name: l.name().replace(' ', "_"),
                reason: Some(format!("{}{at}, {}", l.size(), l.when(n))),
            });
        }
        if self.leaks.is_empty() {
            cases.push(Case {
                ok: self.stable,
                name: format!("no_leaks_from_{}", self.module),
                reason: (!self.stable).then(|| "kmemleak's reports did not settle".to_string()),
            });
        }
        Some(ktap::document(
            &format!("leaklab check {}", self.module),
            &cases,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn cycles_read_as_ranges() {
        assert_eq!(ranges([1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(ranges([4]), "4");
        assert_eq!(ranges([]), "");
    }
}
