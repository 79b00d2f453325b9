// SPDX-License-Identifier: GPL-2.0
//! The cycles of a check in a [`Run`]: each load (placed by the init
//! probe, or by sysfs while it runs), the exercise scripts, the unload;
//! and the trace's harvest tied to the cycle that made each allocation.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use crate::{
    kernel::{
        kmod::init_error,
        module::Ko,
        thread::{pid_mark, PidMarks},
    },
    kmemleak::report::Report,
    pipeline::{
        harvest::TraceHarvest,
        run::{Loaded, Run},
    },
    report::check::CycleRecord,
};
use anyhow::{bail, Context, Result};

use super::plan::{Plan, UNLOAD_PATIENCE};

/// What the cycles left to judge.
pub(super) struct Cycles {
    pub(super) records: Vec<CycleRecord>,
    pub(super) marks: PidMarks,
    /// Per cycle, the loading thread its frames resolve by, when where the
    /// module was is known.
    pub(super) resolver: Vec<Option<u32>>,
    /// Loading threads of inits that failed.
    pub(super) failed_inits: Vec<u32>,
    /// The module, when it is still loaded (`--keep-loaded`, or stuck).
    pub(super) still_loaded: Option<Loaded>,
    pub(super) youngest: Instant,
    /// Cycles whose failed init left the trace unable to tell the module's
    /// allocations, and why.
    pub(super) undecided: Vec<String>,
}

/// The module's allocations the trace holds once it is gone, each with the
/// cycle it came in (by the cycles' marks in the trace: a kworker's or a
/// timer's allocation counts in the cycle that made it), then the vmalloc
/// areas its loads left (their cycle unknown).
pub(super) fn by_cycle(h: &TraceHarvest) -> Vec<(&Report, Option<u32>)> {
    let starts: Vec<u64> = (1..)
        .map_while(|n| {
            let mark = cycle_mark(n);
            h.markers
                .iter()
                .find(|(m, _)| *m == mark)
                .map(|(_, at)| *at)
        })
        .collect();
    h.reports
        .iter()
        .map(|held| {
            let cycle = starts.partition_point(|&at| at < held.seq) as u32;
            (&held.report, (cycle > 0).then_some(cycle))
        })
        .chain(h.vmalloc.iter().map(|r| (r, None)))
        .collect()
}

/// The trace mark at the start of cycle `n`.
pub(super) fn cycle_mark(n: u32) -> String {
    format!("leaklab-cycle-{n}")
}

/// Loads, exercises and unloads the module `plan.cycles` times in `run`,
/// marking each cycle's start in its trace.
pub(super) fn run_cycles(
    plan: &Plan,
    ko: &Ko,
    run: &mut Run,
    progress: &mut dyn FnMut(&str),
) -> Result<Cycles> {
    let params = plan.params.join(" ");
    let mut c = Cycles {
        records: Vec::new(),
        marks: PidMarks::default(),
        resolver: Vec::new(),
        failed_inits: Vec::new(),
        still_loaded: None,
        youngest: Instant::now(),
        undecided: Vec::new(),
    };
    for n in 1..=plan.cycles {
        crate::kernel::interrupt::check()?;
        progress(&format!(
            "cycle {n} of {}: loading {}",
            plan.cycles,
            ko.name()
        ));
        run.mark(&cycle_mark(n))?;
        let attempt = run.attempt(ko, &params)?;
        c.marks.push(attempt.loader);
        c.resolver.push(attempt.placed.then_some(attempt.loader));
        if let Some(why) = attempt.unplaced {
            c.undecided.push(format!(
                "cycle {n}: its init failed and where it was loaded is unknown ({why})"
            ));
        }
        let mut record = CycleRecord {
            cycle: n,
            loaded: false,
            init_error: None,
            exercise: Vec::new(),
            unloaded: None,
            unload_error: None,
            leaked: 0,
        };
        let mut module = match attempt.result {
            Ok(m) => m,
            Err(e) => {
                record.init_error = Some(init_error(e));
                c.failed_inits.push(attempt.loader);
                c.records.push(record);
                c.youngest = Instant::now();
                continue;
            }
        };
        record.loaded = true;
        crate::kernel::undo::failpoint("check-loaded");
        record.exercise = exercise_all(plan, ko, n, progress)?;
        if plan.keep_loaded && n == plan.cycles {
            run.unloading(&mut module)?;
            record.unloaded = Some(true);
            c.records.push(record);
            c.youngest = Instant::now();
            c.still_loaded = Some(module);
            break;
        }
        progress(&format!("cycle {n} of {}: unloading", plan.cycles));
        let unloaded = run.unload_within(&mut module, UNLOAD_PATIENCE);
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
