//! The cycles of a check: each load (placed by the init probe, or by
//! sysfs while it runs), the exercise scripts, the unload, and the trace's
//! harvest tied to the cycle that made each allocation.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use crate::{
    analysis::symbolize::Symbolizer,
    kernel::{
        initprobe::InitProbe,
        kmod::{self, init_error, LoadError, LoadedModule},
        module::{Ko, ModuleLayout},
        thread::{in_fresh_thread, pid_mark, PidMarks},
    },
    kmemleak::report::Report,
    pipeline::harvest,
    report::check::CycleRecord,
    trace::{tracer::Tracer, vmalloc::Loads},
};
use anyhow::{bail, Context, Result};

use super::plan::{Plan, UNLOAD_PATIENCE};

/// What the cycles left to judge.
pub(super) struct Cycles {
    pub(super) records: Vec<CycleRecord>,
    pub(super) marks: PidMarks,
    /// Per cycle, the loading thread of the layout its frames resolve with.
    pub(super) resolver: Vec<Option<u32>>,
    /// Loading threads of inits that failed.
    pub(super) failed_inits: Vec<u32>,
    pub(super) sym: Symbolizer,
    /// The module, when it is still loaded (`--keep-loaded`, or stuck).
    pub(super) still_loaded: Option<LoadedModule>,
    pub(super) youngest: Instant,
    /// With the trace: each load's vmalloc areas before it and before its
    /// unload.
    pub(super) vmalloc: Option<Loads>,
    /// Cycles whose failed init left the trace unable to tell the module's
    /// allocations, and why.
    pub(super) undecided: Vec<String>,
}

/// What the trace holds of the module once it is gone (deferred frees
/// settled): its allocations, each with the cycle it came in (by the
/// cycles' marks in the trace: a kworker's or a timer's allocation counts
/// in the cycle that made it), and the vmalloc areas its loads left.
pub(super) fn harvest_trace(
    tracer: Tracer,
    c: &Cycles,
    progress: &mut dyn FnMut(&str),
) -> Result<TraceFound> {
    let h = harvest::harvest_trace(tracer, &c.sym, progress)?;
    let starts: Vec<u64> = (1..)
        .map_while(|n| {
            let mark = cycle_mark(n);
            h.markers
                .iter()
                .find(|(m, _)| *m == mark)
                .map(|(_, at)| *at)
        })
        .collect();
    let mut reports: Vec<(Report, Option<u32>)> = h
        .reports
        .into_iter()
        .map(|held| {
            let cycle = starts.partition_point(|&at| at < held.seq) as u32;
            (held.report, (cycle > 0).then_some(cycle))
        })
        .collect();
    if let Some(loads) = &c.vmalloc {
        reports.extend(loads.left()?.into_iter().map(|r| (r, None)));
    }
    Ok((reports, h.events, h.lost))
}

/// What the trace found: the module's allocations, each with its cycle
/// where the marks tell it, the events read and the events lost.
pub(super) type TraceFound = (Vec<(Report, Option<u32>)>, u64, u64);

/// The trace mark at the start of cycle `n`.
pub(super) fn cycle_mark(n: u32) -> String {
    format!("leaklab-cycle-{n}")
}

/// Loads, exercises and unloads the module `plan.cycles` times, marking
/// each cycle's start in `tracer`'s trace. With `vmallocinfo`, notes the
/// vmalloc areas of each load.
pub(super) fn run_cycles(
    plan: &Plan,
    ko: &Ko,
    tracer: Option<&Tracer>,
    probe: &Result<InitProbe>,
    vmallocinfo: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Cycles> {
    let params = plan.params.join(" ");
    let mut c = Cycles {
        vmalloc: vmallocinfo.then(Loads::default),
        records: Vec::new(),
        marks: PidMarks::default(),
        resolver: Vec::new(),
        failed_inits: Vec::new(),
        sym: Symbolizer::default(),
        still_loaded: None,
        youngest: Instant::now(),
        undecided: Vec::new(),
    };
    let (probe, no_probe) = (probe.as_ref().ok(), probe.as_ref().err());
    let mut layouts: Vec<ModuleLayout> = Vec::new();
    for n in 1..=plan.cycles {
        crate::kernel::interrupt::check()?;
        progress(&format!(
            "cycle {n} of {}: loading {}",
            plan.cycles,
            ko.name()
        ));
        if let Some(t) = tracer {
            t.mark(&cycle_mark(n))?;
        }
        let vmalloc_before = match c.vmalloc {
            Some(_) => Loads::before_load()?,
            None => Vec::new(),
        };
        let mut attempt = LoadedModule::attempt(ko, &params, probe);
        c.marks.push(attempt.loader);
        let mut record = CycleRecord {
            cycle: n,
            loaded: false,
            init_error: None,
            exercise: Vec::new(),
            unloaded: None,
            unload_error: None,
            leaked: 0,
        };
        let layout = placed(&mut c, n, ko, &mut attempt, no_probe)?;
        let resolver = match layout {
            Some(l) => Some(c.resolver_of(l, &mut layouts, ko, attempt.loader)?),
            None => None,
        };
        c.resolver.push(resolver);
        let mut module = match attempt.result {
            Ok(m) => m,
            Err(LoadError::Init(e)) => {
                record.init_error = Some(init_error(e));
                c.failed_inits.push(attempt.loader);
                c.records.push(record);
                c.youngest = Instant::now();
                continue;
            }
            Err(LoadError::Refused(e)) => return Err(e),
        };
        record.loaded = true;
        crate::kernel::undo::failpoint("check-loaded");
        record.exercise = exercise_all(plan, ko, n, progress)?;
        if plan.keep_loaded && n == plan.cycles {
            if let Some(v) = &mut c.vmalloc {
                v.before_unload(ko.name(), vmalloc_before)?;
            }
            record.unloaded = Some(true);
            c.records.push(record);
            c.youngest = Instant::now();
            c.still_loaded = Some(module);
            break;
        }
        if let Some(v) = &mut c.vmalloc {
            v.before_unload(ko.name(), vmalloc_before)?;
        }
        progress(&format!("cycle {n} of {}: unloading", plan.cycles));
        let unloaded = in_fresh_thread(|| module.unload_within(UNLOAD_PATIENCE));
        c.youngest = Instant::now();
        record.unloaded = Some(unloaded.is_ok());
        record.unload_error = unloaded.err().map(|e| format!("{e:#}"));
        let stuck = record.unloaded == Some(false);
        c.records.push(record);
        if stuck {
            // It cannot be loaded again: the run ends here, judged as it is.
            c.still_loaded = Some(module);
            break;
        }
    }
    c.marks.push(pid_mark()?);
    Ok(c)
}

/// Where cycle `n`'s load put the module's code: the loaded module's
/// sections, or what the load recorded of an init that failed. A failed
/// init that could not be placed is noted in `c.undecided` (why: the
/// attempt's reason, and the probe's where there was none).
pub(super) fn placed(
    c: &mut Cycles,
    n: u32,
    ko: &Ko,
    attempt: &mut kmod::Attempt,
    no_probe: Option<&anyhow::Error>,
) -> Result<Option<ModuleLayout>> {
    Ok(match (&attempt.result, attempt.layout.take()) {
        (Ok(m), _) => Some(m.layout(ko)?),
        (Err(LoadError::Init(_)), Some(seen)) => Some(seen),
        (Err(LoadError::Init(_)), None) => {
            let why = match (&attempt.unknown, no_probe) {
                (Some(why), Some(p)) => format!("{why}; the probe: {p:#}"),
                (Some(why), None) => why.clone(),
                (None, _) => "the probe saw no init run".to_string(),
            };
            c.undecided.push(format!(
                "cycle {n}: its init failed and where it was loaded is unknown ({why})"
            ));
            None
        }
        (Err(LoadError::Refused(_)), _) => None,
    })
}

impl Cycles {
    /// The loading thread whose layout frames of `layout` (loaded by
    /// `loader`) resolve with: an earlier cycle's when the module landed
    /// at the same addresses, else this one's, added to the symbolizer.
    fn resolver_of(
        &mut self,
        layout: ModuleLayout,
        layouts: &mut Vec<ModuleLayout>,
        ko: &Ko,
        loader: u32,
    ) -> Result<u32> {
        if let Some(same) = layouts.iter().find(|p| p.sections == layout.sections) {
            return Ok(same.loader.unwrap_or(loader));
        }
        self.sym.add(&layout, ko)?;
        layouts.push(layout);
        Ok(loader)
    }
}

/// Runs cycle `n`'s exercise scripts in order; their statuses, or an error
/// at the first that fails.
fn exercise_all(plan: &Plan, ko: &Ko, n: u32, progress: &mut dyn FnMut(&str)) -> Result<Vec<i32>> {
    let mut statuses = Vec::new();
    for script in &plan.exercise {
        progress(&format!(
            "cycle {n} of {}: running {}",
            plan.cycles,
            script.display()
        ));
        let status = exercise(script, ko.name(), n)?;
        statuses.push(status);
        if status != 0 {
            bail!(
                "exercise script {} exited with status {status} in cycle {n} (its output is above): fix it, or check that it runs with sh",
                script.display()
            );
        }
    }
    Ok(statuses)
}

/// Runs one exercise script with `sh`, its output on stderr; its status
/// (128 + the signal when a signal ended it).
pub(super) fn exercise(script: &Path, module: &str, cycle: u32) -> Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    let status = Command::new("sh")
        .arg(script)
        .env("LEAKLAB_MODULE", module)
        .env("LEAKLAB_CYCLE", cycle.to_string())
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .with_context(|| {
            format!(
                "running sh {}: no shell here? (leaklab vm puts busybox's in the guest)",
                script.display()
            )
        })?;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}
