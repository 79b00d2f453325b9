// SPDX-License-Identifier: GPL-2.0

//! What runs allocate and leak, counted as kmemleak will see it: objects, by
//! their start address, and bytes as the allocator sized them (`ksize`).
//! Pages taken straight from the page allocator, which kmemleak does not
//! track, are counted apart ([`Tally::allocated_pages`]): by their kernel
//! virtual address and the bytes of the whole block.
//!
//! A run records each object it allocates in a [`Tally`], which hands back an
//! [`Allocation`]; a leaky run gives that record back to [`Tally::leaked`]
//! before it loses its last pointer. [`Stats`] add the tallies of concurrent
//! runs up, [`Recent`] remembers the objects last leaked, and [`LeakBudget`]
//! caps the bytes leaked on purpose.

use core::{
    mem::{align_of, size_of},
    ptr,
    sync::atomic::{AtomicUsize, Ordering},
};
use kernel::{bindings, ffi::c_void, prelude::*, sync::Arc};

/// An owner of exactly one slab or kmalloc object, which knows where it starts.
///
/// # Safety
///
/// [`SlabObject::start`] returns the start of a live slab or kmalloc object,
/// which stays live at least as long as `self`.
pub(crate) unsafe trait SlabObject {
    /// The start of the object.
    fn start(&self) -> *const c_void;
}

// SAFETY: `KBox::new` allocates a non-zero-sized `T` with `Kmalloc`, whose
// `realloc` hands back what `krealloc` returned (`ReallocFunc::call` in
// `rust/kernel/alloc/allocator.rs`): the start of a kmalloc object. The box
// keeps that pointer and frees the object only when it is dropped.
unsafe impl<T> SlabObject for KBox<T> {
    fn start(&self) -> *const c_void {
        // A box of a zero-sized type holds a dangling pointer, no object.
        const { assert!(size_of::<T>() != 0) };
        ptr::from_ref::<T>(self).cast()
    }
}

// SAFETY: An `Arc<T>` points to the `data` field of its `ArcInner<T>`, a
// `#[repr(C)]` struct whose first field is a `refcount_t`, allocated whole
// with `KBox` (`Arc::new`, and `UniqueArc::new_uninit` behind `Arc::pin_init`,
// in `rust/kernel/sync/arc.rs`), hence the start of a kmalloc object (see the
// `KBox` implementation). `data` lies at the size of a `refcount_t` rounded up
// to the alignment of `T`, the offset `ArcInner::container_of` computes with
// `Layout::extend`; `Kbuild` stops the build if the tree's `ArcInner` is
// not laid out so. The object lives while this reference does.
unsafe impl<T> SlabObject for Arc<T> {
    fn start(&self) -> *const c_void {
        let offset = size_of::<bindings::refcount_t>().next_multiple_of(align_of::<T>());
        ptr::from_ref::<T>(self)
            .cast::<u8>()
            .wrapping_sub(offset)
            .cast()
    }
}

/// The size of the live slab or kmalloc object starting at `start`.
///
/// # Safety
///
/// `start` is the start of a live slab or kmalloc object.
unsafe fn ksize(start: *const c_void) -> usize {
    // SAFETY: `start` is the start of a live object, as `ksize` requires (with
    // `slub_debug=U` it reads and writes the object's metadata next to it).
    unsafe { bindings::ksize(start) }
}

/// One object a run allocated, as [`Tally::allocated`] recorded it; give it to
/// [`Tally::leaked`] when the run loses its last pointer to the object.
///
/// # Invariants
///
/// Made only by a [`Tally`]: `!inverted` was the start of a live slab or
/// kmalloc object, and `size` its size by `ksize`; or the start of a live
/// block of pages from the page allocator, and `size` its length in bytes.
/// (The address is kept bitwise inverted, as in [`Recent`].)
pub(crate) struct Allocation {
    inverted: usize,
    size: usize,
}

/// What one run allocated and what it leaked on purpose.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) allocated: usize,
    pub(crate) allocated_bytes: usize,
    pub(crate) leaked: usize,
    pub(crate) leaked_bytes: usize,
    /// The first leaked objects: (address, size), kept inverted (see [`Recent`]).
    lost: [(usize, usize); LOST],
    /// The distinct allocation sizes seen, up to [`CLASSES`] (0: unused).
    pub(crate) classes: [usize; CLASSES],
}

/// How many leaked objects of one run a [`Tally`] keeps for [`Recent`].
const LOST: usize = 4;

/// How many distinct allocation sizes a [`Tally`] keeps.
pub(crate) const CLASSES: usize = 4;

impl Tally {
    /// Counts the object `object` owns as allocated.
    pub(crate) fn allocated(&mut self, object: &impl SlabObject) -> Allocation {
        // SAFETY: By the `SlabObject` contract, `start` is the start of a live
        // object (it lives at least as long as the borrow of `object`).
        unsafe { self.allocated_at(object.start()) }
    }

    /// Counts the object starting at `start` as allocated.
    ///
    /// # Safety
    ///
    /// `start` is the start of a live slab or kmalloc object.
    pub(crate) unsafe fn allocated_at<T: ?Sized>(&mut self, start: *const T) -> Allocation {
        let start = start.cast::<c_void>();
        // SAFETY: By this function's safety requirements.
        let size = unsafe { ksize(start) };
        self.allocated += 1;
        self.allocated_bytes += size;
        if !self.classes.contains(&size) {
            if let Some(free) = self.classes.iter_mut().find(|c| **c == 0) {
                *free = size;
            }
        }
        // INVARIANT: `start` is the start of a live object, of `size` bytes.
        Allocation {
            inverted: !(start as usize),
            size,
        }
    }

    /// Counts the block of pages starting at `start`, `bytes` long, as
    /// allocated. Never calls `ksize`, which warns on memory that is not a
    /// slab object; the block's size does not join [`Tally::classes`] (the
    /// slab sizes [`crate::hygiene::launder`] cycles).
    ///
    /// # Safety
    ///
    /// `start` is the kernel virtual address of a live block of pages from
    /// the page allocator (`__get_free_pages`, or `page_address` of what
    /// `alloc_pages` returned), and `bytes` is its length (`PAGE_SIZE <<
    /// order`).
    pub(crate) unsafe fn allocated_pages(
        &mut self,
        start: *const c_void,
        bytes: usize,
    ) -> Allocation {
        self.allocated += 1;
        self.allocated_bytes += bytes;
        // INVARIANT: By this function's safety requirements, `start` is the
        // start of a live block of pages, of `bytes` bytes.
        Allocation {
            inverted: !(start as usize),
            size: bytes,
        }
    }

    /// Counts `object` as leaked: the last pointer to it is about to be lost.
    pub(crate) fn leaked(&mut self, object: Allocation) {
        if let Some(slot) = self.lost.get_mut(self.leaked) {
            *slot = (object.inverted, object.size);
        }
        self.leaked += 1;
        self.leaked_bytes += object.size;
    }
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
    pub(crate) const fn new() -> Self {
        Self {
            slots: [const { AtomicUsize::new(0) }; RECENT],
            sizes: [const { AtomicUsize::new(0) }; RECENT],
            next: AtomicUsize::new(0),
        }
    }

    /// Remembers the objects `t` leaked (the first few of them).
    pub(crate) fn add(&self, t: &Tally) {
        for &(inverted, size) in t.lost.iter().take(t.leaked) {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % RECENT;
            self.slots[i].store(inverted, Ordering::Relaxed);
            self.sizes[i].store(size, Ordering::Relaxed);
        }
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
        }
    }

    /// Adds one run.
    pub(crate) fn add(&self, t: &Tally, ok: bool) {
        let r = Ordering::Relaxed;
        self.runs.fetch_add(1, r);
        if !ok {
            self.failed.fetch_add(1, r);
        }
        self.allocated.fetch_add(t.allocated, r);
        self.allocated_bytes.fetch_add(t.allocated_bytes, r);
        // A sample that says it leaked more than it allocated is wrong, but
        // its mistake must not wrap (or, with overflow checks, panic) here.
        self.freed
            .fetch_add(t.allocated.saturating_sub(t.leaked), r);
        self.freed_bytes
            .fetch_add(t.allocated_bytes.saturating_sub(t.leaked_bytes), r);
        self.leaked.fetch_add(t.leaked, r);
        self.leaked_bytes.fetch_add(t.leaked_bytes, r);
    }

    /// Moves objects that a later action freed from leaked to freed.
    pub(crate) fn unleak(&self, objects: usize, bytes: usize) {
        let r = Ordering::Relaxed;
        // Never below zero: a sample that frees more than it leaked is
        // wrong, and its counters stay at zero instead of wrapping.
        let less = |n: usize| move |v: usize| Some(v.saturating_sub(n));
        let _ = self.leaked.fetch_update(r, r, less(objects));
        let _ = self.leaked_bytes.fetch_update(r, r, less(bytes));
        self.freed.fetch_add(objects, r);
        self.freed_bytes.fetch_add(bytes, r);
    }

    /// Writes the counters as `key=value` words (the tail of a `stats` record).
    pub(crate) fn write(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        let r = Ordering::Relaxed;
        write!(
            out,
            "runs={} failed={} allocated={} allocated_bytes={} freed={} freed_bytes={} leaked={} leaked_bytes={}",
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

/// Default cap on intentionally leaked bytes (4 MiB).
const DEFAULT_CAP: usize = 4 << 20;

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

    /// Counts `bytes` as leaked whatever the cap (they are leaked already).
    pub(crate) fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Returns `bytes` to the budget.
    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}
