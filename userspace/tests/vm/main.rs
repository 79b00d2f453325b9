// SPDX-License-Identifier: GPL-2.0
//! End-to-end tests: boot the project's kernel in QEMU, load the real
//! modules, and check what kmemleak saw. They need the outputs of
//! `make module tool` for both ARCHs; `make test` builds them and runs these
//! with `--include-ignored` and `LEAKLAB_BUILD_DIR` set.
//!
//! One test binary (its tests run in parallel threads), its code by topic:
//! [`common`] boots a guest ([`common::Guest`]) and checks every JSON
//! document against the schema before a test reads it through a typed view
//! ([`views`]); the other modules hold the checks. Counts come from the
//! run's own pattern list (or the catalogue in `samples/`), never from a
//! number written here: adding a leak pattern needs no edit in these tests.

/// The x86_64 and the arm64 test of one check (they boot QEMU: `make test`
/// runs them).
macro_rules! on_both_arches {
    ($check:ident: $x86:ident, $arm:ident) => {
        #[test]
        #[ignore = "boots QEMU: run through 'make test'"]
        fn $x86() {
            $check("x86_64");
        }

        #[test]
        #[ignore = "boots QEMU: run through 'make test'"]
        fn $arm() {
            $check("arm64");
        }
    };
}

mod bundle;
mod census;
mod check;
mod common;
mod cycle;
mod doctor;
mod endurance;
mod environment;
mod hardening;
mod kunit;
mod lava;
mod lava_sweep;
mod lessons;
mod matrix;
mod parse;
mod shell;
mod soak;
mod sweep;
mod trace;
mod views;
mod watch;
