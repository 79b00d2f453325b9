// SPDX-License-Identifier: GPL-2.0
//! The machine's checks: kernel options, the command line, debugfs,
//! kmemleak, the module's vermagic, memory.

use std::{path::Path, time::Instant};

use crate::{
    kernel::{
        kmod,
        kmsg::KmsgWatch,
        module::Ko,
        procfs::{kernel_config, kernel_release, meminfo_field},
    },
    kmemleak::{self, protocol::log_failure, window::auto_scan_running, Kmemleak},
};

use super::collect::Checks;
use crate::report::doctor::Status;

/// The kernel options leaklab cannot do without (a detector besides: see
/// the `detectors` check).
const REQUIRED: &[&str] = &[
    "DEBUG_FS",
    "RUST",
    "MODULES",
    "MODULE_UNLOAD",
    "KALLSYMS_ALL",
];

/// Whether `CONFIG_<name>` is built in (`=y`) in `config`.
pub(super) fn config_has(config: &str, name: &str) -> bool {
    let key = format!("CONFIG_{name}=y");
    config.lines().any(|l| l.trim() == key)
}

pub(super) fn check_config(c: &mut Checks) {
    let Some((config, from)) = kernel_config() else {
        c.warn(
            "kernel config",
            format!(
                "neither /proc/config.gz nor /boot/config-{} to read; the checks below and the canary still tell",
                kernel_release()
            ),
            "build the kernel with CONFIG_IKCONFIG_PROC=y to let doctor read its options",
        );
        return;
    };
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|o| !config_has(&config, o))
        .collect();
    if missing.is_empty() {
        c.ok("kernel config", format!("{from}: {}", REQUIRED.join(" ")));
    } else {
        c.fail(
            "kernel config",
            format!("{from}: not set: CONFIG_{}", missing.join(" CONFIG_")),
            "rebuild the kernel with qemu/common.config merged (see Documentation/boards/)",
        );
    }
}

pub(super) fn check_cmdline(c: &mut Checks) {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    if words.contains(&"kmemleak=off") {
        c.fail(
            "command line",
            "kmemleak=off: the detector is switched off at boot".into(),
            "boot without kmemleak=off",
        );
    } else if !words.contains(&"slab_nomerge") {
        c.warn(
            "command line",
            "no slab_nomerge: caches of one size share slabs, and stale pointers from other caches can hide a leak (counts may come out low)".into(),
            "add slab_nomerge to the kernel command line",
        );
    } else {
        c.ok("command line", "slab_nomerge".into());
    }
}

/// Checks debugfs, mounting it when it is not and we may.
pub(super) fn check_debugfs(c: &mut Checks, root: bool) -> Status {
    let dir = Path::new(kmemleak::DEBUGFS);
    if kmemleak::is_debugfs_mounted(dir) {
        return c.ok("debugfs", format!("mounted at {}", dir.display()));
    }
    if !root {
        return c.fail(
            "debugfs",
            format!("not mounted at {}", dir.display()),
            "run doctor as root (it mounts it), or: mount -t debugfs none /sys/kernel/debug",
        );
    }
    let mounted = nix::mount::mount(
        Some("none"),
        dir,
        Some("debugfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    match mounted {
        Ok(()) => c.ok(
            "debugfs",
            format!("was not mounted: mounted it at {}", dir.display()),
        ),
        Err(e) => c.fail(
            "debugfs",
            format!(
                "not mounted at {}, and mounting it failed: {e}",
                dir.display()
            ),
            "build the kernel with CONFIG_DEBUG_FS=y",
        ),
    }
}

/// Checks that kmemleak is there, enabled, and never ran out of its pool;
/// times one scan.
/// A kernel without kmemleak is fine when the trace works (`trace`): a
/// warning then, not a failure.
pub(super) fn check_kmemleak(
    c: &mut Checks,
    scan_seconds: &mut Option<f64>,
    trace: bool,
) -> Option<Kmemleak> {
    let k = match Kmemleak::open() {
        Ok(k) => k,
        Err(e) if trace => {
            c.warn(
                "kmemleak",
                format!("{e:#}: the trace detector judges alone"),
                "build the kernel with CONFIG_DEBUG_KMEMLEAK=y for a second opinion",
            );
            return None;
        }
        Err(e) => {
            c.fail(
                "kmemleak",
                format!("{e:#}"),
                "build the kernel with CONFIG_DEBUG_KMEMLEAK=y",
            );
            return None;
        }
    };
    // The whole kernel log since boot: kmemleak says there when it stopped.
    let failure = KmsgWatch::from_boot()
        .map(|mut w| w.drain())
        .unwrap_or_default()
        .iter()
        .find_map(|l| log_failure(l));
    if let Some(why) = failure {
        let fix = if why.contains("metadata") {
            "reboot: kmemleak stays off until then; raise CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE so its pool lasts"
        } else {
            "boot without kmemleak=off (and with kmemleak=on if the kernel has DEBUG_KMEMLEAK_DEFAULT_OFF)"
        };
        c.fail("kmemleak", why, fix);
        return None;
    }
    let t = Instant::now();
    if let Err(e) = k.scan() {
        c.fail(
            "kmemleak",
            format!("a scan was refused: {e:#}"),
            "boot without kmemleak=off and see the kernel log for why kmemleak stopped",
        );
        return None;
    }
    let secs = t.elapsed().as_secs_f64();
    *scan_seconds = Some(secs);
    c.ok("kmemleak", format!("enabled; one scan takes {secs:.2} s"));
    if auto_scan_running() {
        c.ok(
            "auto-scan",
            "kmemleak's scan thread runs; leaklab pauses it in its windows and restores it".into(),
        );
    } else {
        c.ok(
            "auto-scan",
            "kmemleak's scan thread is off (scans run on demand only)".into(),
        );
    }
    Some(k)
}

pub(super) fn check_module(c: &mut Checks, ko: &Path) -> Status {
    let checked = Ko::open(ko).and_then(|ko| {
        kmod::check(&ko)?;
        Ok(ko.name().to_string())
    });
    match checked {
        Ok(name) if Path::new("/sys/module").join(&name).exists() => c.fail(
            "module",
            format!("{name} is already loaded"),
            &format!("unload it first: rmmod {name}"),
        ),
        Ok(name) => c.ok(
            "module",
            format!(
                "{}: {name}, built for this kernel and machine",
                ko.display()
            ),
        ),
        Err(e) => c.fail(
            "module",
            format!("{e:#}"),
            "build leaklab.ko against the running kernel (make module KDIR=..., or make bundle)",
        ),
    }
}

/// Checks MemAvailable; returns (MemTotal, MemAvailable) in KiB.
pub(super) fn check_memory(c: &mut Checks) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = meminfo_field(&text, "MemTotal:")?;
    let available = meminfo_field(&text, "MemAvailable:")?;
    let detail = format!("{} MiB available of {} MiB", available / 1024, total / 1024);
    // The samples leak at most leak_cap (4 MiB); kmemleak's scans and the
    // module want some room beyond that.
    if available < 32 * 1024 {
        c.fail(
            "memory",
            detail,
            "free some memory: under 32 MiB is too little to run the samples",
        );
    } else if available < 128 * 1024 {
        c.warn(
            "memory",
            detail,
            "runs may hit allocation failures: free some memory",
        );
    } else {
        c.ok("memory", detail);
    }
    Some((total, available))
}
