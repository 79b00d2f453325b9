// SPDX-License-Identifier: GPL-2.0
//! A sweep of the running kernel's modules, one after the other: each
//! module's needs loaded first (and unloaded after, last first), the module
//! checked in cycles, a row for it; the sweep stops at a module that
//! oopsed the kernel (a machine in that state proves nothing more).

use std::{io::Write, time::Instant};

use anyhow::Result;

use super::{
    lkft,
    needs::{ready, release, Ready},
    plan::{Plan, Protocol},
};
use crate::{
    kernel::{
        interrupt,
        modtree::{ModTree, TreeModule},
        procfs::kernel_release,
    },
    kmemleak::Kmemleak,
    output::schema::Schema,
    pipeline::{
        check,
        detectors::{Detector, Detectors},
    },
    report::sweep::{Line, Row, Status, Sweep},
};

/// The taint flag of an oops (`TAINT_DIE`, bit 7 of
/// `/proc/sys/kernel/tainted`).
const OOPS: u64 = 1 << 7;

/// The kernel's taint flags now (0 where they cannot be read).
fn tainted() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/tainted")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Sweeps the modules of the plan's tree on the running kernel.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Sweep> {
    let (tree, modules) = plan.selected(&plan.tree_dir())?;
    let detectors = match plan.protocol {
        Protocol::Leaklab => Detectors::resolve(&plan.detectors)?.chosen(),
        // LKFT's test reads kmemleak where the kernel has it, else
        // MemAvailable.
        Protocol::Lkft => match Kmemleak::open() {
            Ok(_) => vec![Detector::Kmemleak],
            Err(_) => Vec::new(),
        },
    };
    let start = Instant::now();
    let stream = |line: &Line| -> Result<()> {
        if plan.stream {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string(line)?)?;
            out.flush()?;
        }
        Ok(())
    };
    stream(&Line::Start {
        kernel: kernel_release(),
        detectors: detectors.clone(),
    })?;
    let mut rows = Vec::new();
    for (i, m) in modules.iter().enumerate() {
        interrupt::check()?;
        progress(&format!("sweep: {}/{}: {}", i + 1, modules.len(), m.name));
        let before = tainted();
        let mut row = match plan.protocol {
            Protocol::Leaklab => one(&tree, m, plan)?,
            Protocol::Lkft => lkft::one(&tree, m, plan)?,
        };
        let after = tainted();
        let oopsed = after & OOPS != 0 && before & OOPS == 0;
        if oopsed {
            row.status = Status::Crashed;
            row.detail = Some(format!(
                "the kernel oopsed (taint {before:#x} -> {after:#x}): the sweep stops here"
            ));
        } else if after != before {
            let note = format!("it tainted the kernel ({before:#x} -> {after:#x})");
            row.detail = Some(match row.detail.take() {
                Some(d) => format!("{d}; {note}"),
                None => note,
            });
        }
        stream(&Line::Row(row.clone()))?;
        rows.push(row);
        if oopsed {
            break;
        }
    }
    Ok(Sweep {
        schema: Schema::Sweep.name().into(),
        kernel: kernel_release(),
        cycles: plan.cycles,
        protocol: plan.protocol.name().into(),
        detectors,
        rows,
        jobs: 1,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The row of module `m`: skipped, did not load (it or what it needs), or
/// its check's.
fn one(tree: &ModTree, m: &TreeModule, plan: &Plan) -> Result<Row> {
    let start = Instant::now();
    let needed = match ready(tree, m) {
        Ready::Done(row) => return Ok(row),
        Ready::Needs(n) => n,
    };
    let checked = check::run(
        &check::Plan {
            module: tree.dir.join(&m.path),
            cycles: plan.cycles,
            params: plan.params_of(&m.name),
            exercise: Vec::new(),
            keep_loaded: false,
            detectors: plan.detectors.clone(),
        },
        &mut |_| {},
    );
    let seconds = start.elapsed().as_secs_f64();
    let mut row = match checked {
        Ok(c) => Row::of_check(&m.path, &c, seconds),
        Err(e) if interrupt::requested().is_some() => return Err(e),
        Err(e) => {
            let mut r = Row::without_check(&m.name, &m.path, Status::DidNotLoad, format!("{e:#}"));
            r.seconds = seconds;
            r
        }
    };
    release(needed, &mut row);
    Ok(row)
}
