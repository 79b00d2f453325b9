// SPDX-License-Identifier: GPL-2.0
//! The first main job: load and unload modules, let kmemleak look, and count
//! the unreferenced objects each module left behind.
//!
//! Each module is loaded, its section addresses and debugfs entries are
//! recorded, and it is unloaded. Then kmemleak scans: once at once (so every
//! new object gets its first checksum), and again once the youngest
//! allocation is older than kmemleak's minimum age, repeating until two scans
//! in a row report the same set. Reports are attributed to a module by their
//! frames: a `[module]` tag, or a bare address inside a recorded section;
//! and to one load of it (a module may be given more than once) by the
//! allocating task ([`load_of`]).
//!
//! The verdict fails when a module leaked (objects attributed to it), or
//! did not load or unload; it is inconclusive when kmemleak's set did not
//! settle.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use crate::{
    kernel::{
        module::{Ko, ModuleLayout},
        procfs::kernel_release,
        thread::{in_fresh_thread, pid_mark, PidMarks},
    },
    kmemleak::{
        report::{self, Report},
        window::Window,
        Kmemleak, DEBUGFS,
    },
    output::schema::Schema,
    pipeline::run::Run,
    report::census::{Census, DebugfsFile, LeakCount, ModuleResult},
    vm::initramfs::{modules_in, MODULE_DIR},
};
use anyhow::Result;

/// Loads and unloads each of `modules` (none: every module in the guest's
/// module directory), then counts kmemleak's reports per module: harvested
/// with the scan protocol, or `naive`ly (`clear`, the work, `scan` twice,
/// read), as a baseline to measure the protocol against.
pub fn run(modules: Vec<PathBuf>, naive: bool) -> Result<Census> {
    let modules = if modules.is_empty() {
        modules_in(Path::new(MODULE_DIR))?
    } else {
        modules
    };
    anyhow::ensure!(
        !modules.is_empty(),
        "no modules given and none in {MODULE_DIR}: name the .ko files to load"
    );
    let kmemleak = Kmemleak::open()?;
    // Flush what boot left behind, so the count starts from here.
    let window = if naive {
        kmemleak.clear()?;
        None
    } else {
        Some(Window::open(&kmemleak)?)
    };
    let mut run = Run::new(window, None)?;

    let mut results = Vec::new();
    let mut loads = Vec::new();
    let mut last_load = Instant::now();
    for path in &modules {
        let mut load = Load::default();
        let mut m = ModuleResult {
            path: path.clone(),
            name: None,
            loaded: false,
            unloaded: false,
            debugfs: BTreeMap::new(),
            error: None,
            leaks: LeakCount::default(),
        };
        let loaded = Ko::open(path).and_then(|ko| Ok((run.load(&ko)?, ko)));
        match loaded {
            Ok((mut module, ko)) => {
                last_load = Instant::now();
                m.loaded = true;
                load.loader = Some(module.module.loader());
                // The module's code that runs for this load (its debugfs
                // files' reads, its exit) runs from threads created after
                // its loading thread, so their pids are this load's
                // ([`load_of`]).
                m.debugfs = in_fresh_thread(|| Ok(debugfs_entries(ko.name())))?;
                load.layout = Some(module.layout.clone());
                let unloaded = run
                    .unloading(&mut module)
                    .and_then(|()| in_fresh_thread(|| module.module.unload()));
                match unloaded {
                    Ok(()) => m.unloaded = true,
                    Err(e) => m.error = Some(format!("{e:#}")),
                }
                m.name = Some(ko.name().to_string());
                load.name = m.name.clone();
            }
            Err(e) => m.error = Some(format!("{e:#}")),
        }
        results.push(m);
        loads.push(load);
    }
    // A pid after every task of the last load's.
    let end = pid_mark()?;

    let harvest = run.harvest(last_load, &mut |_| {}, &|_, _| true)?;
    let symbols = harvest.sym;
    let (reports, scans, stable) = if naive {
        kmemleak.scan()?;
        kmemleak.scan()?;
        (report::parse(&kmemleak.read()?), 2, None)
    } else {
        let settled = harvest.settled;
        (settled.reports, settled.scans, Some(settled.stable))
    };
    let mut unattributed = LeakCount::default();
    for r in &reports {
        let row = symbols
            .owner_of(r)
            .and_then(|name| load_of(r, name, &loads, end));
        match row {
            Some(i) => results[i].leaks.add(r),
            None => unattributed.add(r),
        }
    }
    Ok(Census {
        schema: Schema::Census.name(),
        kernel: kernel_release(),
        modules: results,
        unattributed,
        scans,
        stable,
    })
}

/// One load of the census, as attribution needs it (not in the JSON).
#[derive(Debug, Clone, Default)]
struct Load {
    /// The module's name, when it loaded.
    name: Option<String>,
    /// The thread that loaded it: kmemleak's `pid` of what its init
    /// allocated.
    loader: Option<u32>,
    /// Its sections, as recorded while it was loaded.
    layout: Option<ModuleLayout>,
}

/// Which of `loads` (an index: loads and rows go together) a report whose
/// frames are module `name`'s came from. A module may be given more than
/// once, and each load is a row of its own. In this order:
///
/// 1. The load whose loading thread is the report's pid: its init
///    allocated it.
/// 2. The load whose pid range holds the report's pid. The census creates
///    every task of a load (the loading thread, the threads reading its
///    debugfs files and unloading it) after that load's loading thread and
///    before the next load's, and pids grow as tasks are created, so a
///    load's range runs from its loader's pid up to the next load's loader
///    (up to `end`, a pid taken after the last unload, for the last load).
///    Not when pids wrapped around during the census (the marks do not
///    grow), nor when the range is another module's.
/// 3. Otherwise no pid tells (a task older than the census, such as a
///    kworker running the module's work, or one created after it): the
///    first load of that name whose recorded sections hold one of the
///    report's frames, the innermost frame first. The addresses are all
///    that is left to tell loads apart, and a later load may reuse an
///    earlier one's addresses: the first is the earliest that could have
///    run that code, not a better guess than the others, and the last
///    load is no better one either. With no frame held (frames named by a
///    `[module]` tag only), the first load of that name.
///
/// `None` when no load is of module `name`.
fn load_of(r: &Report, name: &str, loads: &[Load], end: u32) -> Option<usize> {
    let of_name = |i: &usize| loads[*i].name.as_deref() == Some(name);
    let candidates: Vec<usize> = (0..loads.len()).filter(of_name).collect();
    let first = *candidates.first()?;
    if let Some(pid) = r.pid {
        if let Some(&i) = candidates.iter().find(|&&i| loads[i].loader == Some(pid)) {
            return Some(i);
        }
        let mut marks = PidMarks::default();
        let mut which = Vec::new();
        for (i, l) in loads.iter().enumerate() {
            if let Some(loader) = l.loader {
                marks.push(loader);
                which.push(i);
            }
        }
        marks.push(end);
        if let Some(&i) = marks.step_of(pid).and_then(|k| which.get(k)) {
            if of_name(&i) {
                return Some(i);
            }
        }
    }
    let holds = |f: &report::Frame| {
        let addr = f.address?;
        candidates.iter().copied().find(|&i| {
            loads[i]
                .layout
                .as_ref()
                .is_some_and(|l| l.section_of(addr).is_some())
        })
    };
    Some(r.frames.iter().find_map(holds).unwrap_or(first))
}

fn debugfs_entries(name: &str) -> BTreeMap<String, DebugfsFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(DEBUGFS).join(name);
    let Ok(entries) = fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let mode = e.metadata().map_or(0, |m| m.permissions().mode() & 0o7777);
            let content = fs::read(e.path())
                .ok()
                .filter(|c| c.len() <= 4096)
                .map(|c| String::from_utf8_lossy(&c).into_owned());
            (
                e.file_name().to_string_lossy().into_owned(),
                DebugfsFile { mode, content },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        kernel::module::Section,
        output::{Outcome, Verdict},
    };

    /// A load of `name` by thread `loader`, its `.text` at `text` and its
    /// `.init.text` where every module's init lands (freed and reused).
    fn load(name: &str, loader: u32, text: u64) -> Load {
        let section = |name: &str, address| Section {
            name: name.into(),
            address,
            size: 0x1000,
        };
        Load {
            name: Some(name.into()),
            loader: Some(loader),
            layout: Some(ModuleLayout {
                name: name.into(),
                sections: vec![section(".text", text), section(".init.text", INIT)],
                loader: Some(loader),
            }),
        }
    }

    const INIT: u64 = 0xffffffffa0100000;

    /// A report of task `pid` (none: no comm line) whose module frame is `frame`.
    fn report(pid: Option<u32>, frame: &str) -> Report {
        let comm = pid.map_or(String::new(), |p| {
            format!("  comm \"leaklab\", pid {p}, jiffies 4294892816\n")
        });
        let text = format!("unreferenced object 0xffff888003a8e000 (size 32):\n{comm}  backtrace (crc 1):\n    __kmalloc_cache_noprof+0x104/0x114\n    {frame}\n    do_syscall_64+0x4a/0x100\n");
        report::parse(&text).remove(0)
    }

    /// A bare frame `off` into a section at `base`.
    fn at(base: u64, off: u64) -> String {
        format!("{:#x}", base + off)
    }

    #[test]
    fn three_loads_of_one_module_each_get_their_own_reports() {
        // `census a.ko a.ko a.ko`: loaded by threads 100, 110 and 120, a pid
        // taken at 130 after the last unload. The first and the third load
        // got the same .text (the second's was still in use elsewhere).
        let (t0, t1) = (0xffffffffa0000000, 0xffffffffa0010000);
        let loads = [load("a", 100, t0), load("a", 110, t1), load("a", 120, t0)];
        let row = |pid, frame: &str| load_of(&report(pid, frame), "a", &loads, 130);
        // Init allocations: by the loading thread, though every load's init
        // text was at the same address.
        for (i, pid) in [100, 110, 120].into_iter().enumerate() {
            assert_eq!(row(Some(pid), &at(INIT, 0x29)), Some(i), "loader {pid}");
        }
        // Exit-time and debugfs-read allocations: the threads created
        // between a load's loader and the next one's.
        assert_eq!(row(Some(104), &at(t0, 0x10)), Some(0));
        assert_eq!(row(Some(115), &at(t1, 0x10)), Some(1));
        assert_eq!(row(Some(129), &at(t0, 0x10)), Some(2));
        // Outside every range (a boot-time kworker, a task after the
        // census) or no pid: the first load whose sections hold the frame.
        assert_eq!(row(Some(7), &at(t1, 0x10)), Some(1));
        assert_eq!(row(Some(130), &at(t1, 0x10)), Some(1));
        assert_eq!(row(None, &at(t1, 0x10)), Some(1));
        assert_eq!(row(Some(7), &at(t0, 0x10)), Some(0));
        // A frame named by its tag only: the first load of the module.
        assert_eq!(row(Some(900), "a_work+0x10/0x40 [a]"), Some(0));
        // Not the last row for any of them, and no row for another module.
        assert_eq!(
            load_of(&report(Some(115), &at(t1, 0)), "b", &loads, 130),
            None
        );
    }

    #[test]
    fn another_modules_range_or_wrapped_pids_fall_back_to_the_frames() {
        // `census a.ko b.ko a.ko`.
        let (t0, t1, t2) = (0xffffffffa0000000, 0xffffffffa0010000, 0xffffffffa0020000);
        let loads = [load("a", 100, t0), load("b", 110, t1), load("a", 120, t2)];
        // A task of b's load that ran a's code: the frame says which a.
        assert_eq!(
            load_of(&report(Some(115), &at(t2, 8)), "a", &loads, 130),
            Some(2)
        );
        assert_eq!(
            load_of(&report(Some(115), &at(t1, 8)), "b", &loads, 130),
            Some(1)
        );
        // Pids wrapped around during the census: no ranges, loaders still
        // tell init allocations apart.
        let loads = [load("a", 32760, t0), load("a", 5, t1), load("a", 12, t2)];
        assert_eq!(
            load_of(&report(Some(5), &at(INIT, 1)), "a", &loads, 20),
            Some(1)
        );
        assert_eq!(
            load_of(&report(Some(8), &at(t2, 1)), "a", &loads, 20),
            Some(2)
        );
    }

    fn census(leaked: usize, stable: Option<bool>) -> Census {
        Census {
            schema: "leaklab.census/1",
            kernel: "6.12.0".into(),
            modules: vec![ModuleResult {
                path: "/lib/modules/kmemleak-test.ko".into(),
                name: Some("kmemleak_test".into()),
                loaded: true,
                unloaded: true,
                debugfs: BTreeMap::new(),
                error: None,
                leaks: LeakCount {
                    objects: leaked,
                    bytes: 32 * leaked as u64,
                },
            }],
            unattributed: LeakCount {
                objects: 3,
                bytes: 96,
            },
            scans: 2,
            stable,
        }
    }

    #[test]
    fn a_module_that_leaks_fails_the_census() {
        let leaky = census(25, Some(true));
        assert_eq!(leaky.verdict(), Verdict::Failed);
        assert_eq!(
            leaky.summary(),
            "FAIL: kmemleak_test leaked 25 object(s), 800 bytes"
        );
        assert_eq!(census(25, None).verdict(), Verdict::Failed);
        // The kernel's own reports (not a module's) do not fail it.
        assert_eq!(census(0, Some(true)).verdict(), Verdict::Passed);
        assert_eq!(census(25, Some(false)).verdict(), Verdict::Inconclusive);
        let mut stuck = census(0, Some(true));
        stuck.modules[0].unloaded = false;
        assert_eq!(stuck.verdict(), Verdict::Failed);
        assert_eq!(stuck.summary(), "FAIL: kmemleak_test did not unload");
    }
}
