// SPDX-License-Identifier: GPL-2.0
//! The LKFT way, run by leaklab on the same machines to set a sweep
//! against (`--protocol lkft`): Linaro's test-definitions
//! `automated/linux/modules/modules.sh`. For each module: kmemleak's
//! `clear`, the cycles of load and unload, one `scan` and 3 s, and the
//! reports then in kmemleak's file, whoever made them; without kmemleak,
//! MemAvailable before and after the cycles, a fall beyond 512 KiB called a
//! leak. Nothing is attributed to the module, and nothing is confirmed.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    needs::{ready, release, Ready},
    plan::Plan,
};
use crate::{
    kernel::{
        kmod::LoadedModule,
        modtree::{ModTree, TreeModule},
        module::Ko,
        procfs::MemInfo,
    },
    kmemleak::{report, Kmemleak},
    pipeline::check::UNLOAD_PATIENCE,
    report::sweep::{Row, Status, SweepLeak},
};

/// LKFT's tolerance of MemAvailable's fall over a module's cycles, KiB.
pub const TOLERANCE_KIB: i64 = 512;

/// What LKFT waits after its scan.
const SETTLE: Duration = Duration::from_secs(3);

/// The row of module `m`, the LKFT way.
pub fn one(tree: &ModTree, m: &TreeModule, plan: &Plan) -> Result<Row> {
    let start = Instant::now();
    let needed = match ready(tree, m) {
        Ready::Done(row) => return Ok(row),
        Ready::Needs(n) => n,
    };
    let kmemleak = Kmemleak::open().ok();
    if let Some(k) = &kmemleak {
        k.clear()?;
    }
    let before = MemInfo::read()?.mem_available;
    let ko = Ko::open(&tree.dir.join(&m.path))?;
    // What stopped the cycles: a load that failed, or an unload.
    let mut stopped = None;
    for _ in 0..plan.cycles {
        match LoadedModule::load(&ko) {
            Ok(mut l) => {
                if let Err(e) = l.unload_within(UNLOAD_PATIENCE) {
                    stopped = Some((Status::Stuck, format!("{e:#}")));
                    break;
                }
            }
            Err(e) => {
                stopped = Some((Status::DidNotLoad, format!("{e:#}")));
                break;
            }
        }
    }
    let reports = match &kmemleak {
        Some(k) => {
            k.scan()?;
            thread::sleep(SETTLE);
            Some(report::parse(&k.read()?).len() as u64)
        }
        None => {
            thread::sleep(SETTLE);
            None
        }
    };
    let fell = before - MemInfo::read()?.mem_available;
    let mut row = Row::without_check(&m.name, &m.path, Status::Clean, String::new());
    row.detail = None;
    match (stopped, reports) {
        (Some((status, why)), _) => {
            row.status = status;
            row.detail = Some(why);
        }
        (None, Some(n)) if n > 0 => {
            row.status = Status::Leaked;
            row.objects = n;
            row.detail = Some(format!("kmemleak reported {n} object(s) after its cycles"));
        }
        (None, None) if fell > TOLERANCE_KIB => {
            row.status = Status::Leaked;
            row.bytes = u64::try_from(fell).unwrap_or(0).saturating_mul(1024);
            row.leaks.push(SweepLeak {
                title: Some("MemAvailable fell".into()),
                culprit: None,
                line: None,
                objects: 0,
                bytes: row.bytes,
                frames: Vec::new(),
                reason: None,
            });
            row.detail = Some(format!(
                "MemAvailable fell {fell} KiB over its cycles (LKFT's tolerance: {TOLERANCE_KIB} KiB)"
            ));
        }
        _ => {}
    }
    row.seconds = start.elapsed().as_secs_f64();
    release(needed, &mut row);
    Ok(row)
}
