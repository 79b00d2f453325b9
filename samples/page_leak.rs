// SPDX-License-Identifier: GPL-2.0

//! Page leak: a DMA-style ring taken straight from the page allocator, and
//! an error path that never gives the pages back.
//!
//! C drivers write `ring = (void *)__get_free_pages(GFP_KERNEL, 1);` for a
//! buffer of two contiguous pages, and a later failure returns without the
//! `free_pages(ring, 1)`. The leaky variant below keeps that C shape with a
//! bare address. The fixed variant keeps the block in a `Pages` owner whose
//! `Drop` frees it, so every return frees it. (`kernel::page::Page` would
//! do for a single page, but 6.12's allocates order 0 only.)
//!
//! kmemleak does not track the page allocator: it never reports these
//! pages. Only a detector that traces allocations (`mm_page_alloc` against
//! `mm_page_free`) sees the leak.
//!
//! Leaks per leaky run: one order-1 block of pages, 8192 bytes (with 4 KiB
//! pages), invisible to kmemleak.

// `__get_free_pages()`, as C drivers call it (module/alloc.c).
use crate::ffi::leaklab_get_free_pages;
use crate::{
    accounting::Tally,
    pattern::{eio_expected, Pattern},
};
use core::ptr::NonNull;
use kernel::{
    bindings, c_str,
    ffi::{c_ulong, c_void},
    page::PAGE_SIZE,
    prelude::*,
};

/// The ring's order: 2^1 = two contiguous pages.
const ORDER: u32 = 1;

/// The ring's size in bytes.
const RING_BYTES: usize = PAGE_SIZE << ORDER;

/// The pretend device's ring setup: in this lab it always fails.
fn start_ring(_ring: *mut c_void) -> Result {
    Err(EIO)
}

/// Leaky: the C habit of a bare address from `__get_free_pages` and a
/// manual `free_pages` at the end.
#[inline(never)]
fn setup_ring_leaky(t: &mut Tally) -> Result {
    // SAFETY: `GFP_KERNEL` may sleep; this runs in process context, from a
    // debugfs write or the module's init, with no lock held.
    let ring = unsafe { leaklab_get_free_pages(bindings::GFP_KERNEL, ORDER) };
    if ring == 0 {
        return Err(ENOMEM);
    }
    let ring = ring as *mut c_void;
    // SAFETY: `ring` is the address of the live order-`ORDER` block just
    // allocated, `RING_BYTES` long.
    let counted = unsafe { t.allocated_pages(ring, RING_BYTES) };
    if let Err(e) = start_ring(ring) {
        // BUG: returns without free_pages(ring, ORDER); the address dies
        // with this frame, and nothing, kmemleak included, knows of the pages.
        t.leaked(counted);
        return Err(e);
    }
    // SAFETY: `ring` came from `__get_free_pages` with `ORDER` and is freed
    // only here.
    unsafe { bindings::free_pages(ring as c_ulong, ORDER) };
    Ok(())
}

/// A block of `2^ORDER` pages from the page allocator, freed on drop.
///
/// # Invariants
///
/// `0` is the kernel virtual address of a live block of order [`ORDER`],
/// from `__get_free_pages`, owned by this value.
struct Pages(NonNull<c_void>);

impl Pages {
    fn alloc() -> Result<Self> {
        // SAFETY: As in `setup_ring_leaky`: process context, no lock held.
        let addr = unsafe { leaklab_get_free_pages(bindings::GFP_KERNEL, ORDER) };
        // INVARIANT: A non-zero address is a block of order `ORDER`, now ours.
        Ok(Self(NonNull::new(addr as *mut c_void).ok_or(ENOMEM)?))
    }

    fn as_ptr(&self) -> *mut c_void {
        self.0.as_ptr()
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: The block is live, of order `ORDER`, and ours (type
        // invariant); this is the only place that frees it.
        unsafe { bindings::free_pages(self.0.as_ptr() as c_ulong, ORDER) };
    }
}

/// Fixed: `Pages` owns the block, so the early return frees it.
#[inline(never)]
fn setup_ring_fixed(t: &mut Tally) -> Result {
    let ring = Pages::alloc()?;
    // SAFETY: `ring` owns a live block of order `ORDER`, `RING_BYTES` long,
    // until it is dropped at the end of this function.
    unsafe { t.allocated_pages(ring.as_ptr(), RING_BYTES) };
    start_ring(ring.as_ptr())?;
    Ok(())
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("page_leak"),
    description: "A driver takes two contiguous pages (8192 bytes, order 1) for a DMA-style ring \
straight from the page allocator with __get_free_pages; the ring setup fails and the early return \
skips free_pages. kmemleak does not track the page allocator and never reports it: only the \
allocation-trace detector sees it. Fixed: an owning Pages type frees the block on drop.",
    leaky: |t| eio_expected(setup_ring_leaky(t)),
    fixed: |t| eio_expected(setup_ring_fixed(t)),
    after_unload: false,
    kmemleak_visible: false,
    grows: false,
    disarm: None,
    at_unload: None,
};
