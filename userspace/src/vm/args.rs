// SPDX-License-Identifier: GPL-2.0
//! What `leaklab vm` is asked to run, and the command that runs a guest
//! with it.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};

use super::{
    initramfs::{check_distinct, modules_in, provides, Contents, UserFile},
    Accel, Arch, VmSpec,
};

/// What `leaklab vm` is asked to run.
#[derive(Debug)]
pub struct VmArgs {
    /// Guest architecture.
    pub arch: Arch,
    /// Directory holding the per-ARCH build outputs (`<dir>/<arch>/...`).
    pub build_dir: PathBuf,
    /// Kernel image (default: `<build-dir>/<arch>/kernel-image`).
    pub kernel: Option<PathBuf>,
    /// Static leaklab binary for the guest (default:
    /// `<build-dir>/<arch>/leaklab`).
    pub init: Option<PathBuf>,
    /// Modules for the guest's /lib/modules (default: every .ko in
    /// `<build-dir>/<arch>/`).
    pub modules: Vec<PathBuf>,
    /// Static busybox for the guest's /bin (default:
    /// `<build-dir>/<arch>/busybox` when there is one).
    pub busybox: Option<PathBuf>,
    /// Files for the guest, `SRC[:DEST]` each.
    pub files: Vec<String>,
    /// Wall-clock limit in seconds.
    pub timeout: u64,
    /// Guest memory in MiB.
    pub memory: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Accelerator.
    pub accel: Accel,
    /// QEMU binary (default: qemu-system-<arch> on PATH).
    pub qemu: Option<PathBuf>,
    /// Console log file (default: `<build-dir>/results/console-<arch>.log`).
    pub log: Option<PathBuf>,
    /// Extra kernel command line words.
    pub append: Vec<String>,
    /// Also show the kernel's console lines.
    pub verbose: bool,
    /// The command to run in the guest.
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
        echo: true,
        show_kernel: a.verbose,
        // Ctrl-C reaches QEMU itself, on the same terminal.
        stop: None,
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
