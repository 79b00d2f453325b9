// SPDX-License-Identifier: GPL-2.0

//! The leak samples: one file per pattern, each with its leaky and its fixed
//! variant side by side.
//!
//! The variant functions are named `*_leaky` and `*_fixed` and marked
//! `#[inline(never)]`: the userspace tool ties each kmemleak report to its
//! pattern and variant by these frames in the allocation backtrace.

use crate::catalogue::Pattern;

pub(crate) mod arc_cycle;
pub(crate) mod conditional_free;
pub(crate) mod device_ref;
pub(crate) mod error_path;
pub(crate) mod module_exit;
pub(crate) mod rust_forget;
pub(crate) mod slab_cache;

/// Number of patterns.
pub(crate) const COUNT: usize = 7;

/// The catalogue, in the order `patterns/` and `stats` list it.
pub(crate) const PATTERNS: [Pattern; COUNT] = [
    error_path::PATTERN,
    module_exit::PATTERN,
    device_ref::PATTERN,
    conditional_free::PATTERN,
    slab_cache::PATTERN,
    rust_forget::PATTERN,
    arc_cycle::PATTERN,
];
