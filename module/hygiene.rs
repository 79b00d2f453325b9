// SPDX-License-Identifier: GPL-2.0

//! Stale-pointer hygiene: what keeps a stale copy of a pointer from hiding a
//! leak from kmemleak, which counts any word pointing into an object as a
//! reference.
//!
//! Before a leaky run, [`settle_deferred_frees`] and [`launder`] make sure the
//! slots the run will allocate were last used by this module; after every
//! run, [`scrub_stack`] overwrites the run's dead frames.

use kernel::{bindings, prelude::*};

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
pub(crate) fn settle_deferred_frees() {
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
/// leaky run is about to allocate from; `classes` are the object sizes the
/// run allocates (0: unused).
///
/// A slab freelist is LIFO: without this, a leak lands in the slot some other
/// code freed last, and a stale copy of that code's pointer (a dead local in a
/// sleeping kernel thread's frame, a field of a node freed by RCU later) hides
/// the leak from kmemleak. Taking the `LAUNDER_DEPTH` most recent slots of
/// each size and freeing them again, first taken first freed, buries those
/// slots under ones whose only stale pointers were in this frame (scrubbed by
/// the caller).
#[inline(never)]
pub(crate) fn launder(classes: &[usize]) {
    for &size in classes.iter().filter(|&&s| s != 0) {
        let held: [Option<KVec<u8>>; LAUNDER_DEPTH] =
            core::array::from_fn(|_| KVec::with_capacity(size, GFP_KERNEL).ok());
        // Array elements drop in order: the slot taken first (the one freed
        // last by someone else) is freed first and ends deepest.
        drop(held);
    }
}
