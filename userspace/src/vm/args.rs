//! `leaklab vm`'s options, and the command that runs a guest with them.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};

use super::{
    initramfs::{modules_in, Contents},
    Accel, Arch, VmSpec,
};

/// Arguments of `leaklab vm`.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Guest architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    /// Directory holding the per-ARCH build outputs (`<dir>/<arch>/...`).
    #[arg(long, default_value = "build")]
    pub build_dir: PathBuf,
    /// Kernel image (default: <build-dir>/<arch>/kernel-image).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Static leaklab binary for the guest (default: <build-dir>/<arch>/leaklab).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Module to put in the guest's /lib/modules (default: every .ko in <build-dir>/<arch>/).
    #[arg(long = "module")]
    pub modules: Vec<PathBuf>,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Accelerator.
    #[arg(long, value_enum, default_value = "auto", env = "LEAKLAB_ACCEL")]
    pub accel: Accel,
    /// QEMU binary (default: qemu-system-<arch> on PATH).
    #[arg(long)]
    pub qemu: Option<PathBuf>,
    /// Console log file (default: <build-dir>/results/console-<arch>.log).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Extra kernel command line word (repeatable), e.g. kmemleak=off.
    #[arg(long = "append")]
    pub append: Vec<String>,
    /// Also show the kernel's console lines.
    #[arg(short, long)]
    pub verbose: bool,
    /// The leaklab command to run in the guest.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs the guest command `a` asks for; the exit status is the guest
/// command's.
pub fn run(a: VmArgs) -> Result<ExitCode> {
    // The kernel ends init's arguments at a second `--`: it would be lost.
    anyhow::ensure!(
        !a.command.iter().any(|w| w == "--"),
        "the guest command cannot contain '--' (the kernel command line ends init's arguments there): give the command's words without it"
    );
    let dir = a.build_dir.join(a.arch.name());
    let modules = if a.modules.is_empty() {
        modules_in(&dir)
            .with_context(|| format!("no modules given and cannot list {}", dir.display()))?
    } else {
        a.modules
    };
    let spec = VmSpec {
        arch: a.arch,
        kernel: a.kernel.unwrap_or_else(|| dir.join("kernel-image")),
        contents: Contents {
            init: a.init.unwrap_or_else(|| dir.join("leaklab")),
            modules,
        },
        command: a.command,
        append: a.append,
        memory_mib: a.memory,
        cpus: a.cpus,
        timeout: Duration::from_secs(a.timeout),
        accel: a.accel,
        log: a.log.unwrap_or_else(|| {
            a.build_dir
                .join("results")
                .join(format!("console-{}.log", a.arch.name()))
        }),
        qemu: a.qemu,
        show_kernel: a.verbose,
    };
    let out = super::run(&spec)?;
    eprintln!(
        "vm: {} under {}: init after {}, guest command exited {} after {:.1} s",
        spec.arch.name(),
        out.accel.to_uppercase(),
        out.boot_to_init
            .map_or_else(|| "?".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
        out.status,
        out.wall.as_secs_f64()
    );
    Ok(ExitCode::from(u8::try_from(out.status).unwrap_or(1)))
}
