// SPDX-License-Identifier: GPL-2.0

//! The leaks safe Rust still allows.
//!
//! Leaking memory is not unsafe in Rust: `core::mem::forget()` skips a
//! destructor, and `KBox::leak()` (like `KBox::into_raw()` without a later
//! `from_raw()`) turns an owned allocation into a reference or pointer that
//! nothing will free. Neither needs an `unsafe` block, so a reviewer must
//! look for them by name. The fixed variant keeps ownership: the box is
//! dropped, and a pointer taken out with `into_raw()` goes back into a box.
//!
//! Leaks per leaky run: two objects, a 64-byte packet and a 128-byte
//! descriptor.

use crate::{accounting::Tally, pattern::Pattern};
use kernel::{c_str, prelude::*};

/// A network-style packet.
struct Packet {
    _bytes: [u8; 64],
}

/// A DMA-style descriptor.
struct Descriptor {
    _ring: [u8; 128],
}

/// Leaky: safe code, two leaks.
#[inline(never)]
fn run_leaky(t: &mut Tally) -> Result {
    let packet = KBox::new(Packet { _bytes: [0; 64] }, GFP_KERNEL)?;
    let counted = t.allocated(&packet);
    t.leaked(counted);
    // BUG: forget() skips the destructor: the packet is never freed.
    core::mem::forget(packet);

    let desc = KBox::new(Descriptor { _ring: [0; 128] }, GFP_KERNEL)?;
    let counted = t.allocated(&desc);
    t.leaked(counted);
    // BUG: a `&'static mut` that nothing keeps: the descriptor is never freed.
    let _: &'static mut Descriptor = KBox::leak(desc);
    Ok(())
}

/// Fixed: ownership kept, so both are freed.
#[inline(never)]
fn run_fixed(t: &mut Tally) -> Result {
    let packet = KBox::new(Packet { _bytes: [0; 64] }, GFP_KERNEL)?;
    t.allocated(&packet);
    drop(packet);

    let desc = KBox::new(Descriptor { _ring: [0; 128] }, GFP_KERNEL)?;
    t.allocated(&desc);
    let desc = KBox::into_raw(desc);
    // SAFETY: `desc` came from `KBox::into_raw` just above and is given back
    // exactly once.
    drop(unsafe { KBox::from_raw(desc) });
    Ok(())
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("rust_forget"),
    description: "Safe Rust leaks: core::mem::forget() on a 64-byte KBox and KBox::leak() of a \
128-byte one; no unsafe block is needed, so review must look for them by name. Fixed: ownership \
kept (dropped, or into_raw() paired with from_raw()).",
    leaky: run_leaky,
    fixed: run_fixed,
    after_unload: false,
    kmemleak_visible: true,
    grows: false,
    disarm: None,
    at_unload: None,
};
