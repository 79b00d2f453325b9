// SPDX-License-Identifier: GPL-2.0

//! What a sample file defines: one leak [`Pattern`], in a leaky and a fixed
//! [`Variant`].

use crate::accounting::Tally;
use kernel::{prelude::*, str::CStr};

/// The two variants of every pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// The buggy code.
    Leaky,
    /// The same code, fixed.
    Fixed,
}

impl Variant {
    /// The name of the variant's control file, as `stats` prints it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Leaky => "leaky",
            Variant::Fixed => "fixed",
        }
    }
}

/// One leak pattern: a driver-style sample in a leaky and a fixed variant.
///
/// A run records in its [`Tally`] every object it allocates, and every object
/// it leaks on purpose before the last pointer to it is lost.
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
    /// Whether kmemleak can report the leak: `false` for memory kmemleak
    /// does not track (the page allocator), which only the allocation-trace
    /// detector finds, and for objects that stay referenced (see `grows`).
    pub(crate) kmemleak_visible: bool,
    /// Whether the leaky variant's objects stay referenced while the module
    /// is loaded and are freed at unload: memory that grows with every run
    /// (a cache never purged). Its verdict is the growth per run while
    /// loaded, not a report at unload; kmemleak never reports such objects.
    pub(crate) grows: bool,
    /// Frees what earlier leaky runs left armed, if the pattern can; returns
    /// the objects and bytes freed.
    pub(crate) disarm: Option<fn() -> (usize, usize)>,
    /// Frees what fixed runs handed to the module for its lifetime; runs once,
    /// when the module's state is dropped.
    pub(crate) at_unload: Option<fn()>,
}

/// The result of a run whose pretend hardware fails with `EIO`, as the
/// lab's hardware always does: the failure is the lesson, so only another
/// error (an allocation failure) is an error of the run itself.
pub(crate) fn eio_expected(r: Result) -> Result {
    match r {
        Err(e) if e == EIO => Ok(()),
        r => r,
    }
}
