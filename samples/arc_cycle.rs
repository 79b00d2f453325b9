// SPDX-License-Identifier: GPL-2.0

//! Reference-count cycle: two `Arc`s that point at each other.
//!
//! Two driver objects keep each other alive (a port and its peer, a parent
//! and a child with a back-pointer). When their owner drops its references,
//! each count stays at one, held by the other: neither is freed. Reference
//! counting cannot see the cycle; kmemleak's tracing can, because nothing
//! outside the pair points to it. Fixed: teardown breaks the cycle (takes
//! the peer link) before dropping.
//!
//! Leaks per leaky run: two objects, the two `Arc` allocations (each holds
//! the reference count and the port).

use crate::{accounting::Tally, pattern::Pattern};
use kernel::{c_str, new_spinlock, prelude::*, sync::Arc, sync::SpinLock};

/// A port that knows its peer.
#[pin_data]
struct Port {
    #[pin]
    peer: SpinLock<Option<Arc<Port>>>,
    _state: [u8; 40],
}

/// Makes two ports that point at each other.
fn connect() -> Result<(Arc<Port>, Arc<Port>)> {
    let new_port = || {
        Arc::pin_init(
            pin_init!(Port {
                peer <- new_spinlock!(None, "leaklab_port_peer"),
                _state: [0; 40],
            }),
            GFP_KERNEL,
        )
    };
    let a = new_port()?;
    let b = new_port()?;
    *a.peer.lock() = Some(b.clone());
    *b.peer.lock() = Some(a.clone());
    Ok((a, b))
}

/// Leaky: the owner drops both ports; the cycle keeps them alive.
#[inline(never)]
fn teardown_leaky(t: &mut Tally) -> Result {
    let (a, b) = connect()?;
    for p in [&a, &b] {
        let counted = t.allocated(p);
        t.leaked(counted);
    }
    // BUG: each port still holds the other: both counts stay at one.
    drop(a);
    drop(b);
    Ok(())
}

/// Fixed: break the cycle, then drop.
#[inline(never)]
fn teardown_fixed(t: &mut Tally) -> Result {
    let (a, b) = connect()?;
    for p in [&a, &b] {
        t.allocated(p);
    }
    a.peer.lock().take();
    drop(a);
    drop(b);
    Ok(())
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("arc_cycle"),
    description: "Two reference-counted ports point at each other; when their owner drops them, \
each count stays at one and neither is freed. kmemleak's tracing finds the unreachable pair. \
Fixed: teardown breaks the cycle before dropping.",
    leaky: teardown_leaky,
    fixed: teardown_fixed,
    after_unload: false,
    kmemleak_visible: true,
    grows: false,
    disarm: None,
    at_unload: None,
};
