// SPDX-License-Identifier: GPL-2.0
//! The rules of the verdict, as pure functions: what the module states
//! against what kmemleak reported. Each rule has a test that passes it and
//! one that fails it (below, fed from real captures where one fits).

use serde::{Deserialize, Serialize};

use crate::ko::Variant;

/// A count of objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Count {
    /// Counts one more object of `size` bytes (saturating: sizes come from
    /// the kernel's text).
    pub fn add(&mut self, size: u64) {
        self.objects = self.objects.saturating_add(1);
        self.bytes = self.bytes.saturating_add(size);
    }
}

/// An object: where it starts and its size, as kmemleak and the module's
/// `leaked` file give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Object {
    /// Its start address.
    pub address: u64,
    /// Its size, as the allocator sized it.
    pub size: u64,
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x} ({} bytes)", self.address, self.size)
    }
}

/// What the module states about one pattern and variant of a run.
#[derive(Debug, Clone, Default)]
pub struct Stated {
    /// Objects and bytes the runs leak on purpose (0 for a fixed variant).
    pub expected: Count,
    /// The objects its `leaked` file names, in the order they were lost:
    /// all of them when there are `expected.objects`, else the first ones.
    pub objects: Vec<Object>,
    /// What its stats say the runs leaked.
    pub stats: Count,
}

/// The objects of `list`, for a reason.
fn named(list: &[Object]) -> String {
    list.iter()
        .map(Object::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sizes as `N x S B`, largest first.
fn sizes(list: &[u64]) -> String {
    let mut counts = std::collections::BTreeMap::<u64, usize>::new();
    for s in list {
        *counts.entry(*s).or_default() += 1;
    }
    counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} x {s} B"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Judges one pattern and variant that ran `runs` times: `None` when
/// kmemleak reported exactly what the module states it lost, else why not.
///
/// 1. A leaky variant must state a leak.
/// 2. kmemleak must report as many objects as stated.
/// 3. They must be the stated objects, one for one: by address and size
///    where the module names every object it lost; else every named object
///    must be reported, and the sizes must be the stated ones (those of one
///    run, `runs` times over) or, with none named, the bytes must agree.
/// 4. The module's own stats must agree with what kmemleak found.
pub fn row(variant: Variant, runs: u32, stated: &Stated, found: &[Object]) -> Option<String> {
    row_by("kmemleak", variant, runs, stated, found)
}

/// [`row`], for the objects `detector` found (`kmemleak`, `tracing`).
pub fn row_by(
    detector: &str,
    variant: Variant,
    runs: u32,
    stated: &Stated,
    found: &[Object],
) -> Option<String> {
    let expected = stated.expected;
    if variant == Variant::Leaky && runs > 0 && expected.objects == 0 {
        return Some(
            "the module states no leak for a leaky run (its expect file says 0 objects)".into(),
        );
    }
    let mut reported = Count::default();
    for f in found {
        reported.add(f.size);
    }
    // One for one: each named object takes the report at its address.
    let mut unmatched: Vec<Object> = found.to_vec();
    let mut missing = Vec::new();
    for s in &stated.objects {
        match unmatched.iter().position(|f| f == s) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(*s),
        }
    }
    let complete = stated.objects.len() as u64 == expected.objects;
    if reported.objects != expected.objects {
        let mut r = format!(
            "{detector} reported {} objects, expected {}",
            reported.objects, expected.objects
        );
        if !missing.is_empty() {
            r += &format!("; not reported: {}", named(&missing));
        }
        if complete && !unmatched.is_empty() {
            r += &format!("; reported but not lost: {}", named(&unmatched));
        }
        return Some(r);
    }
    if complete {
        if !missing.is_empty() || !unmatched.is_empty() {
            return Some(format!(
                "{detector} reported other objects than the module lost: not reported {}; reported instead {}",
                named(&missing),
                named(&unmatched)
            ));
        }
    } else if !missing.is_empty() {
        return Some(format!(
            "{detector} did not report {} that the module lost",
            named(&missing)
        ));
    } else if let Some(want) = sizes_of_runs(stated, runs) {
        let mut got: Vec<u64> = found.iter().map(|f| f.size).collect();
        got.sort_unstable();
        if got != want {
            return Some(format!(
                "{detector} reported objects of {}, the module lost {}",
                sizes(&got),
                sizes(&want)
            ));
        }
    } else if reported.bytes != expected.bytes {
        return Some(format!(
            "{detector} reported {} bytes, expected {}",
            reported.bytes, expected.bytes
        ));
    }
    if stated.stats != reported {
        return Some(format!(
            "the module's stats say {} objects / {} bytes leaked, {detector} found {} / {}",
            stated.stats.objects, stated.stats.bytes, reported.objects, reported.bytes
        ));
    }
    None
}

/// The sizes `runs` runs lose, sorted, when the named objects include all
/// of one run's (the first run's, named first).
fn sizes_of_runs(stated: &Stated, runs: u32) -> Option<Vec<u64>> {
    let runs = u64::from(runs).max(1);
    let per_run = usize::try_from(stated.expected.objects / runs).ok()?;
    if per_run == 0
        || !stated.expected.objects.is_multiple_of(runs)
        || stated.objects.len() < per_run
    {
        return None;
    }
    let one: Vec<u64> = stated.objects[..per_run].iter().map(|o| o.size).collect();
    let mut all: Vec<u64> = (0..runs).flat_map(|_| one.iter().copied()).collect();
    all.sort_unstable();
    Some(all)
}

/// Whether this kernel's per-CPU pointers are small numbers: on x86_64 the
/// per-CPU area is zero-based, so a `__alloc_percpu` pointer is an offset
/// such as `0x00023c54` (kmemleak-test's, measured), and kmemleak takes any
/// word of scanned memory that holds a number in the object's range for a
/// reference to it. On arm64 it is a kernel address.
pub const SMALL_PERCPU_POINTERS: bool = cfg!(target_arch = "x86_64");

/// Whether `address`, a reported object's, is such a small per-CPU
/// pointer (kernel addresses have their top bits set).
pub fn small_percpu_pointer(address: u64) -> bool {
    SMALL_PERCPU_POINTERS && address >> 32 == 0
}

/// Judges a reference module: kmemleak must report exactly the objects it
/// is known to leak, `expected` (all, of which per-CPU) against `found`
/// (all, of which at a small per-CPU pointer). Where per-CPU pointers are
/// small numbers (`small`), a per-CPU object kmemleak did not report may
/// have been matched by any number in memory: the row passes when exactly
/// such objects are missing, and [`reference_note`] says so.
pub fn reference(
    module: &str,
    expected: (u64, u64),
    found: (u64, u64),
    small: bool,
) -> Option<String> {
    let (all, percpu) = expected;
    let (got, got_percpu) = found;
    let others_exact = all.checked_sub(percpu) == got.checked_sub(got_percpu);
    let percpu_hidden = small && others_exact && got_percpu < percpu;
    (got != all && !percpu_hidden)
        .then(|| format!("kmemleak reported {got} objects of {module}, expected {all}"))
}

/// What a passing reference row says when kmemleak missed per-CPU objects
/// only ([`reference`]).
pub fn reference_note(expected: (u64, u64), found: (u64, u64), small: bool) -> Option<String> {
    let missing = expected.1.saturating_sub(found.1);
    (small && missing > 0 && found.0 < expected.0).then(|| {
        format!(
            "{missing} per-CPU object(s) not reported: on x86_64 a per-CPU pointer is a small number, which any word of memory can match"
        )
    })
}

/// Why a cycle's record cannot pass by its rows alone, if it cannot: a
/// cycle that judged nothing is not "as expected".
pub fn cycle(rows: usize) -> Option<String> {
    (rows == 0).then(|| "nothing was judged: no pattern, variant or reference module ran".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmemleak::report::parse;

    /// The console capture of error_path and conditional_free, leaky twice
    /// each (x86_64): two 256-byte and two 128-byte objects.
    const CAPTURE: &str = include_str!("../../../tests/data/leaklab-samples-x86_64.log");

    fn reported(size: u64) -> Vec<Object> {
        parse(CAPTURE)
            .into_iter()
            .filter(|r| r.size == size)
            .map(|r| Object {
                address: r.address,
                size: r.size,
            })
            .collect()
    }

    fn obj(address: u64, size: u64) -> Object {
        Object { address, size }
    }

    /// Two runs that lose a 64- and a 128-byte object each, of which
    /// `named` are named.
    fn two_runs(named: &[Object]) -> Stated {
        let c = Count {
            objects: 4,
            bytes: 384,
        };
        Stated {
            objects: named.to_vec(),
            expected: c,
            stats: c,
        }
    }

    /// What the module states for `objects` lost by `runs` runs.
    fn stated(objects: &[Object]) -> Stated {
        let mut c = Count::default();
        for o in objects {
            c.add(o.size);
        }
        Stated {
            expected: c,
            objects: objects.to_vec(),
            stats: c,
        }
    }

    #[test]
    fn exactly_the_lost_objects_pass() {
        let found = reported(256);
        assert_eq!(found.len(), 2);
        assert_eq!(row(Variant::Leaky, 2, &stated(&found), &found), None);
        // A fixed variant that lost nothing, and kmemleak reported nothing.
        assert_eq!(row(Variant::Fixed, 2, &Stated::default(), &[]), None);
    }

    #[test]
    fn a_leaky_run_that_states_no_leak_fails() {
        let r = row(Variant::Leaky, 1, &Stated::default(), &[]).unwrap();
        assert!(r.contains("states no leak for a leaky run"), "{r}");
    }

    #[test]
    fn a_fixed_run_with_a_report_fails() {
        let found = reported(128);
        let r = row(Variant::Fixed, 2, &Stated::default(), &found).unwrap();
        assert!(
            r.starts_with("kmemleak reported 2 objects, expected 0"),
            "{r}"
        );
    }

    #[test]
    fn a_missed_object_is_named() {
        let lost = reported(256);
        let r = row(Variant::Leaky, 2, &stated(&lost), &lost[..1]).unwrap();
        assert!(
            r.starts_with("kmemleak reported 1 objects, expected 2"),
            "{r}"
        );
        assert!(r.contains(&format!("not reported: {}", lost[1])), "{r}");
    }

    #[test]
    fn other_objects_of_the_same_count_fail() {
        // Same count and the same total bytes, other objects: 64 + 128
        // stated, 32 + 160 found.
        let lost = [obj(0x1000, 64), obj(0x2000, 128)];
        let found = [obj(0x1000, 32), obj(0x3000, 160)];
        let r = row(Variant::Leaky, 1, &stated(&lost), &found).unwrap();
        assert!(r.contains("other objects than the module lost"), "{r}");
        assert!(
            r.contains("0x2000 (128 bytes)") && r.contains("0x3000 (160 bytes)"),
            "{r}"
        );
        // Without addresses (none named), the sizes still have to match one
        // for one: the first run's sizes, twice.
        let unnamed = two_runs(&lost);
        let twice = [found, found].concat();
        let moved: Vec<Object> = twice
            .iter()
            .map(|o| Object {
                address: o.address + 0x100,
                size: o.size,
            })
            .collect();
        let r = row(Variant::Leaky, 2, &unnamed, &moved).unwrap();
        assert!(r.contains("did not report"), "{r}");
        let partly = two_runs(&lost[..1]);
        let r = row(Variant::Leaky, 2, &partly, &moved);
        // Named: only 0x1000, which was not reported (found at 0x1100).
        assert!(r.unwrap().contains("did not report 0x1000"));
    }

    #[test]
    fn sizes_of_runs_compare_as_a_multiset() {
        // Two runs of one that loses a 64- and a 128-byte object; only the
        // first run's objects are named.
        let first = [obj(0x1000, 64), obj(0x2000, 128)];
        let s = two_runs(&first);
        let mut good = first.to_vec();
        good.extend([obj(0x5000, 128), obj(0x6000, 64)]);
        // Complete by count (4 named would be complete; here 2 of 4).
        assert_eq!(row(Variant::Leaky, 2, &s, &good), None);
        let mut bad = good.clone();
        bad[2].size = 96;
        bad[3].size = 96;
        let r = row(Variant::Leaky, 2, &s, &bad).unwrap();
        assert!(r.contains("2 x 96 B"), "{r}");
    }

    #[test]
    fn stats_that_disagree_fail() {
        let found = reported(256);
        let mut s = stated(&found);
        s.stats.objects = 3;
        let r = row(Variant::Leaky, 2, &s, &found).unwrap();
        assert!(r.contains("the module's stats say 3 objects"), "{r}");
    }

    #[test]
    fn references_and_empty_cycles() {
        // Every object, the per-CPU one too: ok, with nothing to say.
        assert_eq!(reference("kmemleak_test", (25, 1), (25, 1), true), None);
        assert_eq!(reference_note((25, 1), (25, 1), true), None);
        // A slab object missing: a failure, whatever the architecture.
        assert!(reference("kmemleak_test", (25, 1), (24, 1), true).is_some());
        assert!(reference("kmemleak_test", (25, 1), (24, 1), false).is_some());
        // Only the per-CPU object missing: ok where per-CPU pointers are
        // small numbers (said), a failure where they are addresses.
        assert_eq!(reference("kmemleak_test", (25, 1), (24, 0), true), None);
        assert!(reference_note((25, 1), (24, 0), true)
            .is_some_and(|n| n.starts_with("1 per-CPU object(s) not reported")));
        assert!(reference("kmemleak_test", (25, 1), (24, 0), false).is_some());
        // A module stated without per-CPU objects gets no allowance.
        assert!(reference("mine", (25, 0), (24, 0), true).is_some());
        assert!(reference("rust_minimal", (0, 0), (1, 0), true).is_some());
        // Addresses: a kernel address is never a small per-CPU pointer.
        assert!(!small_percpu_pointer(0xffff_8880_0015_df60));
        assert_eq!(
            small_percpu_pointer(0x0002_3c54),
            cfg!(target_arch = "x86_64")
        );
        assert_eq!(cycle(1), None);
        assert!(cycle(0).unwrap().contains("nothing was judged"));
    }
}
