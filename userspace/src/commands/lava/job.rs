// SPDX-License-Identifier: GPL-2.0
//! `leaklab lava job`: a ready LAVA job from the current build.
//!
//! The job boots the project's kernel (or a board's) with an initramfs whose
//! `/init` is leaklab itself: no login, no test shell. The initramfs runs
//! `leaklab matrix --format ktap` (or `check KO --format ktap`), and the
//! job's `monitors` test action turns each KTAP line on the console into a
//! LAVA test case; a second monitor reads PID 1's `@exit N` line, so that
//! leaklab's exit status is a case of its own.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::vm::{
    initramfs::{modules_in, Contents, MODULE_DIR},
    lava::{self, Device, Job, Minutes},
};

/// What `leaklab lava job` is asked to write.
#[derive(Debug)]
pub struct Options {
    /// The device, its kernel and DTB if given, and the URL of `out`.
    pub device: Device,
    /// Directory holding the per-ARCH build outputs (`<dir>/<arch>/...`).
    pub build_dir: PathBuf,
    /// Static leaklab binary that becomes /init (default:
    /// `<build-dir>/<arch>/leaklab`).
    pub init: Option<PathBuf>,
    /// Modules for the initramfs' /lib/modules (default: the build's).
    pub modules: Vec<PathBuf>,
    /// A module of the user's to check instead of running the matrix.
    pub check: Option<PathBuf>,
    /// Where the job and its files go.
    pub out: PathBuf,
}

/// What the job's comment says to do with it.
const USAGE: &str = "# Submit it with `lavacli jobs submit job.yaml`; `leaklab lava results` reads
# its log (`lavacli jobs logs --raw ID`) and fails unless every case passed.
";

/// Writes the job and its files into `o.out`; returns the job's path.
pub fn write(o: &Options) -> Result<PathBuf> {
    let d = &o.device;
    d.refuse_mismatches(&o.out)?;
    let arch_dir = o.build_dir.join(d.arch.name());
    let (kernel, dtb) = d.boot_files(&arch_dir.join("kernel-image"))?;
    let (modules, command) = guest_command(o, d.is_board(), &arch_dir)?;
    let init = o.init.clone().unwrap_or_else(|| arch_dir.join("leaklab"));
    for f in [&kernel, &init].into_iter().chain(&modules).chain(&dtb) {
        if !f.is_file() {
            bail!(
                "{} does not exist: build it first (make module tool ARCH={})",
                f.display(),
                d.arch.name()
            );
        }
    }
    let busybox = Some(arch_dir.join("busybox")).filter(|b| b.is_file());
    let contents = Contents {
        init,
        modules,
        busybox,
        files: Vec::new(),
    };
    lava::write(&Job {
        device: d,
        kernel: &kernel,
        dtb: dtb.as_deref(),
        contents: &contents,
        command: &command,
        what: if o.check.is_some() { "check" } else { "matrix" },
        label: "",
        writer: "leaklab lava job",
        usage: USAGE,
        memory_mib: 512,
        minutes: Minutes::default(),
        out: &o.out,
    })
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
                    format!("module ARCH={}", o.device.arch.name())
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
