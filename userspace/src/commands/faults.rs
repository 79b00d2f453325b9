// SPDX-License-Identifier: GPL-2.0
//! `leaklab faults`: the samples under memory pressure and failing
//! allocations, in one kmemleak window.
//!
//! 1. Every allocation of every sample fails once: the thread's `fail-nth`
//!    (fault injection, CONFIG_FAILSLAB and CONFIG_FAIL_PAGE_ALLOC) is set
//!    to 1, 2, 3, ... before one run, until a run gets past all its
//!    allocations. Each failure must come back as an error or be absorbed,
//!    never as a crash; the fixed variants must leak nothing on any path.
//! 2. The leak cap (set to 1 MiB): leaky runs of every pattern, round
//!    after round, until the module refuses them all with ENOSPC; the bytes
//!    leaked stay within the cap, and refused runs leak nothing.
//!
//! Afterwards the kernel log must hold no BUG, WARNING or Oops that a leaky
//! sample does not explain, and kmemleak must report nothing outside the
//! leaky samples. Run it in a small guest (`leaklab vm --memory 128`).

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::Path,
};

use crate::{
    kernel::module::Ko,
    kmemleak::Kmemleak,
    ko::{Control, Variant},
    output::schema::Schema,
    pipeline::session::Session,
    report::faults::{FaultRun, Injection},
};
use anyhow::{Context, Result};

/// The leak cap the run fills, in bytes.
const FILL_CAP: u64 = 1 << 20;

/// Allocation points tried per sample run, at most.
const MAX_POINTS: u32 = 200;

/// Sweeps of a sample's points, at most, until one of its runs fails.
const MAX_SWEEPS: u32 = 4;

/// The calling thread's `fail-nth`: the N-th fault-injection point it
/// reaches from now on fails. Opened once, read and written in place, so
/// that opening it costs no allocation that would count.
struct FailNth(fs::File);

impl FailNth {
    const PATH: &'static str = "/proc/thread-self/fail-nth";

    fn open() -> Result<Self> {
        Ok(Self(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(Self::PATH)
                .with_context(|| format!("opening {} (CONFIG_FAULT_INJECTION)", Self::PATH))?,
        ))
    }

    fn set(&self, n: u32) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.0
            .write_at(n.to_string().as_bytes(), 0)
            .with_context(|| format!("writing {}", Self::PATH))?;
        Ok(())
    }

    /// What is left of the count: 0 once the failure fired.
    fn left(&self) -> Result<u32> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 16];
        let n = self
            .0
            .read_at(&mut buf, 0)
            .with_context(|| format!("reading {}", Self::PATH))?;
        String::from_utf8_lossy(&buf[..n])
            .trim()
            .parse()
            .with_context(|| format!("{}: not a number", Self::PATH))
    }
}

impl Drop for FailNth {
    /// No failure left pending for whatever the thread does next.
    fn drop(&mut self) {
        let _ = self.set(0);
    }
}

/// Writes `value` to the control file `file` once, with the N-th
/// allocation after the file is open failing (`nth`; 0: none); returns the
/// write's outcome and whether the injected failure fired.
fn write_failing(
    file: &Path,
    value: &[u8],
    nth: u32,
    fail: &FailNth,
) -> Result<(std::io::Result<()>, bool)> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    if nth == 0 {
        return Ok((f.write(value).map(|_| ()), false));
    }
    fail.set(nth)?;
    let result = f.write(value).map(|_| ());
    let fired = fail.left()? == 0;
    if !fired {
        fail.set(0)?;
    }
    Ok((result, fired))
}

/// A fault-injection knob (e.g. `failslab/verbose`) set for the run and
/// put back as it was when dropped.
struct Knob {
    path: std::path::PathBuf,
    old: String,
}

impl Knob {
    fn set(knob: &str, value: &str) -> Result<Self> {
        let path = Path::new(crate::kmemleak::DEBUGFS).join(knob);
        let need = "the kernel needs CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and CONFIG_FAULT_INJECTION_DEBUG_FS";
        let old = fs::read_to_string(&path)
            .with_context(|| format!("reading {} ({need})", path.display()))?;
        fs::write(&path, value).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { path, old })
    }
}

impl Drop for Knob {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, self.old.trim());
    }
}

/// Runs of `pattern`'s `variant` the module counted as failed.
fn failed(ctl: &Control, pattern: &str, variant: Variant) -> Result<u64> {
    Ok(ctl
        .stats()?
        .iter()
        .find(|s| s.pattern == pattern && s.variant == variant)
        .map_or(0, |s| s.failed))
}

/// Runs every sample's variants with each allocation failing in turn. A
/// write to a control file succeeds whether the run did or not (the module
/// counts failed runs in `stats`); a refused write is an error here.
fn inject(ctl: &Control, ctl_dir: &Path, patterns: &[String]) -> Result<Vec<Injection>> {
    let fail = FailNth::open()?;
    let mut out = Vec::new();
    for variant in [Variant::Fixed, Variant::Leaky] {
        for p in patterns {
            crate::kernel::interrupt::check()?;
            let file = ctl_dir.join("patterns").join(p).join(variant.name());
            let mut inj = Injection {
                pattern: p.clone(),
                variant: variant.name().into(),
                points: 0,
                sweeps: 0,
                errors: 0,
                errnos: Vec::new(),
                failed_runs: 0,
                complete: false,
            };
            let failed_before = failed(ctl, p, variant)?;
            while inj.errors == 0 && inj.sweeps < MAX_SWEEPS {
                inj.sweeps += 1;
                inj.complete = false;
                let mut points = 0;
                for nth in 1..=MAX_POINTS {
                    let (result, fired) = write_failing(&file, b"1\n", nth, &fail)?;
                    match (result, fired) {
                        (Ok(()), false) => {
                            inj.complete = true;
                            break;
                        }
                        (Err(e), false) => {
                            return Err(e).with_context(|| {
                                format!("{p} {}: a run with no failure injected", variant.name())
                            })
                        }
                        (Ok(()), true) => points += 1,
                        (Err(e), true) => {
                            points += 1;
                            inj.errors += 1;
                            let name = format!(
                                "{:?}",
                                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
                            );
                            if !inj.errnos.contains(&name) {
                                inj.errnos.push(name);
                            }
                        }
                    }
                }
                inj.points = inj.points.max(points);
                if !inj.complete {
                    break;
                }
            }
            // A counter that went back (a reload in between) is not a count.
            inj.failed_runs = failed(ctl, p, variant)?.saturating_sub(failed_before);
            out.push(inj);
        }
    }
    Ok(out)
}

/// Leaky runs of every pattern, round after round, until all are refused;
/// returns the runs made and whether the cap then held.
fn fill_to_cap(ctl: &Control, ctl_dir: &Path, patterns: &[String]) -> Result<(u64, bool)> {
    let fail = FailNth::open()?;
    let leaked = || ctl.leak_cap().map(|(_, leaked)| leaked);
    let mut runs = 0;
    // Sixteen runs a write while they fit, then one at a time.
    for batch in [16u64, 1] {
        let mut open: Vec<&String> = patterns.iter().collect();
        while !open.is_empty() {
            crate::kernel::interrupt::check()?;
            let mut still = Vec::new();
            for p in open {
                let file = ctl_dir.join("patterns").join(p).join("leaky");
                match write_failing(&file, format!("{batch}\n").as_bytes(), 0, &fail)?.0 {
                    Ok(()) => {
                        runs += batch;
                        still.push(p);
                    }
                    Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => {}
                    Err(e) => return Err(e).with_context(|| format!("leaky run of {p}")),
                }
            }
            open = still;
        }
    }
    // Full: one more run of each must be refused and leak nothing.
    let before = leaked()?;
    let refused = patterns.iter().all(|p| {
        let file = ctl_dir.join("patterns").join(p).join("leaky");
        matches!(write_failing(&file, b"1\n", 0, &fail), Ok((Err(e), _)) if e.raw_os_error() == Some(nix::libc::ENOSPC))
    });
    Ok((runs, refused && leaked()? == before))
}

/// Runs it all in one window and judges.
pub fn run(module: &Path, progress: &mut dyn FnMut(&str)) -> Result<FaultRun> {
    let kmemleak = Kmemleak::open()?;
    // The injected failures' own reports would flood the log; and by
    // default failslab and fail_page_alloc spare allocations that may sleep
    // (GFP_KERNEL: nearly all a driver makes) and order-0 pages.
    let _knobs = [
        Knob::set("failslab/verbose", "0")?,
        Knob::set("fail_page_alloc/verbose", "0")?,
        Knob::set("failslab/ignore-gfp-wait", "N")?,
        Knob::set("fail_page_alloc/ignore-gfp-wait", "N")?,
        Knob::set("fail_page_alloc/min-order", "0")?,
    ];
    let session = Session::open(&kmemleak, &Ko::open(module)?)?;
    let ctl = Control::open()?;
    let dir = Path::new(crate::ko::DIR);
    let patterns: Vec<String> = ctl.patterns()?.into_iter().map(|p| p.name).collect();
    progress("failing each allocation of each sample in turn");
    let injected = inject(&ctl, dir, &patterns)?;
    progress("leaky runs up to the leak cap");
    // A cap that fills with thousands of objects, not tens of thousands:
    // kmemleak's report of every one is read back, in a small guest.
    ctl.set_cap(FILL_CAP)?;
    let (leaky_runs, cap_held) = fill_to_cap(&ctl, dir, &patterns)?;
    let (cap_bytes, leaked_bytes) = ctl.leak_cap()?;
    drop(ctl);
    let judgement = session.finish(&patterns, progress)?;
    let memory_mib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| crate::kernel::procfs::meminfo_field(&m, "MemTotal:"))
        .unwrap_or(0)
        / 1024;
    let ok = cap_held
        && leaked_bytes <= cap_bytes
        && injected
            .iter()
            .all(|i| i.complete && i.points > 0 && i.errors == i.failed_runs)
        && judgement.clean();
    Ok(FaultRun {
        schema: Schema::Faults.name().into(),
        memory_mib,
        injected,
        cap_bytes,
        leaked_bytes,
        leaky_runs,
        cap_held,
        judgement,
        ok,
    })
}
