// SPDX-License-Identifier: GPL-2.0
//! A check's result as one HTML page: the verdict, the run's facts, the
//! table of cycles, and each leak (by each detector) with its backtrace and
//! the source line of each of the module's frames.

use super::{
    render::{cycle_row, CYCLE_COLUMNS},
    Check, Leak,
};
use crate::output::{
    html::{Cell, Page, Row},
    Outcome,
};

impl Check {
    /// The page (`leaklab show --format html`).
    pub(super) fn page(&self) -> String {
        let mut p = Page::new(&format!("leaklab check: {}", self.module));
        p.verdict(self.verdict(), &self.summary());
        // The heading's lines: the run, then each detector's.
        let heading = self.heading();
        let mut lines = heading.lines();
        p.para(lines.next().unwrap_or_default(), false);
        let facts: Vec<(&str, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        p.facts(&facts);

        p.heading(2, "Cycles");
        let rows: Vec<Row> = self
            .cycles
            .iter()
            .map(|c| Row {
                cells: cycle_row(c)
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| match i {
                        0 | 4 => Cell::Num(t),
                        _ => Cell::Text(t),
                    })
                    .collect(),
                bad: c.leaked > 0 || c.unloaded == Some(false),
            })
            .collect();
        p.table("cycles", &CYCLE_COLUMNS, &rows);
        for c in &self.cycles {
            if let Some(e) = &c.init_error {
                p.para(&format!("cycle {}: init failed: {e}", c.cycle), true);
            }
            if let Some(e) = &c.unload_error {
                p.para(&format!("cycle {}: would not unload: {e}", c.cycle), true);
            }
        }

        let n = self.cycles.len();
        leaks(&mut p, "Leaks found by kmemleak", &self.leaks, n);
        leaks(
            &mut p,
            "Leaks found by the allocation trace",
            self.traced_leaks(),
            n,
        );
        if !self.outside.is_empty() {
            leaks(
                &mut p,
                &format!("Outside {}'s code paths, not held against it", self.module),
                &self.outside,
                n,
            );
        }
        p.heading(2, "What the detectors cannot see");
        if !self.blind_spots.is_empty() {
            p.para(&self.blind_spots, true);
        }
        if let Some(t) = &self.trace {
            p.para(&t.blind_spots, true);
        }
        p.finish()
    }
}

/// A section of `leaks` (none: no section), each with its size, the
/// cycles it was allocated in and its backtrace.
fn leaks(p: &mut Page, title: &str, leaks: &[Leak], cycles: usize) {
    if leaks.is_empty() {
        return;
    }
    p.heading(2, title);
    for l in leaks {
        p.heading(3, l.name());
        p.para(&format!("{}, {}", l.size(), l.when(cycles)), false);
        p.backtrace(&l.frames);
    }
}
