// SPDX-License-Identifier: GPL-2.0

//! Error-path leak: a probe allocates a buffer, a later step fails, and the
//! early return skips the free.
//!
//! C drivers write this as `buf = kmalloc(); if (reset(hw)) return -EIO;`
//! and forget the `kfree(buf)` (or the `goto err_free`) on the new error
//! path. The leaky variant below keeps that C shape with a raw pointer. The
//! fixed variant keeps the buffer in a `KBox`: every return, `?` included,
//! drops it. Ownership is Rust's `goto cleanup`.
//!
//! Leaks per leaky run: one 256-byte buffer.

use crate::{
    accounting::Tally,
    pattern::{eio_expected, Pattern},
};
use kernel::{c_str, prelude::*};

/// Firmware staging buffer of the pretend device.
struct FwBuffer {
    _image: [u8; 256],
}

/// The pretend device's reset: in this lab it always fails.
fn reset_hardware(_fw: &FwBuffer) -> Result {
    Err(EIO)
}

/// Leaky: the C habit of a raw buffer and a manual free at the end.
#[inline(never)]
fn probe_leaky(t: &mut Tally) -> Result {
    let fw = KBox::new(FwBuffer { _image: [0; 256] }, GFP_KERNEL)?;
    let counted = t.allocated(&fw);
    let fw = KBox::into_raw(fw);
    // SAFETY: `fw` came from `KBox::into_raw` above and is not freed yet.
    if let Err(e) = reset_hardware(unsafe { &*fw }) {
        // BUG: returns without freeing `fw`; the pointer dies with this frame.
        t.leaked(counted);
        return Err(e);
    }
    // SAFETY: `fw` came from `KBox::into_raw` and is freed only here.
    drop(unsafe { KBox::from_raw(fw) });
    Ok(())
}

/// Fixed: the `KBox` owns the buffer, so the early return frees it.
#[inline(never)]
fn probe_fixed(t: &mut Tally) -> Result {
    let fw = KBox::new(FwBuffer { _image: [0; 256] }, GFP_KERNEL)?;
    t.allocated(&fw);
    reset_hardware(&fw)?;
    Ok(())
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("error_path"),
    description: "A probe allocates a 256-byte firmware buffer, the hardware reset fails, and the \
early return skips the free (C: a missing 'goto err_free'). Fixed: the buffer is a KBox, so \
every return path frees it.",
    leaky: |t| eio_expected(probe_leaky(t)),
    fixed: |t| eio_expected(probe_fixed(t)),
    after_unload: false,
    kmemleak_visible: true,
    grows: false,
    disarm: None,
    at_unload: None,
};
