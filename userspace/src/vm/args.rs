//! `leaklab vm`'s options, and the command that runs a guest with them.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};

use super::{
    initramfs::{check_distinct, modules_in, provides, Contents, UserFile},
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
    /// Static busybox for the guest's /bin: its shell and tools (default:
    /// <build-dir>/<arch>/busybox when there is one; without it the guest
    /// runs leaklab commands only).
    #[arg(long)]
    pub busybox: Option<PathBuf>,
    /// A file of yours for the guest (repeatable): SRC on the host, DEST its
    /// absolute path in the guest (default /root/<file name>; a DEST ending
    /// in / is a directory); its mode is kept.
    #[arg(long = "file", value_name = "SRC[:DEST]")]
    pub files: Vec<String>,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Guest memory in MiB (at least 64: with less the kernel dies before
    /// its console starts).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub memory: u32,
    /// Guest CPUs (1 to 64).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
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
    /// The command to run in the guest: a leaklab command (its words, with
    /// or without `leaklab` first), or any program on the guest's PATH with
    /// its arguments (busybox's `sh`, `insmod`, `cat`, ...; `sh -c '...'`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs the guest command `a` asks for; the exit status is the guest
/// command's. `is_leaklab_command` tells a leaklab subcommand's name.
pub fn run(a: VmArgs, is_leaklab_command: fn(&str) -> bool) -> Result<ExitCode> {
    let files = a
        .files
        .iter()
        .map(|f| UserFile::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    check_distinct(&files).map_err(anyhow::Error::msg)?;
    let dir = a.build_dir.join(a.arch.name());
    let busybox = match a.busybox {
        Some(b) if b.is_file() => Some(b),
        Some(b) => anyhow::bail!("busybox {} not found", b.display()),
        None => Some(dir.join("busybox")).filter(|b| b.is_file()),
    };
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
            busybox,
            files,
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
    if let Some(first) = spec.command.first() {
        if !is_leaklab_command(first)
            && first != "leaklab"
            && !first.starts_with('-')
            && !provides(&spec.contents, first)
        {
            anyhow::bail!(
                "{first:?} is not a leaklab command and the guest has no shell or tools to run it: no busybox at {} (run 'make tool ARCH={}', or pass --busybox PATH)",
                dir.join("busybox").display(),
                spec.arch.name()
            );
        }
    }
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
