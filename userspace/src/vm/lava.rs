// SPDX-License-Identifier: GPL-2.0
//! LAVA jobs that boot a kernel with leaklab as `/init`: the job's YAML
//! for LAVA's `qemu` device type or an rk3588-rock-5b board, beside the
//! files it names (the kernel, the gzipped initramfs, a board's DTB).
//!
//! The job has no login and no test shell: its `monitors` test action
//! turns each KTAP line leaklab prints on the console into a LAVA test
//! case, and a second monitor reads PID 1's `@exit N` line, so that
//! leaklab's exit status is a case of its own. `lava job` writes one job;
//! `sweep --lava-jobs` one job per shard of a sweep.

use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use flate2::{write::GzEncoder, Compression};

use super::{
    initramfs::{self, Contents},
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
    /// Its name in LAVA.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Qemu => "qemu",
            DeviceType::Rock5b => "rk3588-rock-5b",
        }
    }
}

/// The device a job boots, its kernel, and where the lab's dispatcher
/// fetches the job's files from.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its architecture.
    pub arch: Arch,
    /// Its LAVA device type.
    pub device_type: DeviceType,
    /// The kernel image, if given (QEMU has a default; a board has none).
    pub kernel: Option<PathBuf>,
    /// The board's device tree blob (boards only).
    pub dtb: Option<PathBuf>,
    /// The URL of the job's directory (default: file:// URLs of it).
    pub url: Option<String>,
}

impl Device {
    /// Whether it is a board (not QEMU).
    pub fn is_board(&self) -> bool {
        self.device_type != DeviceType::Qemu
    }

    /// Refuses options that do not go together, for a job written into
    /// `out`.
    pub fn refuse_mismatches(&self, out: &Path) -> Result<()> {
        let board = self.is_board();
        if board && self.arch != Arch::Arm64 {
            bail!(
                "{} is an arm64 board: pass --arch arm64",
                self.device_type.name()
            );
        }
        if !board && self.dtb.is_some() {
            bail!("--dtb is for boards: the qemu device type boots without one");
        }
        // LAVA reads a file:// URL's path as it stands (no percent-decoding),
        // so a `#` or `?` in it would cut it short.
        if self.url.is_none() && out.to_string_lossy().contains(['#', '?']) {
            bail!(
                "LAVA cannot fetch file:// URLs of {}: its path holds '#' or '?'; choose another --out, or serve it and pass --url",
                out.display()
            );
        }
        Ok(())
    }

    /// The kernel image and device tree the job boots: given, or
    /// `default_kernel` for QEMU (a board must be given both).
    pub fn boot_files(&self, default_kernel: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
        let board = self.is_board();
        let kernel = match (&self.kernel, board) {
            (Some(k), _) => k.clone(),
            (None, false) => default_kernel.to_path_buf(),
            (None, true) => bail!(
                "a board boots its own kernel: pass --kernel KDIR/arch/arm64/boot/Image (the tree 'make bundle KDIR=...' built for)"
            ),
        };
        let dtb = match (&self.dtb, board) {
            (Some(d), _) => Some(d.clone()),
            (None, false) => None,
            (None, true) => bail!(
                "a board needs its device tree: pass --dtb KDIR/arch/arm64/boot/dts/rockchip/rk3588-rock-5b.dtb"
            ),
        };
        Ok((kernel, dtb))
    }
}

/// A job's timeouts, in minutes.
#[derive(Debug, Clone, Copy)]
pub struct Minutes {
    /// The whole job.
    pub job: u64,
    /// Any one action, unless it says otherwise.
    pub action: u64,
    /// The test action: the guest command's run.
    pub test: u64,
}

impl Default for Minutes {
    /// Those of `lava job`'s matrix or check.
    fn default() -> Self {
        Self {
            job: 45,
            action: 30,
            test: 30,
        }
    }
}

/// What a job is and runs.
pub struct Job<'a> {
    /// The device, its boot files given or found.
    pub device: &'a Device,
    /// The kernel image.
    pub kernel: &'a Path,
    /// The board's device tree.
    pub dtb: Option<&'a Path>,
    /// The initramfs' files.
    pub contents: &'a Contents,
    /// The guest command (its KTAP on stdout).
    pub command: &'a [String],
    /// What it runs (`matrix`, `check`, `sweep`): in the job's name and
    /// its KTAP monitor's (`leaklab-WHAT`).
    pub what: &'a str,
    /// After `leaklab WHAT` in the job's name and comment (` shard 1 of
    /// 2`), or nothing.
    pub label: &'a str,
    /// The command that wrote it, for its comment.
    pub writer: &'a str,
    /// The comment's lines on what to do with it (each `# ...\n`).
    pub usage: &'a str,
    /// The guest's memory (QEMU), MiB.
    pub memory_mib: u32,
    /// Its timeouts.
    pub minutes: Minutes,
    /// The directory it is written into (made if missing).
    pub out: &'a Path,
}

/// The file names a job's directory holds.
pub const INITRAMFS: &str = "leaklab-initramfs.cpio.gz";
/// The job's own file.
pub const JOB: &str = "job.yaml";

/// The kernel command line words `leaklab vm` boots with, but the console.
const KERNEL_ARGS: &str = "loglevel=4 panic=-1 init_on_alloc=1 slab_nomerge";

/// Writes the job and its files into `j.out`; returns the job's path.
pub fn write(j: &Job) -> Result<PathBuf> {
    fs::create_dir_all(j.out).with_context(|| format!("creating {}", j.out.display()))?;
    let out = fs::canonicalize(j.out)?;
    let cpio = out.join(".leaklab-initramfs.cpio");
    initramfs::write(j.contents, j.command, &cpio)?;
    gzip(&cpio, &out.join(INITRAMFS))?;
    fs::remove_file(&cpio)?;
    let kernel_name = copy_into(j.kernel, &out)?;
    let dtb_name = j.dtb.map(|d| copy_into(d, &out)).transpose()?;

    let base = match &j.device.url {
        Some(u) if u.ends_with('/') => u.clone(),
        Some(u) => format!("{u}/"),
        None => format!("file://{}/", out.display()),
    };
    let files = Files {
        kernel: quoted(&format!("{base}{kernel_name}")),
        ramdisk: quoted(&format!("{base}{INITRAMFS}")),
        dtb: dtb_name.map(|d| quoted(&format!("{base}{d}"))),
    };
    let text = match j.device.device_type {
        DeviceType::Qemu => qemu_job(j, &files),
        DeviceType::Rock5b => board_job(j, &files),
    };
    let path = out.join(JOB);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
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

/// The QEMU job: LAVA's qemu device type with `leaklab vm`'s machine, CPU
/// and kernel command line; the lab's device dictionary adds
/// `-enable-kvm` where it has KVM.
fn qemu_job(j: &Job, f: &Files) -> String {
    let arch = j.device.arch;
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
        "{top}context:
{context}  memory: {memory}
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
        top = top(
            j,
            &format!("{} under QEMU", arch.name()),
            "qemu",
            arch.name()
        ),
        memory = j.memory_mib,
        kernel = f.kernel,
        ramdisk = f.ramdisk,
        test = monitors(j.what, j.minutes.test),
    )
}

/// The board job: TFTP, U-Boot booting the kernel, DTB and initramfs; the
/// console device and baud rate come from the lab's device dictionary
/// (ttyS2 at 1500000 for rk3588-rock-5b), the rest of the command line from
/// the job.
fn board_job(j: &Job, f: &Files) -> String {
    let device = j.device.device_type.name();
    format!(
        "{top}context:
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
        top = top(j, &format!("a {device} board"), device, "arm64"),
        kernel = f.kernel,
        ramdisk = f.ramdisk,
        dtb = f.dtb.as_deref().unwrap_or_default(),
        test = monitors(j.what, j.minutes.test),
    )
}

/// The job's top: its comment (what it runs on `on`, who wrote it, what
/// to do with it), then its device type, name and timeouts.
fn top(j: &Job, on: &str, device: &str, arch: &str) -> String {
    format!(
        "# leaklab {what}{label} on {on}, written by `{writer}`.
{usage}device_type: {device}
job_name: leaklab {what}{label} {arch}
priority: medium
visibility: public
timeouts:
  job: {{minutes: {job}}}
  action: {{minutes: {action}}}
  connection: {{minutes: 2}}
",
        what = j.what,
        label = j.label,
        writer = j.writer,
        usage = j.usage,
        job = j.minutes.job,
        action = j.minutes.action,
    )
}

/// The test action: one monitor reads the KTAP leaklab prints (each line
/// tagged `@1 ` by PID 1), the other PID 1's `@exit N` line. QEMU's console
/// ends lines in `\r\r\n`, so a pattern ends at `\n`. The exit monitor ends
/// at the kernel's `reboot:` line, printed as PID 1 powers off.
fn monitors(what: &str, minutes: u64) -> String {
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
    timeout: {{minutes: {minutes}}}
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
        let m = monitors("matrix", 30);
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
