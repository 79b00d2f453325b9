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
use crate::{
    kernel::procfs::kernel_release,
    output::{
        ktap::{self, Case},
        schema::Schema,
        Outcome, Verdict,
    },
    trace::allocinfo,
};

mod canary;
mod checks;
mod machine;
mod options;
mod report;

use canary::run_canary;
use checks::{
    check_cmdline, check_config, check_debugfs, check_kmemleak, check_memory, check_module,
};
use machine::{board, cpu};
pub use options::Options;
use report::{canary_check, Checks};
pub use report::{Diagnosis, Status};

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
    let module = check_module(&mut c, &opts.module.path());
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
                    .find(|k| c.name == canary_check(k.detector));
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
        out += &format!("note: {}\n", crate::ko::LAB_HELP);
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
    use super::{
        checks::config_has,
        machine::cpu_summary,
        report::{Canary, Check},
        *,
    };

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
                detector: Detector::Trace,
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
