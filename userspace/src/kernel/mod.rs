//! The running kernel as leaklab uses it: modules (object files, loading,
//! their layout in memory), the kernel log, procfs figures, memory through
//! /proc/kcore, signals, and threads whose kernel stacks do not outlive a
//! step.

pub mod interrupt;
pub mod kcore;
pub mod kmod;
pub mod kmsg;
pub mod module;
pub mod procfs;
pub mod thread;
