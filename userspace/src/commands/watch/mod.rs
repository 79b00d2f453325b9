//! `leaklab watch`: the long-running leak monitor. Each round scans with
//! kmemleak until two scans agree (its settings left as found), reports the
//! objects not reported before, samples the kernel's memory and reads the
//! kernel log; everything goes to an event log in DIR, the state that
//! makes a restart report nothing twice to `DIR/state.json`, and the
//! figures to a Prometheus textfile.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        findings::FindingKind,
        symbolize::Symbolizer,
        trend::{steady_growth, Line},
    },
    kernel::{
        interrupt::{self, Interrupted},
        module::{Ko, ModuleLayout},
    },
    output::{utc, Outcome, Verdict},
};

mod event;
pub mod log;
pub mod metrics;
mod round;
pub mod state;
pub mod view;

pub use event::{human_line, Event, Logged};
use round::Watch;
use state::{Leak, State};

/// `leaklab watch`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Time between rounds: `60s`, `5m`, `1h`, `500ms`, or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    pub interval: Duration,
    /// The directory for the event log and the state (made if missing).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/leaklab/watch")]
    pub out: PathBuf,
    /// Also write the figures as a Prometheus textfile here (for
    /// node_exporter's textfile collector: a name ending in `.prom`).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
    /// Stop after this many rounds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: Option<u64>,
    /// A module's object file (repeatable): its frames are named to
    /// file:line while it is loaded, and after it is unloaded.
    #[arg(long = "ko", value_name = "KO")]
    pub kos: Vec<PathBuf>,
    /// Rotate the event log at this many MiB.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub log_mib: u64,
    /// How long Slab must grow steadily, with kmemleak reporting nothing
    /// new, before the watch warns of a leak kmemleak cannot see.
    #[arg(long, default_value = "10m", value_parser = parse_interval)]
    pub trend_after: Duration,
    /// Rotated event logs kept (the log on disk is at most
    /// `--log-mib` times this plus one).
    #[arg(long, default_value_t = 4)]
    pub log_keep: usize,
}

/// Parses `60s`, `5m`, `1h`, `500ms` or a number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a time: give e.g. 60s, 5m, 1h or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: the unit is one of ms, s, m, h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a time we can wait"))
}

/// Kernel log records read a round, at most.
const LOG_LINES_A_ROUND: usize = 4096;
/// Modules' loads remembered for naming frames, per `--ko`.
const LOADS_KEPT: usize = 4;
/// The recent stretch the trend warning looks at, seconds.
pub const RECENT: f64 = 3600.0;
/// The least points before Slab's growth is called steady (over at least
/// `--trend-after`).
pub const TREND_MIN_POINTS: u64 = 10;
/// The least growth of Slab called a leak, bytes a second (about 5 MiB a
/// day).
pub const TREND_MIN_SLOPE: f64 = 64.0;

/// Unix seconds now.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The process's resident memory, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| crate::kernel::procfs::meminfo_field(&s, "VmRSS:"))
        .unwrap_or(0)
}

/// Names frames of the modules given with `--ko`: each load's layout is
/// recorded while the module is loaded and kept for its frames after.
struct Modules {
    kos: Vec<Ko>,
    loads: Vec<(usize, ModuleLayout)>,
    sym: Symbolizer,
}

impl Modules {
    fn open(paths: &[PathBuf]) -> Result<Self> {
        let kos = paths.iter().map(|p| Ko::open(p)).collect::<Result<_>>()?;
        Ok(Self {
            kos,
            loads: Vec::new(),
            sym: Symbolizer::default(),
        })
    }

    /// Records the layout of each module loaded now, when it is a new load.
    fn refresh(&mut self) {
        let mut changed = false;
        for (i, ko) in self.kos.iter().enumerate() {
            let Ok(layout) = ModuleLayout::record(ko) else {
                continue;
            };
            let last = self.loads.iter().rev().find(|(k, _)| *k == i);
            if last.is_some_and(|(_, l)| l.sections == layout.sections) {
                continue;
            }
            self.loads.push((i, layout));
            if self.loads.iter().filter(|(k, _)| *k == i).count() > LOADS_KEPT {
                let oldest = self.loads.iter().position(|(k, _)| *k == i);
                if let Some(o) = oldest {
                    self.loads.remove(o);
                }
            }
            changed = true;
        }
        if changed {
            let mut sym = Symbolizer::default();
            for (i, l) in &self.loads {
                let _ = sym.add(l, &self.kos[*i]);
            }
            self.sym = sym;
        }
    }
}

/// What the watch found (`--format json`: schema `leaklab.watch/1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchRun {
    /// `leaklab.watch/1`.
    pub schema: String,
    /// The directory.
    pub dir: String,
    /// Rounds this run.
    pub rounds: u64,
    /// Rounds over every run on the directory.
    pub rounds_total: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Objects reported this run for the first time.
    pub new_objects: u64,
    /// Every leak found on the directory, by backtrace, the first found
    /// first.
    pub leaks: Vec<LeakSummary>,
    /// Notable kernel log lines this run, by kind.
    pub findings: BTreeMap<String, u64>,
    /// Slab and MemAvailable over the run and the last hour, bytes a second.
    pub trends: Trends,
    /// Warnings: Slab growing while kmemleak is silent.
    pub warnings: Vec<String>,
    /// Rounds that failed, writes that failed, samples given up.
    pub errors: Health,
    /// Why it stopped.
    pub stopped_by: String,
}

/// A leak in the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeakSummary {
    /// The backtrace's fingerprint.
    pub fingerprint: String,
    /// What is known of it.
    #[serde(flatten)]
    pub leak: Leak,
}

/// The slopes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trends {
    /// Slab over the whole run.
    pub slab: Line,
    /// MemAvailable over the whole run.
    pub mem_available: Line,
    /// Slab over the last hour.
    pub slab_recent: Line,
    /// MemAvailable over the last hour.
    pub mem_available_recent: Line,
}

/// The watch's own troubles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    /// Rounds whose kmemleak scan failed.
    pub kmemleak: u64,
    /// Failed writes of the event log, the state or the textfile.
    pub writes: u64,
    /// Samples given up while the event log could not be written.
    pub dropped_samples: u64,
}

/// Whether Slab's recent `line` is a steady growth over `span` seconds at
/// least, with no new leak found during it (`last_leak` the time of the
/// last new one, `t` now).
pub fn slab_warning(line: &Line, span: f64, last_leak: f64, t: f64) -> bool {
    steady_growth(line, TREND_MIN_POINTS, span, TREND_MIN_SLOPE) && last_leak < t - line.span
}

/// Runs the watch until its rounds are done or a signal stops it; prints a
/// line per event when `human`.
pub fn run(opts: &Options, human: bool) -> Result<WatchRun> {
    std::fs::create_dir_all(&opts.out).with_context(|| {
        format!(
            "cannot make {}: give --out a directory you can write",
            opts.out.display()
        )
    })?;
    let (mut w, boot, why) = Watch::open(opts, human)?;
    let started = Instant::now();
    w.event(Event::Start {
        version: env!("CARGO_PKG_VERSION").into(),
        boot_id: boot,
        interval: opts.interval.as_secs_f64(),
        kmemleak: why,
        rounds_before: w.state.rounds,
    });
    let signalled = |e: &anyhow::Error| {
        e.downcast_ref::<Interrupted>()
            .map(|i| i.0.as_str().to_string())
    };
    let stopped_by = loop {
        if let Some(sig) = interrupt::requested() {
            break sig.as_str().to_string();
        }
        if let Err(e) = w.round() {
            // A signal mid-round: the window has restored kmemleak.
            let Some(sig) = signalled(&e) else {
                return Err(e);
            };
            break sig;
        }
        if opts.rounds.is_some_and(|n| w.run.rounds >= n) {
            break "rounds".to_string();
        }
        if let Err(e) = interrupt::sleep(opts.interval) {
            break signalled(&e).unwrap_or_else(|| format!("{e:#}"));
        }
    };
    w.event(Event::Stop {
        rounds: w.run.rounds,
        reason: stopped_by.clone(),
    });
    w.persist();
    let mut run = w.run.clone();
    run.stopped_by = stopped_by;
    run.seconds = started.elapsed().as_secs_f64();
    run.rounds_total = w.state.rounds;
    run.trends = Trends {
        slab: w.fit_slab.line(),
        mem_available: w.fit_avail.line(),
        slab_recent: w.recent_slab.line(),
        mem_available_recent: w.recent_avail.line(),
    };
    run.leaks = leak_list(&w.state);
    if w.log.pending() > 0 {
        run.warnings.push(format!(
            "{} events could not be written to {}: {}",
            w.log.pending(),
            opts.out.display(),
            w.log.failing.as_deref().unwrap_or("?")
        ));
    }
    Ok(run)
}

/// The leaks of a state, the first found first.
pub fn leak_list(state: &State) -> Vec<LeakSummary> {
    let mut v: Vec<LeakSummary> = state
        .leaks
        .iter()
        .map(|(f, l)| LeakSummary {
            fingerprint: f.clone(),
            leak: l.clone(),
        })
        .collect();
    v.sort_by(|a, b| a.leak.first_seen.total_cmp(&b.leak.first_seen));
    v
}

/// A slope in bytes a second as KiB an hour, signed.
pub fn per_hour(l: &Line) -> String {
    format!("{:+.0} KiB/h (r² {:.2})", l.slope * 3600.0 / 1024.0, l.r2)
}

/// The leaks as lines for people.
pub fn leak_lines(leaks: &[LeakSummary]) -> String {
    leaks
        .iter()
        .map(|l| {
            format!(
                "  {}  {:>5} objects {:>8} bytes  {}{}{}\n",
                utc(l.leak.first_seen),
                l.leak.objects,
                l.leak.bytes,
                l.leak.culprit.as_deref().unwrap_or("?"),
                l.leak
                    .module
                    .as_deref()
                    .map_or(String::new(), |m| format!(" [{m}]")),
                l.leak
                    .culprit_line
                    .as_deref()
                    .map_or(String::new(), |s| format!(" at {s}")),
            )
        })
        .collect()
}

impl Outcome for WatchRun {
    /// Failed when this run found new leaks or the kernel warned, oopsed or
    /// hit a BUG.
    fn verdict(&self) -> Verdict {
        let kernel = self
            .findings
            .keys()
            .any(|k| k != FindingKind::Kmemleak.name());
        Verdict::of(self.new_objects == 0 && !kernel)
    }

    fn human(&self) -> String {
        let mut out = format!(
            "watch: {} rounds in {:.0} s, stopped by {} ({} rounds on {} in all); {} new objects reported\n",
            self.rounds, self.seconds, self.stopped_by, self.rounds_total, self.dir, self.new_objects
        );
        if !self.leaks.is_empty() {
            out += "leaks found there (first seen, objects, bytes, culprit):\n";
            out += &leak_lines(&self.leaks);
        }
        out += &format!(
            "trend: Slab {} over the run, {} over the last hour; MemAvailable {} over the run\n",
            per_hour(&self.trends.slab),
            per_hour(&self.trends.slab_recent),
            per_hour(&self.trends.mem_available)
        );
        for (k, n) in &self.findings {
            out += &format!("kernel log: {n} {k} line(s)\n");
        }
        for w in &self.warnings {
            out += &format!("warning: {w}\n");
        }
        let e = &self.errors;
        if e.kmemleak + e.writes + e.dropped_samples > 0 {
            out += &format!(
                "health: {} failed kmemleak rounds, {} failed writes, {} samples given up\n",
                e.kmemleak, e.writes, e.dropped_samples
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{
        event::{grown, Grown},
        *,
    };
    use crate::{analysis::trend::Recent, kernel::procfs::SlabCounts};

    #[test]
    fn intervals_with_units_and_bad_ones_said_plainly() {
        assert_eq!(parse_interval("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("0"), Ok(Duration::ZERO));
        assert!(parse_interval("5 days").unwrap_err().contains("unit"));
        assert!(parse_interval("soon").unwrap_err().contains("not a time"));
        assert!(parse_interval("-1s").is_err());
    }

    #[test]
    fn the_slab_warning_needs_a_steady_rise_and_a_silent_kmemleak() {
        let mut r = Recent::new(RECENT, 10.0);
        for i in 0..120 {
            // 30 s apart for an hour: +1 KiB a sample, 34 bytes a second.
            r.add(f64::from(i) * 30.0, 1e6 + f64::from(i) * 1024.0 * 4.0);
        }
        let line = r.line();
        let end = 119.0 * 30.0;
        assert!(slab_warning(&line, 600.0, -1.0, end), "{line:?}");
        // Not for as long as asked.
        assert!(!slab_warning(&line, 7200.0, -1.0, end), "{line:?}");
        // kmemleak reported something in that time: no warning.
        assert!(!slab_warning(&line, 600.0, end - 60.0, end));
        // Flat, or noisy: none.
        let mut flat = Recent::new(RECENT, 10.0);
        for i in 0..120 {
            flat.add(f64::from(i) * 30.0, 1e6 + f64::from(i % 2) * 4096.0);
        }
        assert!(!slab_warning(&flat.line(), 600.0, -1.0, end));
    }

    #[test]
    fn grown_caches_the_most_bytes_first() {
        let counts = |v: &[(&str, i64, u64)]| -> SlabCounts {
            v.iter()
                .map(|(n, a, s)| {
                    (
                        n.to_string(),
                        crate::kernel::procfs::SlabCache {
                            active: *a,
                            object_size: *s,
                        },
                    )
                })
                .collect()
        };
        let before = counts(&[("kmalloc-64", 100, 64), ("dentry", 50, 192), ("gone", 5, 8)]);
        let after = counts(&[
            ("kmalloc-64", 110, 64),
            ("dentry", 40, 192),
            ("new", 2, 4096),
        ]);
        assert_eq!(
            grown(&before, &after),
            vec![
                Grown {
                    cache: "new".into(),
                    objects: 2,
                    bytes: 8192
                },
                Grown {
                    cache: "kmalloc-64".into(),
                    objects: 10,
                    bytes: 640
                },
            ]
        );
    }
}
