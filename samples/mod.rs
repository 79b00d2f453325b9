// SPDX-License-Identifier: GPL-2.0

//! The leak samples: one file per pattern, each with its leaky and its fixed
//! variant side by side, and a `PATTERN` that names them.
//!
//! The variant functions are named `*_leaky` and `*_fixed` and marked
//! `#[inline(never)]`: the userspace tool ties each kmemleak report to its
//! pattern and variant by these frames in the allocation backtrace.
//!
//! Adding a pattern: its file here, its line in the list below, and its guide
//! page in `Documentation/patterns/`.

use crate::pattern::Pattern;

/// Declares each sample's module and lists its `PATTERN` in [`PATTERNS`].
macro_rules! samples {
    ($($name:ident,)*) => {
        $(pub(crate) mod $name;)*

        /// The catalogue, in the order `patterns/` and `stats` list it.
        pub(crate) const PATTERNS: &[Pattern] = &[$($name::PATTERN),*];
    };
}

samples! {
    error_path,
    module_exit,
    device_ref,
    conditional_free,
    slab_cache,
    rust_forget,
    arc_cycle,
    page_leak,
    unbounded_cache,
}
