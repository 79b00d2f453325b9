// SPDX-License-Identifier: GPL-2.0

//! The catalogue of leak patterns, and the bookkeeping around them: what each
//! run allocated and leaked, the cap on intentionally leaked bytes, and the
//! per-pattern expectation measured when the module loads.

use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{bindings, ffi::c_void, prelude::*, str::CStr};

/// The largest count one write may ask for.
pub(crate) const MAX_RUNS: u32 = 10_000;

/// Default cap on intentionally leaked bytes (4 MiB).
pub(crate) const DEFAULT_CAP: usize = 4 << 20;

/// The two variants of every pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// The buggy code.
    Leaky = 0,
    /// The same code, fixed.
    Fixed = 1,
}

impl Variant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Leaky => "leaky",
            Variant::Fixed => "fixed",
        }
    }
}

/// What one run allocated and what it leaked on purpose, as kmemleak will
/// see it: objects, and bytes as the allocator sized them (`ksize`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) allocated: usize,
    pub(crate) allocated_bytes: usize,
    pub(crate) leaked: usize,
    pub(crate) leaked_bytes: usize,
    /// The first leaked objects: (address, size), kept inverted (see [`Recent`]).
    lost: [(usize, usize); 4],
    /// The distinct allocation sizes seen, up to four (see [`launder`]).
    classes: [usize; 4],
}

fn ksize<T: ?Sized>(p: *const T) -> usize {
    // SAFETY: Callers pass a pointer into a live slab or kmalloc object;
    // `ksize` accepts any pointer into one.
    unsafe { bindings::ksize(p.cast::<c_void>()) }
}

impl Tally {
    /// Counts the live object `p` points into as allocated.
    pub(crate) fn allocated<T: ?Sized>(&mut self, p: *const T) {
        let size = ksize(p);
        self.allocated += 1;
        self.allocated_bytes += size;
        if !self.classes.contains(&size) {
            if let Some(free) = self.classes.iter_mut().find(|c| **c == 0) {
                *free = size;
            }
        }
    }

    /// Counts the live object `p` points into as leaked: the last pointer to
    /// it is about to be lost.
    pub(crate) fn leaked<T: ?Sized>(&mut self, p: *const T) {
        let size = ksize(p);
        if let Some(slot) = self.lost.get_mut(self.leaked) {
            *slot = (!(p.cast::<u8>() as usize), size);
        }
        self.leaked += 1;
        self.leaked_bytes += size;
    }
}

/// One leak pattern: a driver-style sample in a leaky and a fixed variant.
pub(crate) struct Pattern {
    /// Directory name under `patterns/`.
    pub(crate) name: &'static CStr,
    /// What leaks and why, and what the fix does.
    pub(crate) description: &'static str,
    /// One run of the leaky variant.
    pub(crate) leaky: fn(&mut Tally) -> Result,
    /// One run of the fixed variant.
    pub(crate) fixed: fn(&mut Tally) -> Result,
    /// Whether the leak shows only after `rmmod`.
    pub(crate) after_unload: bool,
    /// Frees what earlier leaky runs left armed, if the pattern can; returns
    /// the objects and bytes freed.
    pub(crate) disarm: Option<fn() -> (usize, usize)>,
}

/// The addresses of the most recently leaked objects of one pattern, so that
/// the tool can say which ones kmemleak did not report, and ask it why.
///
/// Addresses are stored bitwise inverted: an inverted kernel address is not a
/// kernel address, so this record is not itself a reference that would hide
/// the leak from kmemleak while the module is loaded.
pub(crate) struct Recent {
    slots: [AtomicUsize; RECENT],
    sizes: [AtomicUsize; RECENT],
    next: AtomicUsize,
}

/// How many leaked objects [`Recent`] remembers.
const RECENT: usize = 64;

impl Recent {
    const fn new() -> Self {
        Self {
            slots: [const { AtomicUsize::new(0) }; RECENT],
            sizes: [const { AtomicUsize::new(0) }; RECENT],
            next: AtomicUsize::new(0),
        }
    }

    fn push(&self, inverted: usize, size: usize) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % RECENT;
        self.slots[i].store(inverted, Ordering::Relaxed);
        self.sizes[i].store(size, Ordering::Relaxed);
    }

    /// Writes one `0xADDRESS SIZE` line per remembered object.
    pub(crate) fn write(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        let n = self.next.load(Ordering::Relaxed).min(RECENT);
        for i in 0..n {
            let inverted = self.slots[i].load(Ordering::Relaxed);
            writeln!(
                out,
                "{:#x} {}",
                !inverted,
                self.sizes[i].load(Ordering::Relaxed)
            )?;
        }
        Ok(())
    }
}

/// Counters of one pattern and variant, updated by concurrent runs.
pub(crate) struct Stats {
    runs: AtomicUsize,
    failed: AtomicUsize,
    allocated: AtomicUsize,
    allocated_bytes: AtomicUsize,
    freed: AtomicUsize,
    freed_bytes: AtomicUsize,
    leaked: AtomicUsize,
    leaked_bytes: AtomicUsize,
    /// The most recently leaked objects.
    pub(crate) recent: Recent,
}

impl Stats {
    pub(crate) const fn new() -> Self {
        Self {
            runs: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            allocated: AtomicUsize::new(0),
            allocated_bytes: AtomicUsize::new(0),
            freed: AtomicUsize::new(0),
            freed_bytes: AtomicUsize::new(0),
            leaked: AtomicUsize::new(0),
            leaked_bytes: AtomicUsize::new(0),
            recent: Recent::new(),
        }
    }

    fn add(&self, t: &Tally, ok: bool) {
        let r = Ordering::Relaxed;
        self.runs.fetch_add(1, r);
        if !ok {
            self.failed.fetch_add(1, r);
        }
        self.allocated.fetch_add(t.allocated, r);
        self.allocated_bytes.fetch_add(t.allocated_bytes, r);
        self.freed.fetch_add(t.allocated - t.leaked, r);
        self.freed_bytes
            .fetch_add(t.allocated_bytes - t.leaked_bytes, r);
        self.leaked.fetch_add(t.leaked, r);
        self.leaked_bytes.fetch_add(t.leaked_bytes, r);
        for &(inverted, size) in t.lost.iter().take(t.leaked) {
            self.recent.push(inverted, size);
        }
    }

    /// Moves objects that a later action freed from leaked to freed.
    pub(crate) fn unleak(&self, objects: usize, bytes: usize) {
        let r = Ordering::Relaxed;
        self.leaked.fetch_sub(objects, r);
        self.leaked_bytes.fetch_sub(bytes, r);
        self.freed.fetch_add(objects, r);
        self.freed_bytes.fetch_add(bytes, r);
    }

    /// One `stats` record.
    pub(crate) fn write(
        &self,
        out: &mut impl core::fmt::Write,
        pattern: &CStr,
        v: Variant,
    ) -> core::fmt::Result {
        let r = Ordering::Relaxed;
        writeln!(
            out,
            "pattern={} variant={} runs={} failed={} allocated={} allocated_bytes={} freed={} freed_bytes={} leaked={} leaked_bytes={}",
            pattern.to_str().unwrap_or("?"),
            v.name(),
            self.runs.load(r),
            self.failed.load(r),
            self.allocated.load(r),
            self.allocated_bytes.load(r),
            self.freed.load(r),
            self.freed_bytes.load(r),
            self.leaked.load(r),
            self.leaked_bytes.load(r),
        )
    }
}

/// The cap on intentionally leaked bytes, and what is leaked now.
pub(crate) struct LeakBudget {
    cap: AtomicUsize,
    used: AtomicUsize,
}

impl LeakBudget {
    pub(crate) const fn new() -> Self {
        Self {
            cap: AtomicUsize::new(DEFAULT_CAP),
            used: AtomicUsize::new(0),
        }
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    /// Reserves `bytes` under the cap, or fails with `ENOSPC`.
    pub(crate) fn reserve(&self, bytes: usize) -> Result {
        let cap = self.cap();
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&n| n <= cap)
            })
            .map(|_| ())
            .map_err(|_| ENOSPC)
    }

    /// Returns `bytes` to the budget.
    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Overwrites the stack below the caller's frame, where the frames of a
/// finished run lived, so that no stale copy of a leaked pointer there
/// keeps kmemleak from reporting it.
#[inline(never)]
pub(crate) fn scrub_stack() {
    // The allocator and kmemleak's own hooks run deep below a sample's
    // frame; 4 KiB covers them and stays well inside the 16 KiB stack.
    let mut area = [0u8; 4096];
    // Volatile writes: the compiler may not drop the zeroing as dead stores.
    for b in area.iter_mut() {
        // SAFETY: `b` is a valid, aligned reference into `area`.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    core::hint::black_box(&area);
}

/// Lets the frees the kernel has deferred happen now: objects queued with
/// `call_rcu` (maple tree nodes of every `mmap`, which share `kmalloc-256`
/// when slab caches merge) and `kfree_rcu`.
///
/// Such a free that lands after [`launder`] and before a leaky run's
/// allocation puts a slot that other code pointed to back on top of the
/// freelist, which the run then takes.
fn settle_deferred_frees() {
    // SAFETY: Both only wait (they may sleep); this runs in process context,
    // from a debugfs write, with no lock held.
    unsafe {
        bindings::rcu_barrier();
        bindings::kvfree_rcu_barrier();
    }
}

/// How many slots of each size [`launder`] cycles.
const LAUNDER_DEPTH: usize = 8;

/// Puts slots that only this module has used on top of the slab freelists a
/// leaky run is about to allocate from.
///
/// A slab freelist is LIFO: without this, a leak lands in the slot some other
/// code freed last, and a stale copy of that code's pointer (a dead local in a
/// sleeping kernel thread's frame, a field of a node freed by RCU later) hides
/// the leak from kmemleak, which counts any word pointing into an object as a
/// reference. Taking the `LAUNDER_DEPTH` most recent slots of each size and
/// freeing them again, first taken first freed, buries those slots under ones
/// whose only stale pointers were in this frame (scrubbed by the caller).
#[inline(never)]
fn launder(classes: &[usize]) {
    for &size in classes.iter().filter(|&&s| s != 0) {
        let held: [Option<KVec<u8>>; LAUNDER_DEPTH] =
            core::array::from_fn(|_| KVec::with_capacity(size, GFP_KERNEL).ok());
        // Array elements drop in order: the slot taken first (the one freed
        // last by someone else) is freed first and ends deepest.
        drop(held);
    }
}

/// What one leaky run of a pattern leaks: measured when the module loads, by
/// one run of the fixed variant (the two allocate the same objects; the leaky
/// one loses them).
#[derive(Clone, Copy, Default)]
pub(crate) struct Expect {
    pub(crate) objects: usize,
    pub(crate) bytes: usize,
    /// The sizes of the objects, as the allocator rounds them (0: unused).
    classes: [usize; 4],
}

impl Expect {
    /// Runs the fixed variant of `pattern` once and measures it.
    pub(crate) fn calibrate(pattern: &Pattern) -> Result<Self> {
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

/// Runs `variant` of `pattern` `n` times. A leaky request first reserves
/// what it will leak under `budget`, and fails with `ENOSPC`, running
/// nothing, if that does not fit.
pub(crate) fn run(
    pattern: &Pattern,
    variant: Variant,
    n: u32,
    expect: &Expect,
    stats: &Stats,
    budget: &LeakBudget,
) -> Result {
    let reserve = if variant == Variant::Leaky {
        expect.bytes.checked_mul(n as usize).ok_or(ENOSPC)?
    } else {
        0
    };
    budget.reserve(reserve)?;
    if variant == Variant::Leaky {
        settle_deferred_frees();
    }
    let mut leaked_bytes = 0;
    let mut result = Ok(());
    for _ in 0..n {
        let mut t = Tally::default();
        let f = match variant {
            Variant::Leaky => pattern.leaky,
            Variant::Fixed => pattern.fixed,
        };
        if variant == Variant::Leaky {
            launder(&expect.classes);
            scrub_stack();
        }
        let r = f(&mut t);
        scrub_stack();
        stats.add(&t, r.is_ok());
        leaked_bytes += t.leaked_bytes;
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
        let _ = budget
            .used
            .fetch_add(leaked_bytes - reserve, Ordering::Relaxed);
    }
    result
}
