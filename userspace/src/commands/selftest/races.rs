// SPDX-License-Identifier: GPL-2.0
//! The contract under concurrency and interruption: writers racing on
//! one file, unloads racing open files and runs, runs stopped midway.

use std::{
    collections::BTreeMap,
    ffi::CString,
    fs,
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use nix::kmod::{delete_module, DeleteModuleFlags};

use crate::{
    analysis::findings::findings,
    kernel::{
        kmod::{self},
        kmsg::KmsgWatch,
        module::Ko,
    },
    kmemleak::window::auto_scan_running,
    ko::{parse_stats, Variant, DIR},
};

use crate::report::selftest::Case;

/// The writers of [`concurrent_writers`]: pattern, variant, runs.
const WRITERS: [(&str, &str, u32); 5] = [
    ("error_path", "fixed", 300),
    ("conditional_free", "fixed", 300),
    ("arc_cycle", "fixed", 300),
    ("device_ref", "fixed", 40),
    ("module_exit", "leaky", 100),
];

/// Each pattern's and variant's runs in a `stats` text.
fn runs(text: &str) -> Result<BTreeMap<(String, &'static str), u64>> {
    Ok(parse_stats(text)?
        .iter()
        .map(|r| ((r.pattern.clone(), r.variant.name()), r.runs))
        .collect())
}

/// Processes each driving one pattern through `leaklab trigger`, and the
/// exit-time leak armed by one of them while a thread disarms it, all while
/// threads read `stats`: `(case, expected, actual)` for each check.
pub(super) fn concurrent_writers(dir: &Path) -> Result<Vec<Case>> {
    let stats = dir.join("stats");
    let disarm = dir.join("patterns/module_exit/disarm");
    let before = runs(&fs::read_to_string(&stats)?)?;
    let writers = start_writers()?;
    let (torn, disarm_errors) = read_and_disarm_meanwhile(&stats, &disarm, before.len());
    let mut failed = Vec::new();
    for (what, child) in writers {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            failed.push(format!(
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    // Whatever the races left armed is freed now, so nothing leaks at rmmod.
    fs::write(&disarm, "1").context("disarming module_exit")?;
    let after_text = fs::read_to_string(&stats)?;
    let after = runs(&after_text)?;
    let miscounted: Vec<String> = WRITERS
        .iter()
        .filter_map(|&(p, v, n)| {
            let k = (p.to_string(), v);
            // A reload between the two reads may reset the counters.
            let delta = after
                .get(&k)
                .copied()
                .unwrap_or(0)
                .wrapping_sub(before.get(&k).copied().unwrap_or(0)) as i64;
            (delta != i64::from(n)).then(|| format!("{p} {v}: {delta} runs, {n} asked"))
        })
        .collect();
    let still_leaked = parse_stats(&after_text)?
        .iter()
        .find(|r| r.pattern == "module_exit" && r.variant == Variant::Leaky)
        .map_or(u64::MAX, |r| r.leaked);
    let text = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join("; ")
        }
    };
    Ok(vec![
        Case::new("concurrent writers: failed", "none", text(failed)),
        Case::new("concurrent writers: miscounted", "none", text(miscounted)),
        Case::new("concurrent stats reads: torn", "0", torn.to_string()),
        Case::new(
            "concurrent disarms: refused",
            "0",
            disarm_errors.to_string(),
        ),
        Case::new(
            "module_exit leaked after disarm",
            "0",
            still_leaked.to_string(),
        ),
    ])
}

/// Starts a `leaklab trigger` for each of [`WRITERS`]: what it runs, and
/// the child.
fn start_writers() -> Result<Vec<(String, std::process::Child)>> {
    let exe = fs::read_link("/proc/self/exe").context("finding this program")?;
    let mut children = Vec::new();
    for (pattern, variant, n) in WRITERS {
        let child = Command::new(&exe)
            .args(["trigger", pattern, variant, "-n", &n.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        children.push((format!("{pattern} {variant} -n {n}"), child));
    }
    Ok(children)
}

/// Two threads reading `stats` 200 times each and one disarming the
/// exit-time leak 50 times, at once: the reads that did not give `rows`
/// rows (torn), and the disarms refused.
fn read_and_disarm_meanwhile(stats: &Path, disarm: &Path, rows: usize) -> (usize, usize) {
    thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    (0..200)
                        .filter(|_| {
                            let shape = fs::read_to_string(stats)
                                .ok()
                                .and_then(|t| parse_stats(&t).ok())
                                .map(|r| r.len());
                            shape != Some(rows)
                        })
                        .count()
                })
            })
            .collect();
        let disarmer = s.spawn(|| (0..50).filter(|_| fs::write(disarm, "1").is_err()).count());
        (
            readers
                .into_iter()
                .map(|r| r.join().unwrap_or(usize::MAX))
                .sum::<usize>(),
            disarmer.join().unwrap_or(usize::MAX),
        )
    })
}

pub(super) fn same(a: &[u8], b: &[u8]) -> String {
    if a == b {
        "same".into()
    } else {
        format!(
            "differs: {:?} vs {:?}",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        )
    }
}

/// The users of the control files in [`unload_races`]: a file and what
/// is written to it (nothing: it is read).
const USERS: [(&str, &str); 6] = [
    ("patterns/error_path/fixed", "20"),
    ("patterns/arc_cycle/leaky", "2"),
    ("patterns/device_ref/fixed", "5"),
    ("patterns/module_exit/leaky", "1"),
    ("patterns/module_exit/disarm", "1"),
    ("stats", ""),
];

/// `rmmod` racing against running samples and open files: threads
/// trigger leaky and fixed runs, arm and disarm the exit-time leak and read
/// `stats` in a loop while the module is being unloaded; the unload must
/// get through (no deadlock), every thread must end by itself once the
/// files are gone (no crash), and the kernel log must stay clean (on the
/// debug kernel lockdep and the hung-task detector watch as well).
pub(super) fn unload_races(ko: &Ko) -> Result<Vec<Case>> {
    let mut kmsg = KmsgWatch::start()?;
    kmod::load(ko)?;
    let name = ko.name().to_string();
    let cname = CString::new(name.clone()).context("module name contains NUL")?;
    let ops = AtomicU64::new(0);
    let (unloaded, ended) = unload_while_used(&cname, &ops);
    if unloaded.is_none() {
        let _ = kmod::unload(&name);
    }
    let log: Vec<String> = findings(&kmsg.drain())
        .into_iter()
        .map(|f| f.line)
        .collect();
    let case = |name: &str, expected: &str, actual: String| {
        Case::new(
            format!("rmmod racing {} users: {name}", USERS.len()),
            expected,
            actual,
        )
    };
    Ok(vec![
        case(
            "unloaded within 60 s",
            "yes",
            unloaded.map_or("no".into(), |_| "yes".into()),
        ),
        case(
            "users ended on their own",
            &USERS.len().to_string(),
            ended.to_string(),
        ),
        case(
            "operations while racing",
            "some",
            if ops.load(Ordering::Relaxed) >= 50 {
                "some"
            } else {
                "none"
            }
            .into(),
        ),
        case(
            "kernel log",
            "clean",
            if log.is_empty() {
                "clean".into()
            } else {
                log.join(" | ")
            },
        ),
    ])
}

/// Unloads `module` while a thread per [`USERS`] entry uses its file
/// (each use counted in `ops`): how long the unload took (`None`: not
/// within 60 s), and how many users ended on their own.
fn unload_while_used(module: &CString, ops: &AtomicU64) -> (Option<Duration>, usize) {
    let dir = Path::new(DIR);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let users: Vec<_> = USERS
            .iter()
            .map(|&(file, value)| {
                let (path, stop) = (dir.join(file), &stop);
                scope.spawn(move || use_until_gone(&path, value, ops, stop))
            })
            .collect();
        // Let them get going, then unload while they run.
        while ops.load(Ordering::Relaxed) < 50 {
            thread::sleep(Duration::from_millis(5));
        }
        let t = Instant::now();
        let unloaded = loop {
            match delete_module(module, DeleteModuleFlags::O_NONBLOCK) {
                Ok(()) => break Some(t.elapsed()),
                Err(_) if t.elapsed() < Duration::from_secs(60) => {
                    thread::sleep(Duration::from_millis(2))
                }
                Err(_) => break None,
            }
        };
        // Users still going 10 s after the unload did not see it.
        let t = Instant::now();
        while users.iter().any(|u| !u.is_finished()) && t.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let ended = users
            .into_iter()
            .map(|u| u.join().unwrap_or(false))
            .filter(|&ended| ended)
            .count();
        (unloaded, ended)
    })
}

/// Writes `value` to `path` (reads it, if `value` is empty) until the file
/// is gone (`true`: the module was unloaded) or `stop` is set (`false`).
fn use_until_gone(path: &Path, value: &str, ops: &AtomicU64, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        let done = if value.is_empty() {
            fs::read_to_string(path).map(|_| ())
        } else {
            fs::write(path, value)
        };
        match done {
            Ok(()) => {
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            // Refused runs (the leak cap) are fine; keep going.
            Err(_) => {}
        }
        thread::sleep(Duration::from_micros(500));
    }
    false
}

/// SIGINT and SIGTERM in the middle of `leaklab cycle` (run as a child):
/// it exits with 128 + the signal and one line, after unloading the module
/// and leaving kmemleak's scan thread as it found it.
pub(super) fn interrupted_runs_clean_up(ko: &Ko) -> Result<Vec<Case>> {
    use nix::sys::signal::{kill, Signal};
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().context("finding leaklab's own executable")?;
    let loaded = Path::new("/sys/module").join(ko.name());
    let mut cases = Vec::new();
    // SIGINT as soon as the module is there; SIGTERM later, in the window.
    for (sig, after) in [(Signal::SIGINT, 0), (Signal::SIGTERM, 1500)] {
        let scanning = auto_scan_running();
        let child = Command::new(&exe)
            // Two patterns are enough to be in the middle of; slab_cache's
            // leaky run would taint the kernel (and turn lockdep off).
            .args(["cycle", "--pattern", "error_path", "--pattern", "arc_cycle"])
            .arg("--module")
            .arg(ko.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting leaklab cycle")?;
        let t = std::time::Instant::now();
        while !loaded.exists() && t.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(after));
        kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)?;
        let out = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut check = |what: &str, expected: String, actual: String| {
            cases.push(Case::new(
                format!("cycle <- {sig} {what}"),
                expected,
                actual,
            ))
        };
        check(
            "exit status",
            (128 + sig as i32).to_string(),
            out.status.code().map_or("none".into(), |c| c.to_string()),
        );
        check(
            "says so in one line",
            format!("leaklab: error: interrupted by {sig}"),
            stderr
                .lines()
                .filter(|l| l.starts_with("leaklab: error:"))
                .map(|l| l.split(':').take(3).collect::<Vec<_>>().join(":"))
                .collect::<Vec<_>>()
                .join(" | "),
        );
        check(
            "module loaded after",
            "no".into(),
            if loaded.exists() { "yes" } else { "no" }.into(),
        );
        check(
            "kmemleak scan thread",
            scanning.to_string(),
            crate::kmemleak::window::auto_scan_running().to_string(),
        );
    }
    Ok(cases)
}
