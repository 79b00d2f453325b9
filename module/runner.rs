// SPDX-License-Identifier: GPL-2.0

//! Running the patterns: each pattern's state ([`PatternState`]: what one
//! leaky run leaks, measured at load, and the counters of both variants) and
//! [`run`], which runs a variant under the leak cap with stale-pointer
//! hygiene around every run.

use crate::{
    accounting::{LeakBudget, Recent, Stats, Tally, CLASSES},
    hygiene::{launder, scrub_stack, settle_deferred_frees},
    pattern::{Pattern, Variant},
};
use kernel::prelude::*;

/// The largest count one write may ask for.
pub(crate) const MAX_RUNS: u32 = 10_000;

/// What one leaky run of a pattern leaks: measured when the module loads, by
/// one run of the fixed variant (the two allocate the same objects; the leaky
/// one loses them).
#[derive(Clone, Copy, Default)]
pub(crate) struct Expect {
    pub(crate) objects: usize,
    pub(crate) bytes: usize,
    /// The sizes of the objects, as the allocator rounds them (0: unused).
    classes: [usize; CLASSES],
}

impl Expect {
    /// Runs the fixed variant of `pattern` once and measures it.
    fn calibrate(pattern: &Pattern) -> Result<Self> {
        let mut t = Tally::default();
        let r = (pattern.fixed)(&mut t);
        // The objects just freed are the first the next run allocates (slab
        // freelists are LIFO): stale pointers to them on the loading task's
        // stack would hide the leaky variant's first leak.
        scrub_stack();
        r?;
        Ok(Self {
            objects: t.allocated,
            bytes: t.allocated_bytes,
            classes: t.classes,
        })
    }
}

/// One pattern's part of the module's state.
pub(crate) struct PatternState {
    pub(crate) pattern: &'static Pattern,
    /// What one leaky run leaks.
    pub(crate) expect: Expect,
    /// Counters of the leaky variant.
    pub(crate) leaky: Stats,
    /// Counters of the fixed variant.
    pub(crate) fixed: Stats,
    /// The objects the leaky variant lost last.
    pub(crate) lost: Recent,
}

impl PatternState {
    /// Measures `pattern` (one run of its fixed variant) and starts its counters.
    pub(crate) fn new(pattern: &'static Pattern) -> Result<Self> {
        let mut state = Self {
            pattern,
            expect: Expect::default(),
            leaky: Stats::new(),
            fixed: Stats::new(),
            lost: Recent::new(),
        };
        // On failure `state` is dropped, which frees what the run kept.
        state.expect = Expect::calibrate(pattern)?;
        Ok(state)
    }

    /// The counters of `variant`.
    pub(crate) fn stats(&self, variant: Variant) -> &Stats {
        match variant {
            Variant::Leaky => &self.leaky,
            Variant::Fixed => &self.fixed,
        }
    }
}

impl Drop for PatternState {
    fn drop(&mut self) {
        if let Some(at_unload) = self.pattern.at_unload {
            at_unload();
        }
    }
}

/// The code a variant runs. The test-only sabotaged build (see
/// [`crate::SABOTAGED`]) runs the fixed code for both, so that nothing leaks
/// and the tool's verdicts must say so.
fn code(pattern: &Pattern, variant: Variant) -> fn(&mut Tally) -> Result {
    match variant {
        Variant::Leaky if !crate::SABOTAGED => pattern.leaky,
        Variant::Leaky | Variant::Fixed => pattern.fixed,
    }
}

/// Runs `variant` of `state`'s pattern `n` times. A leaky request first
/// reserves what it will leak under `budget`, and fails with `ENOSPC`,
/// running nothing, if that does not fit.
pub(crate) fn run(state: &PatternState, variant: Variant, n: u32, budget: &LeakBudget) -> Result {
    let leaky = variant == Variant::Leaky;
    let reserve = if leaky {
        state.expect.bytes.checked_mul(n as usize).ok_or(ENOSPC)?
    } else {
        0
    };
    budget.reserve(reserve)?;
    if leaky {
        settle_deferred_frees();
    }
    let f = code(state.pattern, variant);
    let stats = state.stats(variant);
    let mut leaked_bytes: usize = 0;
    let mut result = Ok(());
    for _ in 0..n {
        let mut t = Tally::default();
        if leaky {
            launder(&state.expect.classes);
            scrub_stack();
        }
        let r = f(&mut t);
        scrub_stack();
        stats.add(&t, r.is_ok());
        state.lost.add(&t);
        leaked_bytes = leaked_bytes.saturating_add(t.leaked_bytes);
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    // Give back what was reserved but not leaked (a failed run, or objects
    // smaller than measured at load).
    budget.release(reserve.saturating_sub(leaked_bytes));
    if leaked_bytes > reserve {
        // Never expected: account for it rather than underflow later.
        budget.charge(leaked_bytes - reserve);
    }
    result
}
