// SPDX-License-Identifier: GPL-2.0
//! Booting the project's kernel in QEMU with `leaklab` as `/init`.
//!
//! [`run`] writes the initramfs, starts `qemu-system-x86_64` or
//! `qemu-system-aarch64 -M virt -cpu cortex-a76`, passes the guest command in
//! the initramfs ([`initramfs::COMMAND_FILE`]), streams the console (guest stdout to stdout, the
//! rest to stderr), saves every console line to a log file, enforces a
//! timeout, and returns the guest command's exit status.
//!
//! KVM is used when it works: a guest of the host's architecture is first
//! started under KVM, and if the console stays silent for [`KVM_PROBE`] (as on
//! machines where SeaBIOS never hands over) it is killed and started again
//! under TCG. The verdict is cached per QEMU binary and host kernel.

use std::{
    fs::{self, File, OpenOptions},
    hash::{Hash, Hasher},
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

pub mod args;
pub mod init;
pub mod initramfs;
pub mod lava;

use init::Tag;
use initramfs::Contents;

/// How long a KVM guest may stay silent before KVM is declared not working.
pub const KVM_PROBE: Duration = Duration::from_secs(10);

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Arch {
    /// x86_64 (QEMU `pc`, console on ttyS0).
    X86_64,
    /// arm64 (QEMU `virt` with a Cortex-A76, console on ttyAMA0).
    Arm64,
}

impl Arch {
    /// The name used in paths and by the kernel's `ARCH=`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Arm64 => "qemu-system-aarch64",
        }
    }

    fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }

    fn is_host(self) -> bool {
        match self {
            Arch::X86_64 => cfg!(target_arch = "x86_64"),
            Arch::Arm64 => cfg!(target_arch = "aarch64"),
        }
    }

    fn machine_args(self, kvm: bool) -> Vec<String> {
        let v: &[&str] = match (self, kvm) {
            (Arch::X86_64, true) => &["-M", "pc", "-accel", "kvm", "-cpu", "host"],
            (Arch::X86_64, false) => &["-M", "pc", "-accel", "tcg", "-cpu", "max"],
            (Arch::Arm64, true) => &["-M", "virt", "-accel", "kvm", "-cpu", "host"],
            (Arch::Arm64, false) => &["-M", "virt", "-accel", "tcg", "-cpu", "cortex-a76"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when it works here, TCG otherwise.
    Auto,
    /// KVM only.
    Kvm,
    /// TCG (software emulation) only.
    Tcg,
}

/// Everything needed to run one guest command.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Guest architecture.
    pub arch: Arch,
    /// Kernel image: an x86_64 vmlinux with a PVH entry (or a bzImage), an
    /// arm64 Image.
    pub kernel: PathBuf,
    /// Files for the initramfs.
    pub contents: Contents,
    /// The command `/init` runs: a leaklab command (its words without
    /// `leaklab`) or any program of the guest with its arguments.
    pub command: Vec<String>,
    /// Extra kernel command line words.
    pub append: Vec<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Wall-clock limit for the whole run.
    pub timeout: Duration,
    /// Accelerator choice.
    pub accel: Accel,
    /// Where the console log is written.
    pub log: PathBuf,
    /// QEMU binary to use instead of the one on PATH.
    pub qemu: Option<PathBuf>,
    /// Also print kernel console lines (to stderr).
    pub show_kernel: bool,
    /// Print the guest command's output and PID 1's messages here (they
    /// are in the console log either way).
    pub echo: bool,
    /// Asked about ten times a second: when it says yes, QEMU is killed
    /// and the run ends with [`VmError::Stopped`] (a caller's SIGINT or
    /// SIGTERM, which QEMU does not get unless it shares a terminal).
    pub stop: Option<fn() -> bool>,
}

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VmOutcome {
    /// The guest command's exit status.
    pub status: i32,
    /// `kvm` or `tcg`.
    pub accel: &'static str,
    /// From QEMU's start to PID 1's first line.
    pub boot_to_init: Option<Duration>,
    /// From QEMU's start to its exit.
    pub wall: Duration,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The kernel image is not there.
    #[error("kernel image {0} not found: run 'make kernel' (or pass --kernel)")]
    KernelMissing(PathBuf),
    /// The QEMU binary is not there.
    #[error("{0} not found: run 'make setup' (Debian: qemu-system-x86 / qemu-system-arm)")]
    QemuMissing(String),
    /// No guest command.
    #[error("no guest command: give one after '--'")]
    NoCommand,
    /// QEMU could not start or stopped with an error before the guest ran.
    #[error("qemu failed: {msg}; console log: {log}")]
    Qemu {
        /// What QEMU said.
        msg: String,
        /// The console log.
        log: PathBuf,
    },
    /// The guest did not finish in time.
    #[error("guest did not finish within {secs} s (hung?); console log: {log}")]
    Timeout {
        /// The limit.
        secs: u64,
        /// The console log.
        log: PathBuf,
    },
    /// The guest stopped without reporting an exit status.
    #[error("guest stopped without an exit status (kernel panic or crash?); console log: {log}")]
    NoStatus {
        /// The console log.
        log: PathBuf,
    },
    /// The caller asked it to stop ([`VmSpec::stop`]); QEMU was killed.
    #[error("guest stopped when asked to; console log: {log}")]
    Stopped {
        /// The console log.
        log: PathBuf,
    },
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LEAKLAB_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("leaklab")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Where the KVM verdict for this QEMU binary and host kernel is kept.
fn kvm_verdict_file(qemu: &Path) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    qemu.hash(&mut h);
    fs::metadata(qemu)
        .and_then(|m| m.modified())
        .ok()
        .hash(&mut h);
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .hash(&mut h);
    cache_dir().join(format!("kvm-verdict-{:016x}", h.finish()))
}

fn kvm_usable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Runs `spec` and returns how it ended.
pub fn run(spec: &VmSpec) -> Result<VmOutcome, VmError> {
    if !spec.kernel.is_file() {
        return Err(VmError::KernelMissing(spec.kernel.clone()));
    }
    if spec.command.is_empty() {
        return Err(VmError::NoCommand);
    }
    let qemu = match &spec.qemu {
        Some(q) if q.is_file() => q.clone(),
        Some(q) => return Err(VmError::QemuMissing(q.display().to_string())),
        None => find_in_path(spec.arch.qemu())
            .ok_or_else(|| VmError::QemuMissing(spec.arch.qemu().into()))?,
    };
    if let Some(dir) = spec.log.parent() {
        fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    let initrd = spec.log.with_extension("cpio");
    initramfs::write(&spec.contents, &spec.command, &initrd)?;

    let verdict_file = kvm_verdict_file(&qemu);
    let try_kvm = match spec.accel {
        Accel::Tcg => false,
        Accel::Kvm => true,
        Accel::Auto => {
            spec.arch.is_host()
                && kvm_usable()
                && fs::read_to_string(&verdict_file).map_or(true, |v| v.trim() == "kvm")
        }
    };
    if try_kvm {
        let probe = (spec.accel == Accel::Auto && !verdict_file.exists()).then_some(KVM_PROBE);
        match boot(spec, &qemu, &initrd, true, probe) {
            Err(BootError::Silent) => {
                eprintln!(
                    "vm: KVM gave no console output within {} s; using TCG (verdict kept in {})",
                    KVM_PROBE.as_secs(),
                    verdict_file.display()
                );
                remember(&verdict_file, "tcg");
            }
            Err(BootError::Vm(e)) => return Err(e),
            Ok(outcome) => {
                if probe.is_some() {
                    remember(&verdict_file, "kvm");
                }
                return Ok(outcome);
            }
        }
    }
    boot(spec, &qemu, &initrd, false, None).map_err(|e| match e {
        BootError::Vm(e) => e,
        BootError::Silent => unreachable!("no probe without KVM"),
    })
}

fn remember(file: &Path, verdict: &str) {
    if let Some(dir) = file.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let _ = fs::write(file, verdict);
}

enum BootError {
    /// The KVM probe saw no console output in time.
    Silent,
    Vm(VmError),
}

impl From<VmError> for BootError {
    fn from(e: VmError) -> Self {
        BootError::Vm(e)
    }
}

fn spawn_lines(pipe: impl Read + Send + 'static, tx: mpsc::Sender<Option<String>>) {
    thread::spawn(move || {
        let mut r = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let s = String::from_utf8_lossy(&buf);
                    if tx
                        .send(Some(s.trim_end_matches(['\n', '\r']).to_string()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(None);
    });
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The guest kernel's command line: the console, quiet, no reboot on a
/// panic, the two settings kmemleak needs to see leaks exactly, and the
/// user's own words.
fn kernel_cmdline(spec: &VmSpec) -> String {
    let mut cmdline = vec![
        format!("console={}", spec.arch.console()),
        "loglevel=4".into(),
        "panic=-1".into(),
        // Zero slab objects when they are allocated: an object not fully
        // written by its user would otherwise keep a stale freelist pointer
        // to a neighbour, which kmemleak takes for a reference (a leak that
        // is never reported).
        "init_on_alloc=1".into(),
        // Keep each slab cache to itself. Merged, the maple tree nodes of
        // every mmap share kmalloc-256 with drivers' buffers: a leak then
        // lands in a slot a maple node left, and the stale pointers to that
        // node (dead frames of tasks that mapped memory) hide the leak.
        "slab_nomerge".into(),
    ];
    // The guest command is in the initramfs, not here (see
    // initramfs::COMMAND_FILE).
    cmdline.extend(spec.append.iter().cloned());
    cmdline.join(" ")
}

/// QEMU's arguments for `spec` with `initrd`.
fn qemu_args(spec: &VmSpec, initrd: &Path, kvm: bool) -> Vec<String> {
    let mut args = spec.arch.machine_args(kvm);
    args.extend(
        [
            "-m",
            &spec.memory_mib.to_string(),
            "-smp",
            &spec.cpus.to_string(),
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
        ]
        .map(String::from),
    );
    args.push(spec.kernel.display().to_string());
    args.push("-initrd".into());
    args.push(initrd.display().to_string());
    args.push("-append".into());
    args.push(kernel_cmdline(spec));
    args
}

/// What the guest's console said.
struct Console {
    /// Whether it said anything.
    first_output: bool,
    /// When init first spoke.
    boot_to_init: Option<Duration>,
    /// The guest command's exit status, once told.
    status: Option<i32>,
}

/// How often a run asks [`VmSpec::stop`].
const STOP_POLL: Duration = Duration::from_millis(100);

/// Follows the console's `lines` into `log` and onto this process's
/// stdout and stderr until QEMU closes it; kills QEMU at the deadline, at
/// `probe` if it has said nothing by then, or when asked to stop.
fn follow(
    spec: &VmSpec,
    lines: &mpsc::Receiver<Option<String>>,
    child: &mut Child,
    log: &mut File,
    start: Instant,
    probe: Option<Duration>,
) -> Result<Console, BootError> {
    let log_err =
        |e: std::io::Error| VmError::Other(anyhow::anyhow!("writing {}: {e}", spec.log.display()));
    let deadline = start + spec.timeout;
    let mut said = Console {
        first_output: false,
        boot_to_init: None,
        status: None,
    };
    let stdout = std::io::stdout();
    loop {
        let now = Instant::now();
        let limit = match probe {
            Some(p) if !said.first_output => (start + p).min(deadline),
            _ => deadline,
        };
        if now >= limit {
            kill(child);
            if probe.is_some() && !said.first_output {
                return Err(BootError::Silent);
            }
            let _ = writeln!(log, "# leaklab: killed after {} s", spec.timeout.as_secs());
            return Err(VmError::Timeout {
                secs: spec.timeout.as_secs(),
                log: spec.log.clone(),
            }
            .into());
        }
        if spec.stop.is_some_and(|stop| stop()) {
            kill(child);
            let _ = writeln!(log, "# leaklab: stopped when asked to");
            return Err(VmError::Stopped {
                log: spec.log.clone(),
            }
            .into());
        }
        let line = match lines.recv_timeout((limit - now).min(STOP_POLL)) {
            Ok(Some(line)) => line,
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(said),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
        };
        said.first_output = true;
        writeln!(log, "{line}").map_err(log_err)?;
        match Tag::split(&line) {
            Some((tag, text)) => {
                said.boot_to_init.get_or_insert_with(|| start.elapsed());
                match tag {
                    Tag::Exit => said.status = text.trim().parse::<i32>().ok(),
                    _ if !spec.echo => {}
                    Tag::Stdout => {
                        let _ = writeln!(stdout.lock(), "{text}");
                    }
                    Tag::Stderr => eprintln!("{text}"),
                    Tag::Init => eprintln!("guest: {text}"),
                }
            }
            None if spec.show_kernel => eprintln!("{line}"),
            None => {}
        }
    }
}

fn boot(
    spec: &VmSpec,
    qemu: &Path,
    initrd: &Path,
    kvm: bool,
    probe: Option<Duration>,
) -> Result<VmOutcome, BootError> {
    let accel = if kvm { "kvm" } else { "tcg" };
    let log_err =
        |e: std::io::Error| VmError::Other(anyhow::anyhow!("writing {}: {e}", spec.log.display()));
    let mut log = File::create(&spec.log).map_err(log_err)?;
    let args = qemu_args(spec, initrd, kvm);
    writeln!(log, "# {} {}", qemu.display(), args.join(" ")).map_err(log_err)?;
    if spec.echo {
        eprintln!(
            "vm: booting {} under {}; console log: {}",
            spec.arch.name(),
            accel.to_uppercase(),
            spec.log.display()
        );
    }

    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| VmError::Qemu {
            msg: format!("starting {}: {e}", qemu.display()),
            log: spec.log.clone(),
        })?;
    let (tx, rx) = mpsc::channel();
    spawn_lines(child.stdout.take().expect("piped stdout"), tx);
    let (etx, erx) = mpsc::channel();
    spawn_lines(child.stderr.take().expect("piped stderr"), etx);
    let Console {
        first_output,
        boot_to_init,
        status,
    } = follow(spec, &rx, &mut child, &mut log, start, probe)?;
    let exit = child.wait().map_err(|e| VmError::Other(e.into()))?;
    let wall = start.elapsed();
    let qemu_err: Vec<String> = erx.try_iter().flatten().collect();
    for l in &qemu_err {
        let _ = writeln!(log, "# qemu: {l}");
    }
    match status {
        Some(status) => Ok(VmOutcome {
            status,
            accel,
            boot_to_init,
            wall,
        }),
        None if probe.is_some() && !first_output => Err(BootError::Silent),
        None if !exit.success() || !first_output => Err(VmError::Qemu {
            msg: qemu_err
                .first()
                .cloned()
                .unwrap_or_else(|| format!("exited with {exit} before the guest printed anything")),
            log: spec.log.clone(),
        }
        .into()),
        None => Err(VmError::NoStatus {
            log: spec.log.clone(),
        }
        .into()),
    }
}
