// SPDX-License-Identifier: GPL-2.0
//! `leaklab sweep`'s options, turned into its plan.

use std::path::PathBuf;

use clap::Args;

use super::{
    args::{DetectorArgs, LavaDeviceArgs},
    values::ProtocolName,
    vm::MachineArgs,
};
use crate::commands::{
    check::parse_param,
    sweep::{Guests, Plan, Shards},
};

/// A `--param` word: `MODULE:KEY=VALUE`.
fn parse_module_param(s: &str) -> Result<(String, String), String> {
    let (module, param) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not MODULE:KEY=VALUE"))?;
    if module.is_empty()
        || !module
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("{module:?} is not a module's name"));
    }
    Ok((module.replace('-', "_"), parse_param(param)?))
}

/// What `sweep` runs.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Module names, or shell patterns of names or paths in the tree
    /// (`snd_*`, `kernel/crypto/*`); none: every module of the tree.
    only: Vec<String>,
    /// A file of more names or patterns, one a line (`modules.order` is
    /// one).
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// The module tree, `lib/modules/RELEASE` with its modules.dep
    /// (default: the running kernel's; with --kernel, required:
    /// scripts/debian-modules.sh fetches Debian's).
    #[arg(long, value_name = "DIR")]
    modules_dir: Option<PathBuf>,
    /// A module's parameter, MODULE:KEY=VALUE, as modprobe.d's `options`
    /// gives it (repeatable).
    #[arg(long = "param", value_name = "MODULE:KEY=VALUE", value_parser = parse_module_param)]
    params: Vec<(String, String)>,
    /// Load/unload cycles per module.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    cycles: u32,
    /// How each module is judged.
    #[arg(long, value_enum, default_value = "leaklab")]
    protocol: ProtocolName,
    /// Print each module's row as one JSON line as soon as it is known
    /// (for a supervisor that must keep what a machine that crashes said).
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    detectors: DetectorArgs,
    /// Sweep in guests of this kernel image (QEMU) instead of the running
    /// kernel; the machine options below apply.
    #[arg(long = "in-guests")]
    in_guests: bool,
    #[command(flatten)]
    machine: MachineArgs,
    /// Guests at once (with --in-guests).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Modules a guest (with --in-guests).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Where the rows, the guests' logs and the merged sweep.json go (with
    /// --in-guests); a sweep run again with the same directory goes on
    /// where it stopped.
    #[arg(long, value_name = "DIR", default_value = "build/results/sweep")]
    out: PathBuf,
    /// Seconds one module may take in a guest before it is called hung
    /// (with --in-guests).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(10..))]
    module_timeout: u64,
    /// The modules' separate debug files, laid out as the tree (Debian's
    /// `-dbg` package: usr/lib/debug/lib/modules/RELEASE; `make
    /// debian-dbg` fetches it): each leak's frames in its module get their
    /// source lines (with --in-guests).
    #[arg(long, value_name = "DIR")]
    debug_dir: Option<PathBuf>,
    /// Do not check each leak again with its module alone in a fresh guest
    /// (with --in-guests).
    #[arg(long)]
    no_confirm: bool,
    #[command(flatten)]
    lava: LavaSweepArgs,
}

/// A sweep over a LAVA lab: its jobs written, or their logs merged.
#[derive(Debug, Clone, Args)]
pub struct LavaSweepArgs {
    /// Instead of booting guests, split the modules into N shards of about
    /// equal size (in the tree's order) and write one LAVA job per shard
    /// into --out DIR's lava/shard-K/ (job.yaml, the kernel, the initramfs
    /// with the shard's modules, modules.list); print the jobs' paths.
    /// Each job runs this sweep's guest command with KTAP: LAVA's monitor
    /// makes one case per module, leak_MODULE (with --in-guests).
    #[arg(long, value_name = "N", requires = "in_guests",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    lava_jobs: Option<u32>,
    #[command(flatten)]
    device: LavaDeviceArgs,
    /// Merge the LAVA jobs --lava-jobs wrote into DIR (its --out): each
    /// shard's log, saved as DIR/lava/shard-K/lava.log (what lava-run
    /// writes, or 'lavacli jobs logs --raw ID' prints), its rows kept in
    /// DIR/rows, a module a log never reported called crashed; print the
    /// sweep of them all, also written to DIR/sweep.json. Its leaks are not
    /// confirmed alone: `sweep --in-guests MODULE` does that.
    #[arg(long, value_name = "DIR",
          conflicts_with_all = ["in_guests", "lava_jobs", "only", "list"])]
    lava_results: Option<PathBuf>,
}

/// What `sweep` is asked to do.
#[derive(Debug)]
pub enum SweepTask {
    /// Sweep, here or in guests.
    Sweep(Plan),
    /// Write the LAVA jobs of the sweep's shards.
    LavaJobs(Plan, Shards),
    /// Merge the logs of the LAVA jobs written into this directory.
    LavaResults(PathBuf),
}

impl SweepArgs {
    /// Whether it runs on this machine's kernel, and so needs root (not
    /// when it runs guests, writes LAVA jobs or merges their logs).
    pub fn runs_here(&self) -> bool {
        !self.in_guests && self.lava.lava_results.is_none()
    }

    /// What these options ask for.
    pub fn task(self) -> anyhow::Result<SweepTask> {
        if let Some(dir) = self.lava.lava_results {
            return Ok(SweepTask::LavaResults(dir));
        }
        let lava = self.lava.clone();
        let Some(count) = lava.lava_jobs else {
            anyhow::ensure!(
                lava.device.is_default(),
                "--device-type, --dtb and --url are for the LAVA jobs of --lava-jobs N"
            );
            return Ok(SweepTask::Sweep(self.plan()));
        };
        let device = lava
            .device
            .device(self.machine.arch.into(), self.machine.kernel.clone());
        Ok(SweepTask::LavaJobs(self.plan(), Shards { count, device }))
    }

    /// The plan of these options.
    fn plan(self) -> Plan {
        let m = self.machine;
        let arch: crate::vm::Arch = m.arch.into();
        let guests = self.in_guests.then(|| Guests {
            arch,
            kernel: m
                .kernel
                .clone()
                .unwrap_or_else(|| m.build_dir.join(arch.name()).join("kernel-image")),
            build_dir: m.build_dir,
            jobs: self.jobs,
            batch: self.batch as usize,
            out: self.out,
            memory: m.memory,
            accel: m.accel.into(),
            qemu: m.qemu,
            // LKFT's protocol confirms nothing.
            confirm: !self.no_confirm && self.protocol == ProtocolName::Leaklab,
            module_timeout: self.module_timeout,
            debug_dir: self.debug_dir,
        });
        Plan {
            modules_dir: self.modules_dir,
            only: self.only,
            list: self.list,
            params: self.params,
            cycles: self.cycles,
            detectors: self.detectors.choice(),
            protocol: self.protocol.into(),
            stream: self.stream,
            guests,
        }
    }
}
