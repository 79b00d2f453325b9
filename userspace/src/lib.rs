//! leaklab: drive the leaklab kernel module, harvest kmemleak, and say what
//! leaked, where, and whether it was expected.
//!
//! The same binary runs on the host (building an initramfs and booting QEMU)
//! and inside the guest, where it is `/init` and the command it was asked to
//! run.

pub mod census;
pub mod cli;
pub mod control;
pub mod cycle;
pub mod doctor;
pub mod faults;
pub mod fuzz;
pub mod group;
pub mod init;
pub mod initramfs;
pub mod interrupt;
pub mod kmemleak;
pub mod kmod;
pub mod layout;
pub mod monitor;
pub mod refs;
pub mod report;
pub mod scan;
pub mod selftest;
pub mod session;
pub mod soak;
pub mod symbolize;
pub mod vm;
