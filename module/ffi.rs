// SPDX-License-Identifier: GPL-2.0

//! What the module calls that the kernel crate's bindings do not declare:
//! debugfs (6.12's bindings lack `debugfs.h`) and the module's own
//! allocation entry points (`module/alloc.c`). bindgen declares them from
//! `module/ffi.h` at build time (`Kbuild`), with the flags the tree's own
//! bindings were made with and without types: they are the kernel crate's.

// As for the kernel crate's own bindings (rust/bindings/lib.rs): bindgen
// makes every item `pub`, and `dentry` and `file_operations` hold a
// `lockdep_map`, an empty struct without lockdep, which is not FFI-safe by
// value; both pass here only behind pointers.
#![allow(unreachable_pub, improper_ctypes)]

use kernel::{bindings::*, ffi};

include!("ffi_generated.rs");
