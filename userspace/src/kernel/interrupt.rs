// SPDX-License-Identifier: GPL-2.0
//! Stopping cleanly on SIGINT and SIGTERM. The handler only notes the
//! signal; the long steps of a run ask [`check`] (or sleep with [`sleep`])
//! and return [`Interrupted`] as an error, so that every guard on the way
//! out does its cleanup: the loaded module is unloaded, kmemleak's window
//! restores the auto-scan thread and stack scanning.

use std::{
    sync::atomic::{AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::Result;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The signal that asked us to stop, or 0.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: nix::libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// The run was stopped by a signal.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted by {0}: stopped cleanly (what it loaded is unloaded, kmemleak and tracefs are as they were, its guests are stopped)"
)]
pub struct Interrupted(pub Signal);

impl Interrupted {
    /// The shell's exit status for it: 128 + the signal number.
    pub fn exit_status(&self) -> u8 {
        128u8.saturating_add(self.0 as u8)
    }
}

/// Notes SIGINT and SIGTERM instead of dying on them. Blocking calls are not
/// restarted (no `SA_RESTART`): they return EINTR, an error, and the run
/// unwinds from there too.
pub fn install() -> Result<()> {
    let action = SigAction::new(SigHandler::Handler(note), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: `note` is async-signal-safe: it stores to an atomic and
        // does nothing else.
        unsafe { signal::sigaction(sig, &action) }?;
    }
    Ok(())
}

/// The signal that asked us to stop, if one did.
pub fn requested() -> Option<Signal> {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 => None,
        sig => Signal::try_from(sig).ok(),
    }
}

/// Fails with [`Interrupted`] once a stop was asked for.
pub fn check() -> Result<()> {
    match requested() {
        Some(sig) => Err(Interrupted(sig).into()),
        None => Ok(()),
    }
}

/// Sleeps for `d`, or less when a stop is asked for (then fails).
pub fn sleep(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    loop {
        check()?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
