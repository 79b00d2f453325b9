// SPDX-License-Identifier: GPL-2.0

//! Conditional free: the free sits on one branch only.
//!
//! A request handler frees the request when the device completed it, and
//! forgets that the "device busy" branch also ends the request's life. In C:
//! `if (status == DONE) kfree(req); return status;`. The fixed variant owns
//! the request in a `KBox`, so it is freed whichever branch is taken.
//!
//! Leaks per leaky run: one 128-byte request.

use crate::{accounting::Tally, pattern::Pattern};
use kernel::{c_str, prelude::*};

/// A request for the pretend device.
struct Request {
    _payload: [u8; 128],
}

#[derive(PartialEq, Eq)]
enum Status {
    Done,
    Busy,
}

/// Hands the request to the pretend device, which is always busy in this lab.
fn submit(_req: &Request) -> Status {
    Status::Busy
}

/// Leaky: frees the request only when the device completed it.
#[inline(never)]
fn handle_leaky(t: &mut Tally) -> Result {
    let req = KBox::new(Request { _payload: [0; 128] }, GFP_KERNEL)?;
    let counted = t.allocated(&req);
    let req = KBox::into_raw(req);
    // SAFETY: `req` came from `KBox::into_raw` above and is not freed yet.
    if submit(unsafe { &*req }) == Status::Done {
        // SAFETY: `req` came from `KBox::into_raw` and is freed only here.
        drop(unsafe { KBox::from_raw(req) });
    } else {
        // BUG: the busy branch drops the last pointer without freeing.
        t.leaked(counted);
    }
    Ok(())
}

/// Fixed: the request is owned, and freed on every branch.
#[inline(never)]
fn handle_fixed(t: &mut Tally) -> Result {
    let req = KBox::new(Request { _payload: [0; 128] }, GFP_KERNEL)?;
    t.allocated(&req);
    match submit(&req) {
        Status::Done => {}
        Status::Busy => {} // `req` is dropped here too.
    }
    Ok(())
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("conditional_free"),
    description: "A request handler frees its 128-byte request only when the device completed it; \
the 'device busy' branch returns without freeing. Fixed: the request is a KBox, freed on every \
branch.",
    leaky: handle_leaky,
    fixed: handle_fixed,
    after_unload: false,
    kmemleak_visible: true,
    grows: false,
    disarm: None,
    at_unload: None,
};
