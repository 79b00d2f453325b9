// SPDX-License-Identifier: GPL-2.0
//! The verdict rules, each shown failing.

use super::*;
use crate::output::{Outcome, Verdict as RunVerdict};

fn pattern() -> PatternInfo {
    PatternInfo {
        name: "error_path".into(),
        description: String::new(),
        objects: 1,
        bytes: 256,
        after_unload: false,
        kmemleak: true,
        grows: false,
    }
}

fn record(verdicts: Vec<Verdict>, stable: bool) -> CycleRecord {
    let ok = rules::cycle(verdicts.len()).is_none() && verdicts.iter().all(|v| v.ok);
    CycleRecord {
        cycle: 1,
        verdicts,
        unexpected: Vec::new(),
        kernel_log: Vec::new(),
        expected_log: Vec::new(),
        references: Vec::new(),
        layout: ModuleLayout {
            name: "leaklab".into(),
            sections: Vec::new(),
            loader: None,
        },
        scans: 6,
        stable,
        meminfo_delta: MemInfo::default(),
        slab_delta: BTreeMap::new(),
        trace: None,
        ok,
    }
}

/// The row of error_path leaky, one run, its object at 0x1000, judged
/// on what kmemleak `found`.
/// A growing pattern's row judged by the trace alone: its growth is
/// the verdict, nothing may be left after the unload.
fn growing(variant: Variant, first: Count, second: Count, left: &[Object]) -> Verdict {
    let p = PatternInfo {
        name: "unbounded_cache".into(),
        objects: 1,
        bytes: 1024,
        kmemleak: false,
        grows: true,
        ..pattern()
    };
    let mut st = StatRecord::new(p.name.clone(), variant);
    (st.leaked, st.leaked_bytes) = (17, 17 * 1024);
    let mut v = new_verdict(&p, variant, 1, &st, &[], (false, true));
    if let Some(g) = v.trace.as_mut().and_then(|t| t.growth.as_mut()) {
        (g.runs, g.first, g.second) = (8, first, second);
    }
    for o in left {
        v.count_traced(*o);
    }
    judge(&mut v);
    v
}

#[test]
fn growth_passes_at_the_stated_slope_and_fails_off_it() {
    let c = |objects, bytes| Count { objects, bytes };
    let v = growing(Variant::Leaky, c(10, 10240), c(18, 18432), &[]);
    assert!(v.ok, "{v:#?}");
    assert!(v
        .blind
        .as_deref()
        .is_some_and(|b| b.starts_with("referenced")));
    let flat = growing(Variant::Leaky, c(10, 10240), c(10, 10240), &[]);
    assert_eq!(
        flat.reason.as_deref(),
        Some("trace: grew by 0 objects / 0 bytes a run while loaded (10 -> 10 objects over 8 runs), the module states 1 / 1024")
    );
    let bounded = growing(Variant::Fixed, c(5, 4160), c(5, 4160), &[]);
    assert!(bounded.ok, "{bounded:#?}");
    let unbounded = growing(Variant::Fixed, c(5, 4160), c(13, 12352), &[]);
    assert!(!unbounded.ok, "{unbounded:#?}");
    // Freed at unload, or it is a leak too.
    let left = Object {
        address: 0x2000,
        size: 1024,
    };
    let kept = growing(Variant::Leaky, c(10, 10240), c(18, 18432), &[left]);
    assert!(
        kept.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("trace: the trace reported 1 objects, expected 0")),
        "{kept:#?}"
    );
}

#[test]
fn pages_are_the_trace_s_to_find_and_kmemleak_s_to_miss() {
    let p = PatternInfo {
        name: "page_leak".into(),
        objects: 1,
        bytes: 8192,
        kmemleak: false,
        ..pattern()
    };
    let mut st = StatRecord::new(p.name.clone(), Variant::Leaky);
    (st.leaked, st.leaked_bytes) = (1, 8192);
    let page = Object {
        address: 0x4a31000,
        size: 8192,
    };
    let row = |traced: &[Object]| {
        let mut v = new_verdict(&p, Variant::Leaky, 1, &st, &[], (true, true));
        for o in traced {
            v.count_traced(*o);
        }
        judge(&mut v);
        v
    };
    let seen = row(&[page]);
    assert!(seen.ok, "{seen:#?}");
    assert_eq!(seen.expected, Count::default(), "kmemleak expects nothing");
    assert!(seen
        .blind
        .as_deref()
        .is_some_and(|b| b.contains("page allocator")));
    let missed = row(&[]);
    assert_eq!(
        missed.reason.as_deref(),
        Some("trace: the trace reported 0 objects, expected 1")
    );
}

fn judged(found: &[Object]) -> Verdict {
    let lost = Object {
        address: 0x1000,
        size: 256,
    };
    let mut st = StatRecord::new("error_path".into(), Variant::Leaky);
    (st.leaked, st.leaked_bytes) = (1, 256);
    let mut v = new_verdict(&pattern(), Variant::Leaky, 1, &st, &[lost], (true, false));
    for o in found {
        v.count(*o);
    }
    judge(&mut v);
    v
}

#[test]
fn a_row_and_its_run_follow_the_rules() {
    let lost = Object {
        address: 0x1000,
        size: 256,
    };
    let good = judged(&[lost]);
    assert!(good.ok, "{:?}", good.reason);
    let run = CycleRun::new(
        vec![pattern()],
        vec![record(vec![good], true)],
        vec![Detector::Kmemleak],
    );
    assert_eq!((run.ok, run.verdict()), (true, RunVerdict::Passed));
    assert_eq!(run.summary(), "as expected");

    // Another object of the same size is not the one the module lost.
    let other = judged(&[Object {
        address: 0x2000,
        size: 256,
    }]);
    assert!(!other.ok);
    assert!(other.reason.as_deref().unwrap().contains("0x2000"));
    let run = CycleRun::new(
        vec![pattern()],
        vec![record(vec![other], true)],
        vec![Detector::Kmemleak],
    );
    assert_eq!((run.ok, run.verdict()), (false, RunVerdict::Failed));
    // Nothing reported.
    assert!(!judged(&[]).ok);
}

#[test]
fn an_empty_run_is_not_as_expected() {
    let run = CycleRun::new(
        Vec::new(),
        vec![record(Vec::new(), true)],
        vec![Detector::Kmemleak],
    );
    assert_eq!(run.verdict(), RunVerdict::Failed);
    assert!(
        run.summary().contains("nothing was judged"),
        "{}",
        run.summary()
    );
    let none = CycleRun::new(Vec::new(), Vec::new(), vec![Detector::Kmemleak]);
    assert_eq!(none.verdict(), RunVerdict::Failed);
}

#[test]
fn a_window_that_did_not_settle_is_inconclusive() {
    let lost = Object {
        address: 0x1000,
        size: 256,
    };
    let run = CycleRun::new(
        vec![pattern()],
        vec![record(vec![judged(&[lost])], false)],
        vec![Detector::Kmemleak],
    );
    assert_eq!(run.verdict(), RunVerdict::Inconclusive);
    assert_eq!(RunVerdict::Inconclusive.exit_status(), 3);
    assert!(
        run.summary().starts_with("INCONCLUSIVE"),
        "{}",
        run.summary()
    );
    assert!(run.ktap().unwrap().contains("not ok 3 cycle1.settled"));
}
