// SPDX-License-Identifier: GPL-2.0
//! A cycle's or matrix's result as one HTML page: the verdict, each
//! cycle's table (the rows that went wrong marked), and each leaky row's
//! culprits and backtrace with their source lines.

use super::{render::COLUMNS, verdict::CycleRecord, CycleRun};
use crate::output::{
    html::{Cell, Page, Row},
    Outcome,
};

impl CycleRun {
    /// The page (`leaklab show --format html`).
    pub(super) fn page(&self) -> String {
        let mut p = Page::new(&format!("leaklab matrix on {}", self.kernel));
        p.verdict(self.verdict(), &self.summary());
        p.facts(&[
            ("kernel", self.kernel.clone()),
            (
                "detectors",
                self.detectors
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("cycles", self.cycles.len().to_string()),
            ("patterns", self.patterns.len().to_string()),
        ]);
        for c in &self.cycles {
            p.heading(2, &self.heading(c));
            let rows: Vec<Row> = self
                .rows(c)
                .into_iter()
                .map(|(cells, bad)| Row {
                    cells: cells
                        .into_iter()
                        .enumerate()
                        .map(|(i, t)| match i {
                            2..=5 => Cell::Num(t),
                            _ => Cell::Text(t),
                        })
                        .collect(),
                    bad,
                })
                .collect();
            p.table(&format!("cycle{}", c.cycle), &COLUMNS, &rows);
            p.para(
                "objects/bytes each detector found, against what the module says it leaked; * marks what kmemleak cannot see (pages, memory still referenced)",
                true,
            );
            leaks(&mut p, c);
        }
        p.finish()
    }
}

/// Cycle `c`'s leaky rows: their culprits and one backtrace each.
fn leaks(p: &mut Page, c: &CycleRecord) {
    for v in c.verdicts.iter().filter(|v| v.runs > 0) {
        let culprits: Vec<String> = v
            .culprits
            .iter()
            .map(|(culprit, n)| format!("{n} x {culprit}"))
            .collect();
        if culprits.is_empty() && v.example.is_none() {
            continue;
        }
        p.heading(3, &format!("{} {}", v.pattern, v.variant.name()));
        p.backtrace(&culprits);
        if let Some(e) = &v.example {
            p.para(&format!("e.g. {} bytes, allocated at:", e.size), false);
            p.backtrace(&e.symbolized);
        }
    }
}
