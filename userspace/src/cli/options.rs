// SPDX-License-Identifier: GPL-2.0
//! The options of the commands that take more than a module and a format,
//! each turned into the plain plan its command runs.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use super::{
    args::{LavaDeviceArgs, ModuleArg},
    values::ArchName,
};
use crate::commands::{doctor, fuzz, lava::job, soak, watch};

/// What the doctor is asked to do (`leaklab doctor`'s options).
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    module: ModuleArg,
    /// The pattern the canary runs.
    #[arg(long, default_value = "error_path")]
    canary: String,
}

impl DoctorArgs {
    /// The doctor's options.
    pub fn plan(self) -> doctor::Options {
        doctor::Options {
            module: self.module.path(),
            canary: self.canary,
        }
    }
}

/// What the fuzzer is asked to do (`leaklab fuzz`'s options).
#[derive(Debug, Clone, Args)]
pub struct FuzzArgs {
    #[command(flatten)]
    module: ModuleArg,
    /// At most this many operations.
    #[arg(long, default_value_t = 5000)]
    count: u64,
    /// At most this many seconds of fuzzing.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The generator's seed (the same seed, the same input).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl FuzzArgs {
    /// The fuzzer's plan.
    pub fn plan(self) -> fuzz::Plan {
        fuzz::Plan {
            module: self.module.path(),
            count: self.count,
            seconds: self.seconds,
            seed: self.seed,
        }
    }
}

/// What to soak (`leaklab soak`'s options).
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    module: ModuleArg,
    /// Load/run/unload cycles.
    #[arg(long, default_value_t = 1000)]
    cycles: u32,
    /// Also run this pattern's leaky variant each cycle (--leaky-runs times).
    #[arg(long)]
    leaky: Option<String>,
    /// Runs of the leaky variant a cycle.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    leaky_runs: u32,
    /// Sample memory every this many cycles.
    #[arg(long, default_value_t = 10)]
    every: u32,
}

impl SoakArgs {
    /// The soak's plan.
    pub fn plan(self) -> soak::Plan {
        soak::Plan {
            module: self.module.path(),
            cycles: self.cycles,
            leaky: self.leaky,
            leaky_runs: self.leaky_runs,
            every: self.every,
        }
    }
}

/// `leaklab watch`'s options.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Time between rounds: `60s`, `5m`, `1h`, `500ms`, or seconds.
    #[arg(long, default_value = "60s", value_parser = watch::parse_interval)]
    interval: Duration,
    /// The directory for the event log and the state (made if missing).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/leaklab/watch")]
    out: PathBuf,
    /// Also write the figures as a Prometheus textfile here (for
    /// node_exporter's textfile collector: a name ending in `.prom`).
    #[arg(long, value_name = "PATH")]
    textfile: Option<PathBuf>,
    /// Stop after this many rounds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: Option<u64>,
    /// A module's object file (repeatable): its frames are named to
    /// file:line while it is loaded, and after it is unloaded.
    #[arg(long = "ko", value_name = "KO")]
    kos: Vec<PathBuf>,
    /// Rotate the event log at this many MiB.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    log_mib: u64,
    /// How long Slab must grow steadily, with kmemleak reporting nothing
    /// new, before the watch warns of a leak kmemleak cannot see.
    #[arg(long, default_value = "10m", value_parser = watch::parse_interval)]
    trend_after: Duration,
    /// Rotated event logs kept (the log on disk is at most
    /// `--log-mib` times this plus one).
    #[arg(long, default_value_t = 4)]
    log_keep: usize,
}

impl WatchArgs {
    /// The watch's options.
    pub fn plan(self) -> watch::Options {
        watch::Options {
            interval: self.interval,
            out: self.out,
            textfile: self.textfile,
            rounds: self.rounds,
            kos: self.kos,
            log_mib: self.log_mib,
            trend_after: self.trend_after,
            log_keep: self.log_keep,
        }
    }
}

/// Options of `leaklab lava job`.
#[derive(Debug, Args)]
pub struct LavaJobArgs {
    /// Architecture of the device.
    #[arg(long, value_enum, default_value = "x86_64")]
    arch: ArchName,
    #[command(flatten)]
    device: LavaDeviceArgs,
    /// Directory holding the per-ARCH build outputs (`<dir>/<arch>/...`).
    #[arg(long, default_value = "build")]
    build_dir: PathBuf,
    /// Kernel image (qemu default: <build-dir>/<arch>/kernel-image; a board
    /// needs its own: KDIR/arch/arm64/boot/Image).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Static leaklab binary that becomes /init (default:
    /// <build-dir>/<arch>/leaklab).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Module for the initramfs' /lib/modules (repeatable; default: every
    /// .ko in <build-dir>/<arch>/, for a board in
    /// <build-dir>/leaklab-bundle-arm64/, which `make bundle KDIR=...` builds
    /// for the board's kernel).
    #[arg(long = "module")]
    modules: Vec<PathBuf>,
    /// Check this module of yours (also put in /lib/modules) instead of
    /// running the matrix: `leaklab check` with its defaults.
    #[arg(long, value_name = "KO")]
    check: Option<PathBuf>,
    /// Where the job and its files go (made if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

impl LavaJobArgs {
    /// What the job writer is asked to write.
    pub fn plan(self) -> job::Options {
        job::Options {
            device: self.device.device(self.arch.into(), self.kernel),
            build_dir: self.build_dir,
            init: self.init,
            modules: self.modules,
            check: self.check,
            out: self.out,
        }
    }
}
