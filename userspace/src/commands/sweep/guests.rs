// SPDX-License-Identifier: GPL-2.0
//! A sweep over guests of a kernel image: the modules split in batches,
//! each batch swept by `leaklab sweep --stream` in a guest of its own
//! (its modules and what they need in the guest's `/root/modules`), up to
//! `jobs` guests at once. Each row is kept in `OUT/rows/MODULE.json` as
//! soon as its guest is done, so a sweep run again goes on where it
//! stopped. A guest that crashes or hangs leaves its module a `crashed`
//! row; the rest of its batch goes to a fresh guest. A leak is then
//! checked again, the module alone in a fresh guest, before it is called
//! confirmed.

use std::{
    collections::{BTreeSet, VecDeque},
    fs,
    path::{Path, PathBuf},
    sync::{mpsc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{
    image::{self, read_row, row_path, save},
    plan::{Guests, Plan},
};
use crate::{
    analysis::{debuginfo, detector::Detector},
    kernel::{
        interrupt,
        modtree::{ModTree, TreeModule},
        module::Ko,
    },
    output::{schema::Schema, write_atomically},
    report::sweep::{Line, Row, Status, Sweep},
    vm::{self, init::Tag, VmSpec},
};

/// What a batch is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The sweep.
    Sweep,
    /// A leak found again, its module alone.
    Confirm,
}

/// Sweeps the selected modules of the plan's tree in guests.
pub fn run(plan: &Plan, g: &Guests, progress: &mut dyn FnMut(&str)) -> Result<Sweep> {
    let dir = plan.modules_dir.clone().context(
        "a sweep over guests needs the kernel's module tree: --modules-dir DIR (scripts/debian-modules.sh fetches Debian's)",
    )?;
    let (tree, selected) = plan.selected(&dir)?;
    let init = g.build_dir.join(g.arch.name()).join("leaklab");
    anyhow::ensure!(
        init.is_file(),
        "{} not found: build the guest's leaklab (make tool ARCH={})",
        init.display(),
        g.arch.name()
    );
    let rows_dir = g.out.join("rows");
    fs::create_dir_all(&rows_dir).with_context(|| format!("creating {}", rows_dir.display()))?;
    let start = Instant::now();
    let mut todo = Vec::new();
    for m in &selected {
        if row_path(&rows_dir, &m.name).exists() {
            continue;
        }
        if tree.is_builtin(&m.name) {
            let row = Row::without_check(
                &m.name,
                &m.path,
                Status::Skipped,
                "built into the kernel".into(),
            );
            save(&rows_dir, &row)?;
        } else {
            todo.push(m.clone());
        }
    }
    let runner = Runner {
        plan,
        g,
        tree: &tree,
        init,
        rows_dir: rows_dir.clone(),
        said: Mutex::new(None),
    };
    let batches = todo.chunks(g.batch.max(1)).map(<[_]>::to_vec).collect();
    runner.run_all(batches, Purpose::Sweep, progress)?;
    if g.confirm {
        let leaked: Vec<Vec<TreeModule>> = selected
            .iter()
            .filter(|m| {
                read_row(&rows_dir, &m.name)
                    .is_some_and(|r| r.status == Status::Leaked && r.confirmed.is_none())
            })
            .map(|m| vec![m.clone()])
            .collect();
        runner.run_all(leaked, Purpose::Confirm, progress)?;
    }
    // Rows kept before the debug files were given (a sweep run again with
    // --debug-dir) get their lines now, as they are read for the result.
    let rows = selected
        .iter()
        .filter_map(|m| read_row(&rows_dir, &m.name))
        .map(|row| {
            if g.debug_dir.is_none() || row.leaks.iter().all(|l| l.line.is_some()) {
                return Ok(row);
            }
            let row = runner.with_lines(row);
            save(&rows_dir, &row)?;
            Ok(row)
        })
        .collect::<Result<Vec<Row>>>()?;
    // A resumed sweep that had nothing left to run: what the first guests
    // said.
    let said = g.out.join("start.json");
    let (kernel, detectors) = match runner.said.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(s) => {
            write_atomically(&said, &serde_json::to_string(&s)?)?;
            s
        }
        None => fs::read_to_string(&said)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| (String::new(), Vec::new())),
    };
    let sweep = Sweep {
        schema: Schema::Sweep.name().into(),
        kernel,
        cycles: plan.cycles,
        protocol: plan.protocol.name().into(),
        detectors,
        rows,
        jobs: g.jobs,
        seconds: start.elapsed().as_secs_f64(),
    };
    write_atomically(
        &g.out.join("sweep.json"),
        &serde_json::to_string_pretty(&sweep)?,
    )?;
    Ok(sweep)
}

/// Runs batches of a sweep in guests.
struct Runner<'a> {
    plan: &'a Plan,
    g: &'a Guests,
    tree: &'a ModTree,
    init: PathBuf,
    rows_dir: PathBuf,
    /// The kernel release and the detectors the guests judged by, as
    /// the last one to start said.
    said: Mutex<Option<(String, Vec<Detector>)>>,
}

impl Runner<'_> {
    /// Runs `batches` over up to `jobs` guests at once, telling `progress`
    /// how far it got; a crashed guest's unswept modules go to a fresh one.
    fn run_all(
        &self,
        batches: Vec<Vec<TreeModule>>,
        purpose: Purpose,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let total: usize = batches.iter().map(Vec::len).sum();
        if total == 0 {
            return Ok(());
        }
        let queue = Mutex::new(VecDeque::from(batches));
        let next = Mutex::new(0usize);
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::scope(|s| -> Result<()> {
            let mut workers = Vec::new();
            for _ in 0..self.g.jobs.max(1) {
                let tx = tx.clone();
                let (queue, next) = (&queue, &next);
                workers.push(s.spawn(move || -> Result<()> {
                    loop {
                        interrupt::check()?;
                        let Some(batch) =
                            queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
                        else {
                            return Ok(());
                        };
                        let n = {
                            let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                            *n += 1;
                            *n
                        };
                        let rest = self.run_batch(&batch, purpose, n)?;
                        let done = batch.len() - rest.len();
                        let _ = tx.send(format!("{done}"));
                        if !rest.is_empty() {
                            queue
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push_front(rest);
                        }
                    }
                }));
            }
            drop(tx);
            let mut done = 0usize;
            let what = match purpose {
                Purpose::Sweep => "swept",
                Purpose::Confirm => "leaks checked again",
            };
            for n in rx {
                done += n.parse::<usize>().unwrap_or(0);
                progress(&format!("sweep: {done}/{total} modules {what}"));
            }
            for w in workers {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a sweep worker panicked")))?;
            }
            Ok(())
        })
    }

    /// Sweeps `batch` in a fresh guest (the `n`th of this run) and keeps
    /// its rows; the modules the guest never got to, when it crashed or
    /// hung (the first of them, the one it was at, gets a `crashed` row).
    fn run_batch(
        &self,
        batch: &[TreeModule],
        purpose: Purpose,
        n: usize,
    ) -> Result<Vec<TreeModule>> {
        let logs = self.g.out.join("logs");
        fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let tag = match purpose {
            Purpose::Sweep => "sweep",
            Purpose::Confirm => "confirm",
        };
        let log = logs.join(format!("{tag}-{n}.log"));
        let list = logs.join(format!("{tag}-{n}.list"));
        let names: Vec<&str> = batch.iter().map(|m| m.name.as_str()).collect();
        fs::write(&list, names.join("\n") + "\n")
            .with_context(|| format!("writing {}", list.display()))?;
        let spec = VmSpec {
            arch: self.g.arch,
            kernel: self.g.kernel.clone(),
            contents: image::contents(self.tree, &self.init, batch, &list),
            command: image::command(self.plan, "json"),
            append: Vec::new(),
            memory_mib: self.g.memory,
            cpus: 1,
            timeout: Duration::from_secs(60 + self.g.module_timeout * batch.len() as u64),
            accel: self.g.accel,
            log: log.clone(),
            qemu: self.g.qemu.clone(),
            show_kernel: false,
            echo: false,
            stop: Some(|| interrupt::requested().is_some()),
        };
        let ended = vm::run(&spec);
        let mut seen = BTreeSet::new();
        for line in guest_lines(&log) {
            match line {
                Line::Start { kernel, detectors } => {
                    *self.said.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((kernel, detectors));
                }
                Line::Row(row) => {
                    seen.insert(row.module.clone());
                    self.keep(row, purpose)?;
                }
            }
        }
        let mut rest: Vec<TreeModule> = batch
            .iter()
            .filter(|m| !seen.contains(&m.name))
            .cloned()
            .collect();
        if rest.is_empty() {
            return Ok(rest);
        }
        interrupt::check()?;
        let why = match ended {
            Err(e) => format!("{e}"),
            Ok(o) => match last_error(&log) {
                Some(e) => format!("the guest ended (status {}) at it: {e}", o.status),
                None => format!("the guest ended (status {}) before it", o.status),
            },
        };
        let at = rest.remove(0);
        let row = Row::without_check(&at.name, &at.path, Status::Crashed, why);
        self.keep(row, purpose)?;
        Ok(rest)
    }

    /// Keeps `row`: the sweep's as it is; a confirmation's as whether the
    /// leak was found again.
    fn keep(&self, row: Row, purpose: Purpose) -> Result<()> {
        match purpose {
            Purpose::Sweep => save(&self.rows_dir, &self.with_lines(row)),
            Purpose::Confirm => {
                let Some(mut first) = read_row(&self.rows_dir, &row.module) else {
                    return Ok(());
                };
                first.confirmed = Some(row.status == Status::Leaked);
                save(&self.rows_dir, &first)
            }
        }
    }
}

impl Runner<'_> {
    /// `row` with its leaks' frames in the module placed at their source
    /// lines, from the module's debug file in the plan's debug directory
    /// (as it was when there is none, or it cannot be read: said once).
    fn with_lines(&self, mut row: Row) -> Row {
        let Some(dir) = &self.g.debug_dir else {
            return row;
        };
        let path = dir.join(&row.path);
        if row.leaks.is_empty() || !path.is_file() {
            return row;
        }
        let debug = match Ko::open_debug(&path, &row.module) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("sweep: no source lines for {}: {e:#}", row.module);
                return row;
            }
        };
        for leak in &mut row.leaks {
            let Ok(frames) = debuginfo::with_lines(&leak.frames, &debug) else {
                continue;
            };
            // The culprit is the module's first frame: its line is the leak's.
            leak.line = frames
                .iter()
                .filter(|f| f.contains(&format!(" [{}]", row.module)))
                .find_map(|f| f.split_once(" at ").map(|(_, at)| at.to_string()));
            leak.frames = frames;
        }
        row
    }
}

/// The lines of a sweep's stream a guest printed, from its console `log`.
fn guest_lines(log: &Path) -> Vec<Line> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| match Tag::split(l) {
            Some((Tag::Stdout, json)) => image::stream_line(json),
            _ => None,
        })
        .collect()
}

/// The last line the guest's command wrote on its stderr.
fn last_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| match Tag::split(l) {
        Some((Tag::Stderr, e)) => Some(e.to_string()),
        _ => None,
    })
}
