// SPDX-License-Identifier: GPL-2.0
//! The running kernel as leaklab uses it: modules (object files, loading,
//! their layout in memory), the kernel log, procfs figures, memory through
//! /proc/kcore, signals, threads whose kernel stacks do not outlive a step,
//! settings changed for a while, the undo steps a panic runs, and kernel
//! time (jiffies) as wall time, tracefs, and the probe that tells where a
//! module's init was loaded.

pub mod clock;
pub mod initprobe;
pub mod interrupt;
pub mod kcore;
pub mod kmod;
pub mod kmsg;
pub mod modtree;
pub mod module;
pub mod procfs;
pub mod setting;
pub mod thread;
pub mod tracefs;
pub mod undo;
