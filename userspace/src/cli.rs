//! The command line: what each subcommand takes and does.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    census,
    initramfs::{self, Contents},
    vm::{self, Accel, Arch, VmSpec},
};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Human,
    /// For machines.
    Json,
}

/// leaklab: see kernel memory leaks happen, catch them, and prove the fix.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Boot the project's kernel in QEMU with leaklab as /init and run a
    /// leaklab command there; exits with that command's status.
    Vm(VmArgs),
    /// Load and unload kernel modules, scan kmemleak, and count the
    /// unreferenced objects each module left behind.
    Census {
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Module files (default: every .ko in /lib/modules).
        modules: Vec<PathBuf>,
    },
}

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

/// Runs the parsed command line and returns the process exit status.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Vm(args) => run_vm(args),
        Cmd::Census { format, modules } => {
            let modules = if modules.is_empty() {
                census::modules_in(std::path::Path::new(initramfs::MODULE_DIR))?
            } else {
                modules
            };
            anyhow::ensure!(
                !modules.is_empty(),
                "no modules given and none in {}",
                initramfs::MODULE_DIR
            );
            let c = census::run(&modules)?;
            match format {
                Format::Human => print!("{}", c.human()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&c)?),
            }
            Ok(if c.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn run_vm(a: VmArgs) -> Result<ExitCode> {
    let dir = a.build_dir.join(a.arch.name());
    let modules = if a.modules.is_empty() {
        census::modules_in(&dir)
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
    let out = vm::run(&spec)?;
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
