// SPDX-License-Identifier: GPL-2.0
//! `leaklab lava job`: a ready LAVA job from the current build.
//!
//! The job boots the project's kernel (or a board's) with an initramfs whose
//! `/init` is leaklab itself: no login, no test shell. The initramfs runs
//! `leaklab matrix --format ktap` (or `check KO --format ktap`), and the
//! job's `monitors` test action turns each KTAP line on the console into a
//! LAVA test case; a second monitor reads PID 1's `@exit N` line, so that
//! leaklab's exit status is a case of its own.

use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use flate2::{write::GzEncoder, Compression};

use crate::vm::{
    initramfs::{self, modules_in, Contents, MODULE_DIR},
    Arch,
};

/// The LAVA device types a job can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// LAVA's `qemu` device type: the machine and CPU of `leaklab vm`.
    Qemu,
    /// The Radxa ROCK 5B/5B+ (RK3588) as LAVA labs name it: U-Boot, TFTP,
    /// console on ttyS2 at 1500000 baud (the device type's own setting).
    Rock5b,
}

impl DeviceType {
    fn name(self) -> &'static str {
        match self {
            DeviceType::Qemu => "qemu",
            DeviceType::Rock5b => "rk3588-rock-5b",
        }
    }
}

/// What `leaklab lava job` is asked to write.
#[derive(Debug)]
pub struct Options {
    /// Architecture of the device.
    pub arch: Arch,
    /// LAVA device type.
    pub device_type: DeviceType,
    /// Directory holding the per-ARCH build outputs (`<dir>/<arch>/...`).
    pub build_dir: PathBuf,
    /// Kernel image (default for qemu: `<build-dir>/<arch>/kernel-image`).
    pub kernel: Option<PathBuf>,
    /// The board's device tree blob (boards only).
    pub dtb: Option<PathBuf>,
    /// Static leaklab binary that becomes /init (default:
    /// `<build-dir>/<arch>/leaklab`).
    pub init: Option<PathBuf>,
    /// Modules for the initramfs' /lib/modules (default: the build's).
    pub modules: Vec<PathBuf>,
    /// A module of the user's to check instead of running the matrix.
    pub check: Option<PathBuf>,
    /// Where the job and its files go.
    pub out: PathBuf,
    /// The URL the lab's dispatcher fetches the files from (default:
    /// file:// URLs of `out`).
    pub url: Option<String>,
}

/// The file names a job's directory holds.
const INITRAMFS: &str = "leaklab-initramfs.cpio.gz";
const JOB: &str = "job.yaml";

/// The kernel command line words `leaklab vm` boots with, but the console.
const KERNEL_ARGS: &str = "loglevel=4 panic=-1 init_on_alloc=1 slab_nomerge";

/// Writes the job and its files into `o.out`; returns the job's path.
pub fn write(o: &Options) -> Result<PathBuf> {
    let board = refuse_mismatches(o)?;
    let arch_dir = o.build_dir.join(o.arch.name());
    let (kernel, dtb) = boot_files(o, board, &arch_dir)?;
    let (modules, command) = guest_command(o, board, &arch_dir)?;
    let init = o.init.clone().unwrap_or_else(|| arch_dir.join("leaklab"));
    for f in [&kernel, &init].into_iter().chain(&modules).chain(&dtb) {
        if !f.is_file() {
            bail!(
                "{} does not exist: build it first (make module tool ARCH={})",
                f.display(),
                o.arch.name()
            );
        }
    }
    let busybox = Some(arch_dir.join("busybox")).filter(|b| b.is_file());

    fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let out = fs::canonicalize(&o.out)?;
    let cpio = out.join(".leaklab-initramfs.cpio");
    initramfs::write(
        &Contents {
            init,
            modules,
            busybox,
            files: Vec::new(),
        },
        &command,
        &cpio,
    )?;
    gzip(&cpio, &out.join(INITRAMFS))?;
    fs::remove_file(&cpio)?;
    let kernel_name = copy_into(&kernel, &out)?;
    let dtb_name = dtb.as_deref().map(|d| copy_into(d, &out)).transpose()?;

    let base = match &o.url {
        Some(u) if u.ends_with('/') => u.clone(),
        Some(u) => format!("{u}/"),
        None => format!("file://{}/", out.display()),
    };
    let what = if o.check.is_some() { "check" } else { "matrix" };
    let files = Files {
        kernel: quoted(&format!("{base}{kernel_name}")),
        ramdisk: quoted(&format!("{base}{INITRAMFS}")),
        dtb: dtb_name.map(|d| quoted(&format!("{base}{d}"))),
    };
    let job = match o.device_type {
        DeviceType::Qemu => qemu_job(o.arch, what, &files),
        DeviceType::Rock5b => board_job(o.device_type, what, &files),
    };
    let path = out.join(JOB);
    fs::write(&path, job).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Refuses options that do not go together; returns whether the device
/// is a board.
fn refuse_mismatches(o: &Options) -> Result<bool> {
    let board = o.device_type != DeviceType::Qemu;
    if board && o.arch != Arch::Arm64 {
        bail!(
            "{} is an arm64 board: pass --arch arm64",
            o.device_type.name()
        );
    }
    if !board && o.dtb.is_some() {
        bail!("--dtb is for boards: the qemu device type boots without one");
    }
    // LAVA reads a file:// URL's path as it stands (no percent-decoding), so
    // a `#` or `?` in it would cut it short.
    if o.url.is_none() && o.out.to_string_lossy().contains(['#', '?']) {
        bail!(
            "LAVA cannot fetch file:// URLs of {}: its path holds '#' or '?'; choose another --out, or serve it and pass --url",
            o.out.display()
        );
    }
    Ok(board)
}

/// The kernel image and device tree the job boots: given, or the
/// project's kernel in `arch_dir` for QEMU (a board must be given both).
fn boot_files(o: &Options, board: bool, arch_dir: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    let kernel = match (&o.kernel, board) {
        (Some(k), _) => k.clone(),
        (None, false) => arch_dir.join("kernel-image"),
        (None, true) => bail!(
            "a board boots its own kernel: pass --kernel KDIR/arch/arm64/boot/Image (the tree 'make bundle KDIR=...' built for)"
        ),
    };
    let dtb = match (&o.dtb, board) {
        (Some(d), _) => Some(d.clone()),
        (None, false) => None,
        (None, true) => bail!(
            "a board needs its device tree: pass --dtb KDIR/arch/arm64/boot/dts/rockchip/rk3588-rock-5b.dtb"
        ),
    };
    Ok((kernel, dtb))
}

/// The modules for the initramfs (given, else those built for the
/// device) and the command the guest runs: the matrix, or a check of
/// `--check`'s module, in KTAP.
fn guest_command(o: &Options, board: bool, arch_dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let module_dir = if board {
        o.build_dir.join("leaklab-bundle-arm64")
    } else {
        arch_dir.to_path_buf()
    };
    let mut modules = if o.modules.is_empty() {
        modules_in(&module_dir).with_context(|| {
            format!(
                "no --module given and no modules in {}: run 'make {}'",
                module_dir.display(),
                if board {
                    "bundle ARCH=arm64 KDIR=...".to_string()
                } else {
                    format!("module ARCH={}", o.arch.name())
                }
            )
        })?
    } else {
        o.modules.clone()
    };
    let mut command: Vec<String> = vec!["matrix".into()];
    if let Some(ko) = &o.check {
        if !modules.iter().any(|m| m.file_name() == ko.file_name()) {
            modules.push(ko.clone());
        }
        let name = ko
            .file_name()
            .with_context(|| format!("--check {}: not a file name", ko.display()))?;
        command = vec![
            "check".into(),
            Path::new(MODULE_DIR).join(name).display().to_string(),
        ];
    }
    command.extend(["--format".into(), "ktap".into()]);
    Ok((modules, command))
}

/// Copies `src` into `dir` under its own name; returns that name.
fn copy_into(src: &Path, dir: &Path) -> Result<String> {
    let name = src
        .file_name()
        .with_context(|| format!("{} has no file name", src.display()))?;
    fs::copy(src, dir.join(name))
        .with_context(|| format!("copying {} into {}", src.display(), dir.display()))?;
    Ok(name.to_string_lossy().into_owned())
}

fn gzip(src: &Path, dst: &Path) -> Result<()> {
    let data = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let mut z = GzEncoder::new(
        fs::File::create(dst).with_context(|| format!("creating {}", dst.display()))?,
        Compression::default(),
    );
    z.write_all(&data)?;
    z.finish()?;
    Ok(())
}

/// `s` as a single-quoted YAML scalar: a path or URL may hold `: `, `#` or
/// a quote.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Where the dispatcher fetches the job's files, as YAML scalars.
struct Files {
    kernel: String,
    ramdisk: String,
    dtb: Option<String>,
}

/// The QEMU job: LAVA's qemu device type with `leaklab vm`'s machine, CPU,
/// memory and kernel command line; the lab's device dictionary adds
/// `-enable-kvm` where it has KVM.
fn qemu_job(arch: Arch, what: &str, f: &Files) -> String {
    let (context, console) = match arch {
        Arch::X86_64 => (
            "  arch: x86_64\n  extra_options: ['-machine pc', '-cpu max', '-smp 1', '-no-reboot']\n",
            "ttyS0",
        ),
        Arch::Arm64 => (
            "  arch: arm64\n  machine: virt\n  cpu: cortex-a76\n  extra_options: ['-smp 1', '-no-reboot']\n",
            "ttyAMA0",
        ),
    };
    format!(
        "# leaklab {what} on {arch} under QEMU, written by `leaklab lava job`.
# Submit it with `lavacli jobs submit job.yaml`; `leaklab lava results` reads
# its log (`lavacli jobs logs --raw ID`) and fails unless every case passed.
{head}context:
{context}  memory: 512
actions:
- deploy:
    to: tmpfs
    timeout: {{minutes: 5}}
    images:
      kernel:
        image_arg: -kernel {{kernel}} -append \"console={console} {KERNEL_ARGS}\"
        url: {kernel}
      ramdisk:
        image_arg: -initrd {{ramdisk}}
        url: {ramdisk}
        compression: gz
- boot:
    method: qemu
    media: tmpfs
    timeout: {{minutes: 2}}
{test}",
        arch = arch.name(),
        head = head("qemu", what, arch.name()),
        kernel = f.kernel,
        ramdisk = f.ramdisk,
        test = monitors(what),
    )
}

/// The board job: TFTP, U-Boot booting the kernel, DTB and initramfs; the
/// console device and baud rate come from the lab's device dictionary
/// (ttyS2 at 1500000 for rk3588-rock-5b), the rest of the command line from
/// the job.
fn board_job(device: DeviceType, what: &str, f: &Files) -> String {
    format!(
        "# leaklab {what} on a {device} board, written by `leaklab lava job`.
# Submit it with `lavacli jobs submit job.yaml`; `leaklab lava results` reads
# its log (`lavacli jobs logs --raw ID`) and fails unless every case passed.
{head}context:
  console_device: ttyS2
  extra_kernel_args: {KERNEL_ARGS}
actions:
- deploy:
    to: tftp
    timeout: {{minutes: 10}}
    kernel:
      url: {kernel}
      type: image
    dtb:
      url: {dtb}
    ramdisk:
      url: {ramdisk}
      compression: gz
    os: oe
- boot:
    method: u-boot
    commands: ramdisk
    timeout: {{minutes: 5}}
{test}",
        device = device.name(),
        head = head(device.name(), what, "arm64"),
        kernel = f.kernel,
        ramdisk = f.ramdisk,
        dtb = f.dtb.as_deref().unwrap_or_default(),
        test = monitors(what),
    )
}

fn head(device: &str, what: &str, arch: &str) -> String {
    format!(
        "device_type: {device}
job_name: leaklab {what} {arch}
priority: medium
visibility: public
timeouts:
  job: {{minutes: 45}}
  action: {{minutes: 30}}
  connection: {{minutes: 2}}
"
    )
}

/// The test action: one monitor reads the KTAP leaklab prints (each line
/// tagged `@1 ` by PID 1), the other PID 1's `@exit N` line. QEMU's console
/// ends lines in `\r\r\n`, so a pattern ends at `\n`. The exit monitor ends
/// at the kernel's `reboot:` line, printed as PID 1 powers off.
fn monitors(what: &str) -> String {
    let mut statuses = String::new();
    for s in 0..=255u32 {
        let result = match s {
            0 => "pass",
            3 => "unknown",
            _ => "fail",
        };
        let sep = if s % 8 == 0 { "\n        " } else { " " };
        let _ = write!(statuses, "{sep}'{s}': {result},");
    }
    format!(
        r"- test:
    timeout: {{minutes: 30}}
    monitors:
    - name: leaklab-{what}
      start: '@1 KTAP version 1'
      end: '@1 # Totals:'
      pattern: '@1 (?P<result>ok|not ok) \d+ (?P<test_case_id>[^\s#]+)[^\n]*\n'
      fixupdict: {{'ok': pass, 'not ok': fail}}
    - name: leaklab
      start: '@i '
      end: 'reboot: '
      pattern: '@(?P<test_case_id>exit) (?P<result>\d+)\r'
      fixupdict: {{{statuses}
      }}
",
        statuses = statuses.trim_end_matches(',')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_quoted_for_yaml() {
        assert_eq!(quoted("http://h/#1: it's"), "'http://h/#1: it''s'");
    }

    #[test]
    fn every_exit_status_has_a_result() {
        let m = monitors("matrix");
        let statuses = m.split("name: leaklab\n").nth(1).unwrap();
        let results: Vec<&str> = (0..=255)
            .map(|s| {
                let key = format!("'{s}': ");
                let at = statuses.find(&key).unwrap_or_else(|| panic!("no {key}"));
                statuses[at + key.len()..]
                    .split([',', '\n'])
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(results[0], "pass");
        assert_eq!(results[3], "unknown");
        assert!(results
            .iter()
            .enumerate()
            .all(|(s, r)| s == 0 || s == 3 || *r == "fail"));
    }
}
