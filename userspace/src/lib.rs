// SPDX-License-Identifier: GPL-2.0
//! leaklab: drive the leaklab kernel module, harvest kmemleak, and say what
//! leaked, where, and whether it was expected.
//!
//! The same binary runs on the host (building an initramfs and booting QEMU)
//! and inside the guest, where it is `/init` and the command it was asked to
//! run.
//!
//! The layers, each using only those below it (`tests/layers.rs` checks):
//!
//! ```text
//! cli -> commands -> pipeline -> report -> analysis -> kmemleak -> kernel
//!                                      -> trace -> kmemleak, kernel
//!                                      -> ko, output
//!                 -> vm
//! analysis -> ko
//! ```
//!
//! `vm` (QEMU, the initramfs, the guest's init) stands apart: it uses no
//! other layer. Only what `main.rs` and the tests need is public here.

mod analysis;
pub mod cli;
mod commands;
mod kernel;
mod kmemleak;
mod ko;
mod output;
mod pipeline;
mod report;
mod trace;
mod vm;

pub use kernel::interrupt;
pub use output::exit::ERROR as EXIT_ERROR;
pub use vm::init;

/// What the integration tests use of the library's insides.
pub mod testing {
    pub use crate::analysis::{
        debuginfo::with_lines,
        symbolize::{demangle, Symbolizer},
    };
    pub use crate::kernel::module::{Ko, ModuleLayout, Section};
}
