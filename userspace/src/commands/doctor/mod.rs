// SPDX-License-Identifier: GPL-2.0
//! `leaklab doctor`: can this machine show a kernel memory leak?
//!
//! It checks what leaklab needs (root, the kernel's options, debugfs,
//! kmemleak in working order, a module built for this kernel, memory), says
//! what the machine is, and then proves the detector can see: a live canary
//! loads leaklab.ko, runs one leaky sample that kmemleak must report and its
//! fixed twin that it must not, and unloads. A zero from a detector that
//! cannot see is worthless; the canary is what makes the other zeros count.

use std::path::Path;

use crate::analysis::detector::Detector;
use crate::{kernel::procfs::kernel_release, output::schema::Schema, trace::allocinfo};

mod canary;
mod checks;
mod collect;
mod machine;
mod options;

pub use crate::report::doctor::{canary_check, Diagnosis, Status};
use canary::run_canary;
use checks::{
    check_cmdline, check_config, check_debugfs, check_kmemleak, check_memory, check_module,
};
use collect::Checks;
use machine::{board, cpu};
pub use options::Options;

/// Runs every check, then the canary when nothing it needs failed.
pub fn diagnose(opts: &Options, progress: &mut dyn FnMut(&str)) -> Diagnosis {
    let mut c = Checks::default();
    let uts = nix::sys::utsname::uname().ok();
    let machine = uts
        .as_ref()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = nix::unistd::geteuid().is_root();
    if root {
        c.ok("root", "running as root".into());
    } else {
        c.fail(
            "root",
            "not root: modules, debugfs and kmemleak need it".into(),
            "run it as root or with sudo",
        );
    }
    check_config(&mut c);
    check_cmdline(&mut c);
    let debugfs = check_debugfs(&mut c, root);
    let trace = crate::pipeline::detectors::supported(Detector::Trace);
    let mut scan_seconds = None;
    let kmemleak = if debugfs == Status::Fail {
        c.skip("kmemleak", "needs debugfs");
        None
    } else {
        check_kmemleak(&mut c, &mut scan_seconds, trace.is_ok())
    };
    match &trace {
        Ok(()) => c.ok(
            "trace",
            "tracefs with the kmem and percpu events: allocation tracing works (no age window, sees pages)".into(),
        ),
        Err(e) => c.warn(
            "trace",
            format!("{e:#}"),
            "build the kernel with CONFIG_TRACING and CONFIG_EVENT_TRACING for the second detector",
        ),
    };
    // Only a kernel with allocation profiling built in has a line for it.
    if Path::new(allocinfo::PROFILING).exists() {
        match allocinfo::state() {
            Ok(()) => c.ok(
                "allocinfo",
                "allocation profiling is on: `check` shows /proc/allocinfo's view beside its verdict"
                    .into(),
            ),
            Err(why) => c.skip("allocinfo", why),
        };
    }
    let mut detectors = Vec::new();
    if kmemleak.is_some() {
        detectors.push(Detector::Kmemleak);
    }
    if trace.is_ok() {
        detectors.push(Detector::Trace);
    }
    if detectors.is_empty() {
        c.fail(
            "detectors",
            "none: neither kmemleak nor allocation tracing works on this kernel".into(),
            "build the kernel with CONFIG_DEBUG_KMEMLEAK or CONFIG_EVENT_TRACING (qemu/common.config)",
        );
    } else {
        let names: Vec<&str> = detectors.iter().map(|d| d.name()).collect();
        c.ok("detectors", names.join(", "));
    }
    let module = check_module(&mut c, &opts.module);
    let meminfo = check_memory(&mut c);
    let ready = root && !detectors.is_empty() && module == Status::Ok;
    let mut canaries = Vec::new();
    if ready {
        for d in detectors {
            progress(&format!(
                "{}: loading leaklab.ko, one leaky and one fixed run",
                canary_check(d)
            ));
            canaries.extend(run_canary(&mut c, opts, d, progress));
        }
    } else {
        c.skip(
            "canary",
            "needs root, a detector and a module for this kernel (see above)",
        );
    }
    let ok = c.0.iter().all(|c| c.status != Status::Fail);
    Diagnosis {
        schema: Schema::Doctor.name().into(),
        kernel: kernel_release(),
        machine,
        board: board(),
        cpu: cpu(),
        memory_mib: meminfo.map_or(0, |(total, _)| total / 1024),
        scan_seconds,
        checks: c.0,
        canary: canaries.first().cloned(),
        canaries,
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::{checks::config_has, machine::cpu_summary};

    #[test]
    fn counts_big_and_little_cores() {
        let mut text = String::new();
        for part in ["0xd05"; 4].iter().chain(&["0xd0b"; 4]) {
            text += &format!("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n");
        }
        assert_eq!(
            cpu_summary(&text).as_deref(),
            Some("4x Cortex-A55 + 4x Cortex-A76")
        );
        let x86 = "model name\t: AMD EPYC\nmodel name\t: AMD EPYC\n";
        assert_eq!(cpu_summary(x86).as_deref(), Some("2x AMD EPYC"));
        assert_eq!(
            cpu_summary("CPU part\t: 0x999\n").as_deref(),
            Some("1x ARM part 0x999")
        );
    }

    #[test]
    fn reads_options_from_a_config() {
        let config =
            "# comment\nCONFIG_RUST=y\n# CONFIG_DEBUG_KMEMLEAK is not set\nCONFIG_MODULES=m\n";
        assert!(config_has(config, "RUST"));
        assert!(!config_has(config, "DEBUG_KMEMLEAK"));
        assert!(!config_has(config, "MODULES"));
    }
}
