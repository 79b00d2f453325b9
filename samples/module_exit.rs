// SPDX-License-Identifier: GPL-2.0

//! Missing free at module exit: buffers that live as long as the module,
//! kept in a global, and never freed when the module unloads.
//!
//! In C this is a `static void *cache[]` filled at runtime and an exit
//! function that forgets to walk it. While the module is loaded nothing
//! leaks (the global points to the buffers); `rmmod` frees the module's data
//! and with it the only pointers, so kmemleak reports the buffers only after
//! the unload. The leaky variant "arms" such buffers; `disarm` frees them
//! early. The fixed variant hands its buffers to the module: its
//! `at_unload` hook frees them when the module's state is dropped at unload.
//!
//! Leaks per leaky run: one 512-byte buffer, after `rmmod`.

use crate::{
    accounting::{Allocation, Tally},
    pattern::Pattern,
};
use core::{
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{c_str, prelude::*};

/// A buffer kept for the module's lifetime; `next` chains the buffers.
struct Buffer {
    next: *mut Buffer,
    _data: [u8; 504],
}

/// A lock-free stack of buffers behind one global pointer.
struct Chain(AtomicPtr<Buffer>);

impl Chain {
    const fn new() -> Self {
        Self(AtomicPtr::new(ptr::null_mut()))
    }

    /// Adds a new buffer; returns its record in `t`.
    fn push(&self, t: &mut Tally) -> Result<Allocation> {
        let b = KBox::new(
            Buffer {
                next: ptr::null_mut(),
                _data: [0; 504],
            },
            GFP_KERNEL,
        )?;
        let counted = t.allocated(&b);
        let b = KBox::into_raw(b);
        let mut head = self.0.load(Ordering::Relaxed);
        loop {
            // SAFETY: `b` is ours until the exchange below publishes it.
            unsafe { (*b).next = head };
            match self
                .0
                .compare_exchange(head, b, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return Ok(counted),
                Err(now) => head = now,
            }
        }
    }

    /// Frees every buffer; returns how many objects and bytes that was.
    fn free_all(&self) -> (usize, usize) {
        let mut b = self.0.swap(ptr::null_mut(), Ordering::Acquire);
        let mut t = Tally::default();
        while !b.is_null() {
            // SAFETY: Every pointer in the chain came from `KBox::into_raw`,
            // and the swap above took the whole chain out of reach of others.
            let owned = unsafe { KBox::from_raw(b) };
            t.allocated(&owned);
            b = owned.next;
        }
        (t.allocated, t.allocated_bytes)
    }
}

/// Leaky: armed buffers. Nothing frees this chain when the module unloads.
static ARMED: Chain = Chain::new();

/// Fixed: buffers owned by the module (see [`free_owned`]).
static OWNED: Chain = Chain::new();

/// Leaky: keep a buffer for the module's lifetime, in a global no exit path frees.
#[inline(never)]
fn arm_leaky(t: &mut Tally) -> Result {
    let counted = ARMED.push(t)?;
    // BUG: at `rmmod` the module's memory, `ARMED` included, is freed and
    // the buffer, with no pointer left to it, leaks.
    t.leaked(counted);
    Ok(())
}

/// Fixed: the same buffer, owned by the module.
#[inline(never)]
fn arm_fixed(t: &mut Tally) -> Result {
    OWNED.push(t).map(|_| ())
}

/// Frees the armed buffers now, so that unloading leaks nothing; returns how
/// many objects and bytes were freed.
fn disarm() -> (usize, usize) {
    ARMED.free_all()
}

/// Fixed: frees what the fixed variant kept, when the module's state is
/// dropped at unload. (The leaky variant has no such hook: that is its bug.)
fn free_owned() {
    OWNED.free_all();
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("module_exit"),
    description:
        "Each run keeps a 512-byte buffer for the module's lifetime in a global chain that \
the exit path never frees; it leaks only when the module is unloaded ('disarm' frees the armed \
buffers early). Fixed: the module's state owns the buffers and its Drop frees them at unload.",
    leaky: arm_leaky,
    fixed: arm_fixed,
    after_unload: true,
    kmemleak_visible: true,
    grows: false,
    disarm: Some(disarm),
    at_unload: Some(free_owned),
};
