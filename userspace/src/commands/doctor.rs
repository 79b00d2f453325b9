//! `leaklab doctor`: can this machine show a kernel memory leak?
//!
//! It checks what leaklab needs (root, the kernel's options, debugfs,
//! kmemleak in working order, a module built for this kernel, memory), says
//! what the machine is, and then proves the detector can see: a live canary
//! loads leaklab.ko, runs one leaky sample that kmemleak must report and its
//! fixed twin that it must not, and unloads. A zero from a detector that
//! cannot see is worthless; the canary is what makes the other zeros count.

use std::{path::Path, time::Instant};

use serde::{Deserialize, Serialize};

use super::{
    cycle::{self, CycleRun, Plan},
    detectors::{Detector, DetectorArgs},
    ModuleArg,
};
use crate::{
    kernel::{
        kmod,
        kmsg::KmsgWatch,
        module::Ko,
        procfs::{kernel_config, kernel_release, meminfo_field},
    },
    kmemleak::{self, protocol::log_failure, window::auto_scan_running, Kmemleak},
    ko::Variant,
    output::{
        ktap::{self, Case},
        Outcome, Verdict,
    },
    trace::allocinfo,
};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but results may suffer: the detail says how.
    Warn,
    /// leaklab cannot work here until this is fixed.
    Fail,
    /// Not checked, because an earlier check failed.
    Skip,
}

/// One line of the diagnosis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, when it is not ok.
    pub fix: Option<String>,
}

/// What the canary found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Canary {
    /// The detector it proved (`kmemleak`, `trace`).
    #[serde(default = "kmemleak_name")]
    pub detector: String,
    /// The sample it ran.
    pub pattern: String,
    /// Objects one leaky run leaks, as the module states.
    pub expected: u64,
    /// Objects the detector found for the leaky run.
    pub found_leaky: u64,
    /// Objects the detector found for the fixed run (must be 0).
    pub found_fixed: u64,
    /// The culprit's source line, as symbolized.
    pub culprit_line: Option<String>,
    /// Wall time of the whole canary, in seconds.
    pub seconds: f64,
}

/// The whole diagnosis (`--format json`: schema `leaklab.doctor/1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diagnosis {
    /// `leaklab.doctor/1`.
    pub schema: String,
    /// The running kernel's release.
    pub kernel: String,
    /// `uname -m`.
    pub machine: String,
    /// The board, from the device tree or DMI.
    pub board: Option<String>,
    /// The CPUs, e.g. `4x Cortex-A76 + 4x Cortex-A55`.
    pub cpu: Option<String>,
    /// MemTotal in MiB.
    pub memory_mib: u64,
    /// Seconds one kmemleak scan took (the cost of every scan leaklab runs).
    pub scan_seconds: Option<f64>,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The first detector's canary, when it ran.
    pub canary: Option<Canary>,
    /// The canary of every detector this kernel has, in order.
    #[serde(default)]
    pub canaries: Vec<Canary>,
    /// No check failed.
    pub ok: bool,
}

fn kmemleak_name() -> String {
    "kmemleak".into()
}

/// The kernel options leaklab cannot do without (a detector besides: see
/// the `detectors` check).
const REQUIRED: &[&str] = &[
    "DEBUG_FS",
    "RUST",
    "MODULES",
    "MODULE_UNLOAD",
    "KALLSYMS_ALL",
];

/// What the doctor is asked to do (`leaklab doctor`'s options).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    #[command(flatten)]
    module: ModuleArg,
    /// The pattern the canary runs.
    #[arg(long, default_value = "error_path")]
    pub canary: String,
}

/// Collects the checks as they are made.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, name: &str, status: Status, detail: String, fix: Option<String>) -> Status {
        self.0.push(Check {
            name: name.into(),
            status,
            detail,
            fix,
        });
        status
    }

    fn ok(&mut self, name: &str, detail: String) -> Status {
        self.push(name, Status::Ok, detail, None)
    }

    fn warn(&mut self, name: &str, detail: String, fix: &str) -> Status {
        self.push(name, Status::Warn, detail, Some(fix.into()))
    }

    fn fail(&mut self, name: &str, detail: String, fix: &str) -> Status {
        self.push(name, Status::Fail, detail, Some(fix.into()))
    }

    fn skip(&mut self, name: &str, why: &str) -> Status {
        self.push(name, Status::Skip, why.into(), None)
    }
}

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
    let trace = Detector::Trace.supported();
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
    let module = check_module(&mut c, &opts.module.path());
    let meminfo = check_memory(&mut c);
    let ready = root && !detectors.is_empty() && module == Status::Ok;
    let mut canaries = Vec::new();
    if ready {
        for d in detectors {
            progress(&format!(
                "canary ({}): loading leaklab.ko, one leaky and one fixed run",
                d.name()
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
        schema: "leaklab.doctor/1".into(),
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

/// Whether `CONFIG_<name>` is built in (`=y`) in `config`.
fn config_has(config: &str, name: &str) -> bool {
    let key = format!("CONFIG_{name}=y");
    config.lines().any(|l| l.trim() == key)
}

fn check_config(c: &mut Checks) {
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

fn check_cmdline(c: &mut Checks) {
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
fn check_debugfs(c: &mut Checks, root: bool) -> Status {
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
fn check_kmemleak(c: &mut Checks, scan_seconds: &mut Option<f64>, trace: bool) -> Option<Kmemleak> {
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

fn check_module(c: &mut Checks, ko: &Path) -> Status {
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
fn check_memory(c: &mut Checks) -> Option<(u64, u64)> {
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

/// Runs the canary's pattern once leaky, once fixed, in one window, judged
/// by `detector` alone.
fn run_canary(
    c: &mut Checks,
    opts: &Options,
    detector: Detector,
    progress: &mut dyn FnMut(&str),
) -> Option<Canary> {
    let check = format!("canary ({})", detector.name());
    let check = check.as_str();
    let by = detector.name();
    let plan = Plan {
        module: opts.module.path(),
        patterns: vec![opts.canary.clone()],
        variants: vec![Variant::Leaky, Variant::Fixed],
        runs: 1,
        cycles: 1,
        references: Vec::new(),
        detectors: DetectorArgs {
            detectors: vec![detector],
            ..DetectorArgs::default()
        },
    };
    let t = Instant::now();
    let run = match cycle::run(&plan, progress) {
        Ok(run) => run,
        Err(e) => {
            c.fail(
                check,
                format!("{e:#}"),
                "fix what the line says, then run doctor again",
            );
            return None;
        }
    };
    let canary = summarize(&run, &opts.canary, detector, t.elapsed().as_secs_f64());
    let Some(canary) = canary else {
        c.fail(
            check,
            format!("the module has no pattern {:?}", opts.canary),
            "pick one `leaklab patterns` lists (--canary)",
        );
        return None;
    };
    let seen = canary.found_leaky == canary.expected && canary.expected > 0;
    let where_ = canary
        .culprit_line
        .as_deref()
        .map_or(String::new(), |l| format!(" at {l}"));
    if !seen {
        c.fail(
            check,
            format!(
                "{by} found {} of the {} object(s) {} leaky leaks: this detector cannot see the leak here, so its silence proves nothing",
                canary.found_leaky, canary.expected, canary.pattern
            ),
            "see Documentation/scan-protocol.md (stale pointers, slab_nomerge) and the kernel log",
        );
    } else if canary.found_fixed != 0 {
        c.fail(
            check,
            format!(
                "{by} found {} object(s) for {} fixed, which frees everything: its findings here are not to be trusted",
                canary.found_fixed, canary.pattern
            ),
            "see the kernel log and Documentation/scan-protocol.md",
        );
    } else if let Some(u) = run.unsettled() {
        c.fail(
            check,
            match u.trace.as_ref().filter(|t| t.lost > 0) {
                Some(t) => format!("the trace lost {} events: no trustworthy answer", t.lost),
                None => format!(
                    "kmemleak's reports were still changing after {} scans: no trustworthy answer",
                    u.scans
                ),
            },
            "run doctor again, on a quieter machine",
        );
    } else if !run.ok {
        let why = run
            .cycles
            .iter()
            .flat_map(|r| &r.verdicts)
            .find_map(|v| v.reason.clone())
            .unwrap_or_else(|| "something unexpected leaked or the kernel warned".into());
        c.fail(
            check,
            format!("the leak was seen, but the run failed: {why}"),
            "run `leaklab cycle --pattern ...` for the details",
        );
    } else {
        c.ok(
            check,
            format!(
                "{} leaky: {by} found {} of {} object(s){where_}; {} fixed: none",
                canary.pattern, canary.found_leaky, canary.expected, canary.pattern
            ),
        );
    }
    Some(canary)
}

/// The canary's figures from its run, `None` if `pattern` did not run.
fn summarize(run: &CycleRun, pattern: &str, detector: Detector, seconds: f64) -> Option<Canary> {
    let verdicts: Vec<&cycle::verdict::Verdict> = run
        .cycles
        .iter()
        .flat_map(|r| &r.verdicts)
        .filter(|v| v.pattern == pattern)
        .collect();
    let leaky = verdicts.iter().find(|v| v.variant == Variant::Leaky)?;
    let fixed = verdicts.iter().find(|v| v.variant == Variant::Fixed);
    let found = |v: &cycle::verdict::Verdict| match detector {
        Detector::Kmemleak => v.found.objects,
        Detector::Trace => v.trace.as_ref().map_or(0, |t| t.found.objects),
    };
    let expected = match detector {
        Detector::Kmemleak => leaky.expected.objects,
        Detector::Trace => leaky.trace.as_ref().map_or(0, |t| t.expected.objects),
    };
    Some(Canary {
        detector: detector.name().into(),
        pattern: pattern.into(),
        expected,
        found_leaky: found(leaky),
        found_fixed: fixed.map_or(0, |v| found(v)),
        culprit_line: leaky
            .culprits
            .keys()
            .find_map(|c| c.split_once(" at ").map(|(_, line)| line.to_string())),
        seconds,
    })
}

/// The board's name: the device tree's model, else DMI's.
fn board() -> Option<String> {
    let dt = std::fs::read("/proc/device-tree/model").ok().map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .trim()
            .to_string()
    });
    let dmi = || {
        let vendor = std::fs::read_to_string("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
        let product = std::fs::read_to_string("/sys/class/dmi/id/product_name").ok()?;
        Some(
            format!("{} {}", vendor.trim(), product.trim())
                .trim()
                .to_string(),
        )
    };
    dt.filter(|s| !s.is_empty()).or_else(dmi)
}

/// The CPUs from `/proc/cpuinfo`: `model name` (x86), or the ARM part
/// numbers of each core, counted.
fn cpu() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpu_summary(&text)
}

/// See [`cpu`]; `text` is `/proc/cpuinfo`.
pub fn cpu_summary(text: &str) -> Option<String> {
    let value = |l: &str, key: &str| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    };
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for l in text.lines() {
        let name = value(l, "model name").or_else(|| {
            value(l, "CPU part").map(|p| arm_part(&p).map_or(format!("ARM part {p}"), String::from))
        });
        if let Some(name) = name {
            match kinds.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => kinds.push((name, 1)),
            }
        }
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|(name, count)| format!("{count}x {name}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" + "))
}

/// The core an Arm Ltd `CPU part` number names.
fn arm_part(part: &str) -> Option<&'static str> {
    Some(match part.to_ascii_lowercase().as_str() {
        "0xd03" => "Cortex-A53",
        "0xd05" => "Cortex-A55",
        "0xd07" => "Cortex-A57",
        "0xd08" => "Cortex-A72",
        "0xd0b" => "Cortex-A76",
        "0xd0c" => "Neoverse-N1",
        "0xd41" => "Cortex-A78",
        "0xd46" => "Cortex-A510",
        "0xd47" => "Cortex-A710",
        "0xd4f" => "Neoverse-V2",
        _ => return None,
    })
}

impl Diagnosis {
    /// The diagnosis as tests, as KTAP and LAVA report them: one per check,
    /// named as LAVA keeps it (`kernel_config`, `canary_kmemleak`). Ok and
    /// warn pass, fail fails with what was found, skip is a SKIP; a canary
    /// counts the objects its detector found for the leaky run.
    pub fn tests(&self) -> Vec<Case> {
        self.checks
            .iter()
            .map(|c| {
                let case = match c.status {
                    Status::Ok | Status::Warn => Case::new(true, ktap::name(&c.name), None),
                    Status::Fail => Case::new(false, ktap::name(&c.name), Some(c.detail.clone())),
                    Status::Skip => Case::new(
                        true,
                        ktap::name(&c.name),
                        Some(format!("SKIP {}", c.detail)),
                    ),
                };
                let canary = self
                    .canaries
                    .iter()
                    .find(|k| c.name == format!("canary ({})", k.detector));
                match canary {
                    Some(k) => case.counting(k.found_leaky),
                    None => case,
                }
            })
            .collect()
    }
}

impl Outcome for Diagnosis {
    fn verdict(&self) -> Verdict {
        Verdict::of(self.ok)
    }

    /// KTAP: [`Diagnosis::tests`].
    fn ktap(&self) -> Option<String> {
        Some(ktap::document(
            &format!("leaklab doctor on {}", self.kernel),
            &self.tests(),
        ))
    }

    /// The human report: a header, a line per check (and its fix), a verdict.
    fn human(&self) -> String {
        let mut out = format!(
            "leaklab doctor: kernel {} on {}{}{}, {} MiB\n",
            self.kernel,
            self.machine,
            self.board
                .as_deref()
                .map_or(String::new(), |b| format!(", {b}")),
            self.cpu
                .as_deref()
                .map_or(String::new(), |c| format!(", {c}")),
            self.memory_mib
        );
        for check in &self.checks {
            let status = match check.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            out += &format!("  {status:<5} {:<14} {}\n", check.name, check.detail);
            if let Some(fix) = &check.fix {
                out += &format!("  {:<5} {:<14} fix: {fix}\n", "", "");
            }
        }
        out += &format!("note: {}\n", super::check::LAB_HELP);
        out
    }

    fn summary(&self) -> String {
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        if failed == 0 {
            "ok: leaklab can show leaks on this machine".into()
        } else {
            format!("FAIL: {failed} check(s) failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_diagnosis_reads_as_ktap() {
        let check = |name: &str, status, detail: &str| Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: None,
        };
        let d = Diagnosis {
            schema: "leaklab.doctor/1".into(),
            kernel: "6.12".into(),
            machine: "x86_64".into(),
            board: None,
            cpu: None,
            memory_mib: 488,
            scan_seconds: None,
            checks: vec![
                check("kernel config", Status::Ok, "all set"),
                check("debugfs", Status::Warn, "was not mounted: mounted it"),
                check("kmemleak", Status::Fail, "kmemleak is disabled"),
                check("canary (kmemleak)", Status::Skip, "kmemleak failed"),
                check("canary (trace)", Status::Ok, "seen"),
            ],
            canary: None,
            canaries: vec![Canary {
                detector: "trace".into(),
                pattern: "error_path".into(),
                expected: 1,
                found_leaky: 1,
                found_fixed: 0,
                culprit_line: None,
                seconds: 1.0,
            }],
            ok: false,
        };
        assert_eq!(
            d.ktap().unwrap(),
            "KTAP version 1\n# leaklab doctor on 6.12\n1..5\n\
             ok 1 kernel_config\n\
             ok 2 debugfs\n\
             not ok 3 kmemleak # kmemleak is disabled\n\
             ok 4 canary_kmemleak # SKIP kmemleak failed\n\
             ok 5 canary_trace\n\
             # Totals: pass:3 fail:1 xfail:0 xpass:0 skip:1 error:0\n"
        );
        let counted: Vec<Option<u64>> = d.tests().iter().map(|t| t.objects).collect();
        assert_eq!(counted, [None, None, None, None, Some(1)]);
    }
}
