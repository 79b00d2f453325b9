// SPDX-License-Identifier: GPL-2.0
//! `leaklab vm`'s options, turned into what the guest runner takes.

use std::path::PathBuf;

use clap::Args;

use super::values::{AccelName, ArchName};
use crate::vm::args::VmArgs;

/// The machine a guest is: its architecture, build outputs, kernel,
/// memory and accelerator (`vm`'s, and `sweep`'s guests').
#[derive(Debug, Clone, Args)]
pub struct MachineArgs {
    /// Guest architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: ArchName,
    /// Directory holding the per-ARCH build outputs (`<dir>/<arch>/...`).
    #[arg(long, default_value = "build")]
    pub build_dir: PathBuf,
    /// Kernel image (default: <build-dir>/<arch>/kernel-image).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Guest memory in MiB (at least 64: with less the kernel dies before
    /// its console starts).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub memory: u32,
    /// Accelerator.
    #[arg(long, value_enum, default_value = "auto", env = "LEAKLAB_ACCEL")]
    pub accel: AccelName,
    /// QEMU binary (default: qemu-system-<arch> on PATH).
    #[arg(long)]
    pub qemu: Option<PathBuf>,
}

/// Arguments of `leaklab vm`.
#[derive(Debug, Args)]
pub struct VmCli {
    #[command(flatten)]
    machine: MachineArgs,
    /// Static leaklab binary for the guest (default: <build-dir>/<arch>/leaklab).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Module to put in the guest's /lib/modules (default: every .ko in <build-dir>/<arch>/).
    #[arg(long = "module")]
    modules: Vec<PathBuf>,
    /// Static busybox for the guest's /bin: its shell and tools (default:
    /// <build-dir>/<arch>/busybox when there is one; without it the guest
    /// runs leaklab commands only).
    #[arg(long)]
    busybox: Option<PathBuf>,
    /// A file of yours for the guest (repeatable): SRC on the host, DEST its
    /// absolute path in the guest (default /root/<file name>; a DEST ending
    /// in / is a directory); its mode is kept.
    #[arg(long = "file", value_name = "SRC[:DEST]")]
    files: Vec<String>,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Guest CPUs (1 to 64).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    cpus: u32,
    /// Console log file (default: <build-dir>/results/console-<arch>.log).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Extra kernel command line word (repeatable), e.g. kmemleak=off.
    #[arg(long = "append")]
    append: Vec<String>,
    /// Also show the kernel's console lines.
    #[arg(short, long)]
    verbose: bool,
    /// The command to run in the guest: a leaklab command (its words, with
    /// or without `leaklab` first), or any program on the guest's PATH with
    /// its arguments (busybox's `sh`, `insmod`, `cat`, ...; `sh -c '...'`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

impl VmCli {
    /// What the guest runner is asked to run.
    pub fn plan(self) -> VmArgs {
        let m = self.machine;
        VmArgs {
            arch: m.arch.into(),
            build_dir: m.build_dir,
            kernel: m.kernel,
            init: self.init,
            modules: self.modules,
            busybox: self.busybox,
            files: self.files,
            timeout: self.timeout,
            memory: m.memory,
            cpus: self.cpus,
            accel: m.accel.into(),
            qemu: m.qemu,
            log: self.log,
            append: self.append,
            verbose: self.verbose,
            command: self.command,
        }
    }
}
