// SPDX-License-Identifier: GPL-2.0
//! Options more than one command takes, each defined once and flattened
//! into the commands that take it.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::values::FormatName;
use crate::{
    ko::{Variant, MAX_RUNS},
    output::Format,
    pipeline::{
        detectors::{Detector, DetectorChoice},
        lab::Plan,
    },
    vm::lava::{Device, DeviceType},
};

/// `--format human|json`.
#[derive(Debug, Clone, Copy, Args)]
pub struct FormatArg {
    /// Output format: human or json.
    #[arg(long, default_value = "human", value_parser = plain_format)]
    format: FormatName,
}

impl FormatArg {
    /// The format asked for.
    pub fn get(self) -> Format {
        self.format.into()
    }
}

fn plain_format(s: &str) -> Result<FormatName, String> {
    match FormatName::from_str(s, false)? {
        FormatName::Ktap => Err("this command has no KTAP output: use human or json".into()),
        f => Ok(f),
    }
}

/// `--format human|json|ktap|html`, for `show`: a saved result again, or
/// as one HTML page.
#[derive(Debug, Clone, Copy, Args)]
pub struct ShowFormatArg {
    /// Output format: human, json, ktap, or html (one self-contained page
    /// for a browser; a backtrace's source lines are read from the current
    /// directory).
    #[arg(long, default_value = "human", value_parser = show_format, value_name = "FORMAT")]
    format: Format,
}

impl ShowFormatArg {
    /// The format asked for.
    pub fn get(self) -> Format {
        self.format
    }
}

fn show_format(s: &str) -> Result<Format, String> {
    match s {
        "html" => Ok(Format::Html),
        s => Ok(FormatName::from_str(s, false)
            .map_err(|_| format!("{s:?} is not a format: human, json, ktap or html"))?
            .into()),
    }
}

/// `--format human|json|ktap`, for the commands that give test results.
#[derive(Debug, Clone, Copy, Args)]
pub struct ResultFormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: FormatName,
}

impl ResultFormatArg {
    /// The format asked for.
    pub fn get(self) -> Format {
        self.format.into()
    }
}

/// `-n`: runs of each pattern and variant, bounded by what the module
/// accepts in one write.
#[derive(Debug, Clone, Copy, Args)]
pub struct RunsArg {
    /// Runs per pattern and variant (at most the module's limit, 10000).
    #[arg(short, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RUNS)))]
    pub n: u32,
}

/// `--module`: leaklab.ko.
#[derive(Debug, Clone, Args)]
pub struct ModuleArg {
    /// The module (default: leaklab.ko beside this executable, else
    /// /lib/modules/leaklab.ko, as in the VM).
    #[arg(long)]
    module: Option<PathBuf>,
}

impl ModuleArg {
    /// The module file to use.
    pub fn path(&self) -> PathBuf {
        default_module(self.module.clone())
    }
}

/// Resolves the module path: as given, else `leaklab.ko` beside the leaklab
/// executable (an unpacked bundle), else in the guest's module directory.
fn default_module(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("leaklab.ko")))
            .filter(|ko| ko.is_file())
            .unwrap_or_else(|| Path::new(crate::vm::initramfs::MODULE_DIR).join("leaklab.ko"))
    })
}

/// A leak detector.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DetectorName {
    /// kmemleak: scans memory for objects nothing points to.
    Kmemleak,
    /// Allocation tracing over tracefs: what the module allocated and did
    /// not free by the time it was gone.
    Trace,
}

impl From<DetectorName> for Detector {
    fn from(d: DetectorName) -> Self {
        match d {
            DetectorName::Kmemleak => Detector::Kmemleak,
            DetectorName::Trace => Detector::Trace,
        }
    }
}

/// `--detector` and `--trace-buffer-kb`.
#[derive(Debug, Clone, Args)]
pub struct DetectorArgs {
    /// A detector to judge by (repeatable; default: every one this kernel
    /// supports: kmemleak with CONFIG_DEBUG_KMEMLEAK, trace with tracefs).
    #[arg(long = "detector", value_enum)]
    detectors: Vec<DetectorName>,
    /// The allocation trace's ring buffer per CPU, in KiB (default: 8 MiB,
    /// or the kernel's own for a trace instance when larger): events lost
    /// to a full buffer make the run inconclusive.
    #[arg(long, value_name = "KIB")]
    trace_buffer_kb: Option<u64>,
}

impl DetectorArgs {
    /// The detectors chosen.
    pub fn choice(&self) -> DetectorChoice {
        DetectorChoice {
            detectors: self.detectors.iter().map(|&d| d.into()).collect(),
            trace_buffer_kb: self.trace_buffer_kb,
        }
    }
}

/// What `cycle` and `matrix` run: the module, its patterns, the runs and
/// the cycles.
#[derive(Debug, Clone, Args)]
pub struct SelectArgs {
    #[command(flatten)]
    module: ModuleArg,
    /// Pattern to run (repeatable; default: all).
    #[arg(long = "pattern")]
    patterns: Vec<String>,
    #[command(flatten)]
    runs: RunsArg,
    /// Load/run/unload cycles.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    cycles: u32,
    #[command(flatten)]
    detectors: DetectorArgs,
}

impl SelectArgs {
    /// The plan of these, for `variants`.
    pub fn plan(self, variants: Vec<Variant>) -> Plan {
        Plan {
            detectors: self.detectors.choice(),
            ..Plan::new(
                self.module.path(),
                self.patterns,
                variants,
                self.runs.n,
                self.cycles,
            )
        }
    }
}

/// The LAVA device types a job can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceTypeArg {
    /// LAVA's `qemu` device type: the machine and CPU of `leaklab vm`.
    #[value(name = "qemu")]
    Qemu,
    /// The Radxa ROCK 5B/5B+ (RK3588) as LAVA labs name it: U-Boot, TFTP,
    /// console on ttyS2 at 1500000 baud (the device type's own setting).
    #[value(name = "rk3588-rock-5b")]
    Rock5b,
}

/// The LAVA device a job is written for (`--device-type`, `--dtb`) and
/// where the lab fetches its files (`--url`): `lava job`'s and `sweep
/// --lava-jobs`'.
#[derive(Debug, Clone, Args)]
pub struct LavaDeviceArgs {
    /// LAVA device type.
    #[arg(long, value_enum, default_value = "qemu")]
    device_type: DeviceTypeArg,
    /// The board's device tree blob, e.g.
    /// KDIR/arch/arm64/boot/dts/rockchip/rk3588-rock-5b.dtb (boards only).
    #[arg(long)]
    dtb: Option<PathBuf>,
    /// The URL the lab's dispatcher fetches DIR's files from
    /// (http://host/path/); default: file:// URLs of DIR, for a dispatcher
    /// on this machine.
    #[arg(long)]
    url: Option<String>,
}

impl LavaDeviceArgs {
    /// Whether none of its options was given.
    pub fn is_default(&self) -> bool {
        self.device_type == DeviceTypeArg::Qemu && self.dtb.is_none() && self.url.is_none()
    }

    /// The device, of architecture `arch`, booting `kernel` if given.
    pub fn device(self, arch: crate::vm::Arch, kernel: Option<PathBuf>) -> Device {
        Device {
            arch,
            device_type: match self.device_type {
                DeviceTypeArg::Qemu => DeviceType::Qemu,
                DeviceTypeArg::Rock5b => DeviceType::Rock5b,
            },
            kernel,
            dtb: self.dtb,
            url: self.url,
        }
    }
}
