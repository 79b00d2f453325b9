// SPDX-License-Identifier: GPL-2.0
//! A sweep over the devices of a LAVA lab: the selected modules split in
//! shards of about equal size, in the tree's order, one LAVA job per shard
//! (`OUT/lava/shard-K/`: job.yaml, the kernel, the initramfs with the
//! shard's modules and what they need, its list); then, once each job's
//! log is saved as `OUT/lava/shard-K/lava.log`, the rows its console holds
//! (the `sweep --stream` lines) kept in `OUT/rows` as the guests' sweep
//! keeps them, and merged into one `leaklab.sweep/1` document.
//!
//! Each job runs the guests' command, `sweep --stream`, with `--format
//! ktap`: LAVA's monitor makes one case per module (`leak_MODULE`) and one
//! of leaklab's exit status. A module a shard's log never reported gets a
//! `crashed` row. A leak found this way is not checked again alone
//! (`confirmed: null`): `sweep --in-guests MODULE` does that.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    image::{self, read_row, save},
    plan::{Guests, Plan, Shards},
};
use crate::{
    analysis::detector::Detector,
    output::{schema::Schema, write_atomically},
    report::{
        lava::{console, entries, span, text},
        sweep::{Line, Row, Status, Sweep},
    },
    vm::{
        init::Tag,
        lava::{self, Job, Minutes},
    },
};

/// What the jobs' writing left for the merge, in `OUT/lava`.
const MANIFEST: &str = "manifest.json";
/// A shard's module list, in its directory (the machine's
/// [`image::GUEST_LIST`]).
const LIST: &str = "modules.list";
/// A shard's LAVA log, in its directory, where the user saves it.
pub const LOG: &str = "lava.log";

/// What the comment of a shard's job says to do with it.
const USAGE: &str = "# Submit it with `lavacli jobs submit job.yaml` and save its log beside it
# (`lavacli jobs logs --raw ID > lava.log`, or lava-run's OUTDIR/lava.log);
# `leaklab sweep --lava-results OUT` merges every shard's log.
";

/// One module of the sweep, as the merge needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Its name.
    name: String,
    /// Its file, relative to the tree.
    path: String,
    /// The shard that sweeps it (from 1); none when its row was kept
    /// already (built in, or an earlier run's).
    shard: Option<usize>,
}

/// The sweep the jobs run: its modules in the tree's order, each with its
/// shard.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    cycles: u32,
    protocol: String,
    shards: usize,
    modules: Vec<Entry>,
}

/// `modules` in `n` shards of about equal size (one more in the first
/// ones), in their order; no empty shard.
fn split<T: Clone>(modules: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.clamp(1, modules.len().max(1));
    let (size, more) = (modules.len() / n, modules.len() % n);
    let mut shards = Vec::new();
    let mut at = 0;
    for k in 0..n {
        let len = size + usize::from(k < more);
        if len > 0 {
            shards.push(modules[at..at + len].to_vec());
        }
        at += len;
    }
    shards
}

fn shard_dir(out: &Path, k: usize) -> PathBuf {
    out.join("lava").join(format!("shard-{k}"))
}

/// Writes one LAVA job per shard of the plan's selected modules (those
/// without a kept row, the built-in ones given theirs) into
/// `OUT/lava/shard-K/`; returns the jobs' paths (none when every module
/// has its row).
pub fn write_jobs(plan: &Plan, s: &Shards) -> Result<Vec<PathBuf>> {
    let g = plan.guests.as_ref().context(
        "LAVA jobs of a sweep need --in-guests: the kernel image and the build they boot",
    )?;
    let dir = plan.modules_dir.clone().context(
        "a sweep over a LAVA lab needs the kernel's module tree: --modules-dir DIR (scripts/debian-modules.sh fetches Debian's)",
    )?;
    s.device.refuse_mismatches(&g.out)?;
    let (kernel, dtb) = s.device.boot_files(&g.kernel)?;
    let init = g.build_dir.join(g.arch.name()).join("leaklab");
    for f in [&kernel, &init].into_iter().chain(&dtb) {
        anyhow::ensure!(
            f.is_file(),
            "{} not found: build it (make tool ARCH={}), or give --kernel and --dtb",
            f.display(),
            g.arch.name()
        );
    }
    let (tree, selected) = plan.selected(&dir)?;
    refuse_unmerged_logs(&g.out)?;
    let rows_dir = g.out.join("rows");
    fs::create_dir_all(&rows_dir).with_context(|| format!("creating {}", rows_dir.display()))?;
    let mut todo = Vec::new();
    for m in &selected {
        if image::row_path(&rows_dir, &m.name).exists() {
            continue;
        }
        if tree.is_builtin(&m.name) {
            let why = "built into the kernel".to_string();
            save(
                &rows_dir,
                &Row::without_check(&m.name, &m.path, Status::Skipped, why),
            )?;
        } else {
            todo.push(m.clone());
        }
    }
    let lava_dir = g.out.join("lava");
    if lava_dir.exists() {
        fs::remove_dir_all(&lava_dir)
            .with_context(|| format!("removing the old jobs in {}", lava_dir.display()))?;
    }
    let shards = split(&todo, s.count as usize);
    let mut jobs = Vec::new();
    for (i, shard) in shards.iter().enumerate() {
        let k = i + 1;
        let out = shard_dir(&g.out, k);
        fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let list = out.join(LIST);
        let names: Vec<&str> = shard.iter().map(|m| m.name.as_str()).collect();
        fs::write(&list, names.join("\n") + "\n")
            .with_context(|| format!("writing {}", list.display()))?;
        let mut device = s.device.clone();
        device.url = device
            .url
            .map(|u| format!("{}/lava/shard-{k}/", u.trim_end_matches('/')));
        jobs.push(lava::write(&Job {
            device: &device,
            kernel: &kernel,
            dtb: dtb.as_deref(),
            contents: &image::contents(&tree, &init, shard, &list),
            command: &image::command(plan, "ktap"),
            what: "sweep",
            label: &format!(" shard {k} of {}", shards.len()),
            writer: "leaklab sweep --lava-jobs",
            usage: USAGE,
            memory_mib: g.memory,
            minutes: minutes(g, shard.len()),
            out: &out,
        })?);
    }
    let shard_of = |name: &str| {
        shards
            .iter()
            .position(|s| s.iter().any(|m| m.name == name))
            .map(|i| i + 1)
    };
    let manifest = Manifest {
        cycles: plan.cycles,
        protocol: plan.protocol.name().into(),
        shards: shards.len(),
        modules: selected
            .iter()
            .map(|m| Entry {
                name: m.name.clone(),
                path: m.path.clone(),
                shard: shard_of(&m.name),
            })
            .collect(),
    };
    fs::create_dir_all(&lava_dir).with_context(|| format!("creating {}", lava_dir.display()))?;
    write_atomically(
        &lava_dir.join(MANIFEST),
        &serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(jobs)
}

/// A shard's timeouts: its modules' at the guests' watchdog each, and a
/// minute to boot, for the test (10 minutes at least); the whole job's a
/// quarter of an hour more (deploying, booting a board).
fn minutes(g: &Guests, modules: usize) -> Minutes {
    let test = (60 + g.module_timeout * modules as u64)
        .div_ceil(60)
        .max(10);
    Minutes {
        job: test + 15,
        action: test,
        test,
    }
}

/// Refuses to replace jobs whose logs were saved but not merged since.
fn refuse_unmerged_logs(out: &Path) -> Result<()> {
    let merged = fs::metadata(out.join("sweep.json"))
        .and_then(|m| m.modified())
        .ok();
    let Ok(dirs) = fs::read_dir(out.join("lava")) else {
        return Ok(());
    };
    for d in dirs.flatten() {
        let log = d.path().join(LOG);
        let Ok(saved) = fs::metadata(&log).and_then(|m| m.modified()) else {
            continue;
        };
        if merged.is_none_or(|m| m < saved) {
            bail!(
                "{} is a LAVA log not merged yet: merge it first (leaklab sweep --lava-results {}), or remove {} to drop it",
                log.display(),
                out.display(),
                out.join("lava").display()
            );
        }
    }
    Ok(())
}

/// What a shard's LAVA log says.
#[derive(Debug, Default)]
struct ShardLog {
    /// The kernel and detectors the sweep's first line named.
    start: Option<(String, Vec<Detector>)>,
    /// The rows, as the console streamed them.
    rows: Vec<Row>,
    /// LAVA's result of the job (`lava/job`), if it got that far.
    job: Option<String>,
    /// Why LAVA failed the job.
    job_error: Option<String>,
    /// The last line the guest's command wrote on its stderr.
    last_error: Option<String>,
    /// Seconds from the log's first entry to its last.
    seconds: f64,
}

/// Reads a shard's LAVA log: the sweep's stream from its console lines,
/// LAVA's result of the job.
fn read_log(log: &str) -> ShardLog {
    let mut s = ShardLog {
        seconds: span(log),
        ..ShardLog::default()
    };
    for (lvl, msg) in entries(log) {
        match lvl.as_str() {
            "target" => {
                let Some(line) = msg.as_str().map(console) else {
                    continue;
                };
                match Tag::split(&line) {
                    Some((Tag::Stdout, t)) => match image::stream_line(t) {
                        Some(Line::Start { kernel, detectors }) => {
                            s.start.get_or_insert((kernel, detectors));
                        }
                        Some(Line::Row(row)) => s.rows.push(row.with_known()),
                        None => {}
                    },
                    Some((Tag::Stderr, e)) => s.last_error = Some(e.to_string()),
                    _ => {}
                }
            }
            "results"
                if text(&msg, "definition").as_deref() == Some("lava")
                    && text(&msg, "case").as_deref() == Some("job") =>
            {
                s.job = text(&msg, "result");
                s.job_error = text(&msg, "error_msg");
            }
            _ => {}
        }
    }
    s
}

/// The `crashed` rows of the modules of shard `k` (`listed`, in its order)
/// its log never reported: the first is the one the machine was at.
fn missing_rows(k: usize, listed: &[&Entry], log: &ShardLog) -> Vec<Row> {
    let seen: BTreeSet<&str> = log.rows.iter().map(|r| r.module.as_str()).collect();
    let mut why = String::new();
    if let Some(job) = &log.job {
        why += &format!("; LAVA's job: {job}");
        if let Some(e) = &log.job_error {
            why += &format!(" ({e})");
        }
    }
    if let Some(e) = &log.last_error {
        why += &format!("; the guest said: {e}");
    }
    listed
        .iter()
        .filter(|m| !seen.contains(m.name.as_str()))
        .enumerate()
        .map(|(i, m)| {
            let detail = match i {
                0 => format!(
                    "shard-{k}'s LAVA log ends before its row: the machine stopped at it{why}"
                ),
                _ => format!("shard-{k}'s LAVA log ends before it{why}"),
            };
            Row::without_check(&m.name, &m.path, Status::Crashed, detail)
        })
        .collect()
}

/// Merges the LAVA logs of the shards `write_jobs` wrote into `out`
/// (`OUT/lava/shard-K/lava.log`): each row kept in `OUT/rows`, a `crashed`
/// row for each module a log never reported, and the sweep of every
/// module in the tree's order, also written to `OUT/sweep.json`.
pub fn merge(out: &Path, progress: &mut dyn FnMut(&str)) -> Result<Sweep> {
    let at = out.join("lava").join(MANIFEST);
    let text = fs::read_to_string(&at).with_context(|| {
        format!(
            "reading {}: {} holds no LAVA jobs of a sweep; write them with 'leaklab sweep --in-guests --lava-jobs N --out {}' first",
            at.display(),
            out.display(),
            out.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("reading {}: write the jobs again", at.display()))?;
    let logs: Vec<PathBuf> = (1..=manifest.shards)
        .map(|k| shard_dir(out, k).join(LOG))
        .collect();
    let missing: Vec<String> = logs
        .iter()
        .filter(|l| !l.is_file())
        .map(|l| l.display().to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "no LAVA log at {}: run each shard's job.yaml beside it (lava-run, or 'lavacli jobs submit') and save its log there ('lavacli jobs logs --raw ID > lava.log', or lava-run's OUTDIR/lava.log)",
            missing.join(", ")
        );
    }
    let rows_dir = out.join("rows");
    fs::create_dir_all(&rows_dir).with_context(|| format!("creating {}", rows_dir.display()))?;
    let mut start = None;
    let mut seconds = 0f64;
    for (i, path) in logs.iter().enumerate() {
        let k = i + 1;
        progress(&format!("sweep: merging shard {k}/{}", manifest.shards));
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading the LAVA log {}", path.display()))?;
        let log = read_log(&text);
        let listed: Vec<&Entry> = manifest
            .modules
            .iter()
            .filter(|m| m.shard == Some(k))
            .collect();
        for row in log
            .rows
            .iter()
            .filter(|r| listed.iter().any(|m| m.name == r.module))
        {
            save(&rows_dir, row)?;
        }
        for row in missing_rows(k, &listed, &log) {
            save(&rows_dir, &row)?;
        }
        seconds = seconds.max(log.seconds);
        if start.is_none() {
            start = log.start;
        }
    }
    let (kernel, detectors) = start.unwrap_or_default();
    let sweep = Sweep {
        schema: Schema::Sweep.name().into(),
        kernel,
        cycles: manifest.cycles,
        protocol: manifest.protocol,
        detectors,
        rows: manifest
            .modules
            .iter()
            .filter_map(|m| read_row(&rows_dir, &m.name))
            .collect(),
        jobs: manifest.shards as u32,
        seconds,
    };
    write_atomically(
        &out.join("sweep.json"),
        &serde_json::to_string_pretty(&sweep)?,
    )?;
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_about_equal_in_the_trees_order() {
        let modules: Vec<u32> = (1..=7).collect();
        assert_eq!(split(&modules, 3), [vec![1, 2, 3], vec![4, 5], vec![6, 7]]);
        assert_eq!(split(&modules, 1), [modules.to_vec()]);
        // No empty shard: more shards than modules is a shard a module.
        assert_eq!(split(&modules[..2], 5), [vec![1], vec![2]]);
        assert!(split::<u32>(&[], 4).is_empty());
    }

    /// A LAVA log's line of the console, as lava-run writes it: LAVA's
    /// shell logger escapes each double quote, and its YAML the rest.
    fn target(line: &str) -> String {
        let logged = line.replace('"', "\\\"");
        format!(
            "{{\"dt\": \"2026-12-07T10:00:01.000000\", \"lvl\": \"target\", \"msg\": {}}}",
            serde_json::to_string(&logged).unwrap()
        )
    }

    fn entry(name: &str, shard: usize) -> Entry {
        Entry {
            name: name.into(),
            path: format!("kernel/{name}.ko"),
            shard: Some(shard),
        }
    }

    #[test]
    fn rows_come_from_the_console_and_a_silent_module_crashed() {
        let clean = Row::without_check("md4", "kernel/md4.ko", Status::Clean, String::new());
        let start = Line::Start {
            kernel: "6.12.57+deb12-amd64".into(),
            detectors: vec![Detector::Trace],
        };
        let log = [
            r#"{"dt": "2026-12-07T10:00:00.000000", "lvl": "info", "msg": "start"}"#.to_string(),
            target("@i running: leaklab sweep --stream"),
            target(&format!("@1 {}", serde_json::to_string(&start).unwrap())),
            target(&format!(
                "@1 {}",
                serde_json::to_string(&Line::Row(clean)).unwrap()
            )),
            target("[   12.5] BUG: kernel NULL pointer dereference"),
            target("@2 leaklab: error: the kernel oopsed"),
            r#"{"dt": "2026-12-07T10:00:09.500000", "lvl": "results", "msg": {"case": "job", "definition": "lava", "error_msg": "lava-test-monitor timed out", "error_type": "Test", "result": "fail"}}"#.to_string(),
        ]
        .join("\n");
        let read = read_log(&log);
        assert_eq!(read.start.as_ref().unwrap().0, "6.12.57+deb12-amd64");
        assert_eq!(read.rows.len(), 1);
        assert_eq!(read.rows[0].module, "md4");
        assert!((read.seconds - 9.5).abs() < 1e-6);
        let listed = [entry("md4", 2), entry("oopser", 2), entry("later", 2)];
        let rows = missing_rows(2, &listed.iter().collect::<Vec<_>>(), &read);
        let said: Vec<(&str, Status)> =
            rows.iter().map(|r| (r.module.as_str(), r.status)).collect();
        assert_eq!(
            said,
            [("oopser", Status::Crashed), ("later", Status::Crashed)]
        );
        assert_eq!(
            rows[0].detail.as_deref(),
            Some("shard-2's LAVA log ends before its row: the machine stopped at it; LAVA's job: fail (lava-test-monitor timed out); the guest said: leaklab: error: the kernel oopsed")
        );
        assert!(rows[1]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("shard-2's LAVA log ends before it;"));
    }

    #[test]
    fn shards_logs_merge_into_one_sweep_in_the_trees_order() {
        use crate::output::{Outcome, Verdict};
        let out = std::env::temp_dir().join(format!("leaklab-lava-merge-{}", std::process::id()));
        let _ = fs::remove_dir_all(&out);
        let e = format!("{:#}", merge(&out, &mut |_| {}).unwrap_err());
        assert!(e.contains("holds no LAVA jobs of a sweep"), "{e}");
        for k in [1, 2] {
            fs::create_dir_all(shard_dir(&out, k)).unwrap();
        }
        fs::create_dir_all(out.join("rows")).unwrap();
        let builtin =
            Row::without_check("ext4", "kernel/ext4.ko", Status::Skipped, "built in".into());
        save(&out.join("rows"), &builtin).unwrap();
        let manifest = Manifest {
            cycles: 2,
            protocol: "leaklab".into(),
            shards: 2,
            modules: vec![
                Entry {
                    shard: None,
                    ..entry("ext4", 0)
                },
                entry("md4", 1),
                entry("leaky", 2),
            ],
        };
        fs::write(
            out.join("lava").join(MANIFEST),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        let e = format!("{:#}", merge(&out, &mut |_| {}).unwrap_err());
        assert!(e.starts_with("no LAVA log at "), "{e}");
        assert!(e.contains("shard-1/lava.log, "), "{e}");
        assert!(
            e.contains("shard-2/lava.log: run each shard's job.yaml"),
            "{e}"
        );

        let start = Line::Start {
            kernel: "6.12".into(),
            detectors: vec![Detector::Trace],
        };
        let clean = Row::without_check("md4", "kernel/md4.ko", Status::Clean, String::new());
        let one = [
            target(&format!("@1 {}", serde_json::to_string(&start).unwrap())),
            target(&format!(
                "@1 {}",
                serde_json::to_string(&Line::Row(clean)).unwrap()
            )),
        ];
        fs::write(shard_dir(&out, 1).join(LOG), one.join("\n")).unwrap();
        // The second job never booted.
        let two = r#"- {"dt": "x", "lvl": "results", "msg": {"case": "job", "definition": "lava", "error_msg": "Connection closed", "result": "fail"}}"#;
        fs::write(shard_dir(&out, 2).join(LOG), two).unwrap();
        let sweep = merge(&out, &mut |_| {}).unwrap();
        let rows: Vec<(&str, Status)> = sweep
            .rows
            .iter()
            .map(|r| (r.module.as_str(), r.status))
            .collect();
        assert_eq!(
            rows,
            [
                ("ext4", Status::Skipped),
                ("md4", Status::Clean),
                ("leaky", Status::Crashed)
            ]
        );
        assert_eq!(
            sweep.rows[2].detail.as_deref(),
            Some("shard-2's LAVA log ends before its row: the machine stopped at it; LAVA's job: fail (Connection closed)")
        );
        assert_eq!((sweep.kernel.as_str(), sweep.jobs), ("6.12", 2));
        assert_eq!(sweep.verdict(), Verdict::Failed);
        let kept: Sweep =
            serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
        assert_eq!(kept.rows.len(), 3);
        assert!(read_row(&out.join("rows"), "leaky").is_some());
        fs::remove_dir_all(&out).unwrap();
    }
}
