//! `leaklab watch`: the long-running leak monitor. Each round scans with
//! kmemleak until two scans agree (its settings left as found), reports the
//! objects not reported before, samples the kernel's memory and reads the
//! kernel log; everything goes to an event log in DIR, the state that
//! makes a restart report nothing twice to `DIR/state.json`, and the
//! figures to a Prometheus textfile.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{
        findings::{findings, FindingKind},
        group::group,
        symbolize::Symbolizer,
        trend::{steady_growth, Fit, Line, Recent},
    },
    kernel::{
        clock::{boot_id, JiffyClock},
        interrupt::{self, Interrupted},
        kmsg::KmsgWatch,
        module::{Ko, ModuleLayout},
        procfs::{parse_slabinfo, MemInfo, SlabCounts},
    },
    kmemleak::{report::Report, window::Window, Kmemleak, MIN_AGE},
    output::{utc, write_atomically, Outcome, Verdict},
    trace::allocinfo,
};

pub mod log;
pub mod metrics;
pub mod state;
pub mod view;

use log::EventLog;
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

/// One event of the log (`DIR/events.jsonl`, one JSON object a line,
/// schema `leaklab.watch-event/1`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The watch started.
    Start {
        /// leaklab's version.
        version: String,
        /// The boot.
        boot_id: String,
        /// Seconds between rounds.
        interval: f64,
        /// `on`, or why kmemleak cannot be used.
        kmemleak: String,
        /// Rounds run on this directory before.
        rounds_before: u64,
    },
    /// An object kmemleak reports that was not reported before.
    Leak {
        /// Its address.
        address: String,
        /// Its bytes.
        size: u64,
        /// When it was allocated (Unix seconds), from its jiffies.
        allocated: Option<f64>,
        /// The allocating task.
        comm: Option<String>,
        /// Its pid.
        pid: Option<u32>,
        /// The allocation's jiffies.
        jiffies: Option<u64>,
        /// The backtrace's fingerprint, as `leaklab parse` groups.
        fingerprint: String,
        /// The first frame outside the allocator wrappers.
        culprit: Option<String>,
        /// Its source line, when the module's `.ko` was given.
        culprit_line: Option<String>,
        /// The module the culprit is in (`None`: the kernel).
        module: Option<String>,
        /// The first object of this backtrace ever found here.
        first: bool,
    },
    /// A notable kernel log line, or kmemleak failing.
    Finding {
        /// `warning`, `bug`, `oops`, `slab_still_has_objects`, `kmemleak`.
        finding: FindingKind,
        /// The line, or what failed.
        line: String,
    },
    /// The kernel's memory after a round.
    Sample {
        /// MemAvailable, KiB.
        mem_available_kib: i64,
        /// Slab, KiB.
        slab_kib: i64,
        /// SUnreclaim, KiB.
        sunreclaim_kib: i64,
        /// Objects kmemleak reports now (`None`: kmemleak unusable).
        reported: Option<u64>,
        /// The slab caches that grew most since the last sample.
        grew: Vec<Grown>,
        /// Live bytes of the kernel's allocation profiling
        /// (`/proc/allocinfo`), when it counts.
        allocinfo_bytes: Option<i64>,
        /// The round's wall time, seconds.
        round_seconds: f64,
        /// The watch's own resident memory, KiB.
        rss_kib: u64,
    },
    /// Slab grows steadily while kmemleak reports nothing new: a leak it
    /// cannot see (referenced, or pages).
    Trend {
        /// Slab's growth, bytes a second.
        slab_slope: f64,
        /// How straight it is (r²).
        r2: f64,
        /// Over how many seconds.
        span: f64,
    },
    /// The watch stopped.
    Stop {
        /// Rounds this run.
        rounds: u64,
        /// Why: `rounds`, `SIGTERM`, `SIGINT`.
        reason: String,
    },
}

/// An event with its envelope, as a line of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logged {
    /// `leaklab.watch-event/1`.
    pub schema: String,
    /// When (Unix seconds).
    pub time: f64,
    /// The round (over every run on the directory; 0 before the first).
    pub round: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// The schema of a log line.
pub const EVENT_SCHEMA: &str = "leaklab.watch-event/1";

/// A slab cache that grew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grown {
    /// The cache.
    pub cache: String,
    /// Active objects gained.
    pub objects: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// Caches reported as grown in a sample, the most bytes first.
const GROWN_SHOWN: usize = 5;
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

/// The slab caches that grew most from `before` to `after`.
pub fn grown(before: &SlabCounts, after: &SlabCounts) -> Vec<Grown> {
    let mut g: Vec<Grown> = after
        .iter()
        .filter_map(|(name, c)| {
            let objects = c.active - before.get(name).map_or(0, |b| b.active);
            (objects > 0).then(|| Grown {
                cache: name.clone(),
                objects,
                bytes: objects.saturating_mul(c.object_size as i64),
            })
        })
        .collect();
    g.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.cache.cmp(&b.cache)));
    g.truncate(GROWN_SHOWN);
    g
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

/// The watch as it runs.
struct Watch<'o> {
    opts: &'o Options,
    state: State,
    log: EventLog,
    modules: Modules,
    kmemleak: Option<Kmemleak>,
    kmemleak_up: bool,
    clock: Option<JiffyClock>,
    kmsg: Option<KmsgWatch>,
    slabs: Option<SlabCounts>,
    human: bool,
    run: WatchRun,
    fit_slab: Fit,
    fit_avail: Fit,
    recent_slab: Recent,
    recent_avail: Recent,
    last_new_leak: f64,
    warned_at: f64,
    /// The last sample: memory, objects reported, allocinfo's bytes, the
    /// round's seconds.
    last: Option<(MemInfo, Option<u64>, Option<i64>, f64)>,
}

impl Watch<'_> {
    /// Logs `event` (and prints its line for people).
    fn event(&mut self, event: Event) {
        let logged = Logged {
            schema: EVENT_SCHEMA.into(),
            time: now(),
            round: self.state.rounds,
            event,
        };
        if self.human {
            println!("{}", human_line(&logged));
            let _ = std::io::stdout().flush();
        }
        let is_sample = matches!(logged.event, Event::Sample { .. });
        if let Ok(line) = serde_json::to_string(&logged) {
            self.log.accept(line, is_sample);
        }
    }

    /// One round.
    fn round(&mut self) -> Result<()> {
        let started = Instant::now();
        self.state.rounds += 1;
        self.run.rounds += 1;
        self.modules.refresh();
        let reported = self.scan()?;
        self.read_log();
        self.sample(reported, started.elapsed().as_secs_f64());
        self.persist();
        Ok(())
    }

    /// The kmemleak part of a round: the objects reported now, new ones
    /// logged; `None` when kmemleak cannot be used.
    fn scan(&mut self) -> Result<Option<u64>> {
        let Some(k) = &self.kmemleak else {
            return Ok(None);
        };
        // Objects younger than kmemleak's minimum age are not waited for:
        // the next round reports them.
        let youngest = Instant::now()
            .checked_sub(MIN_AGE)
            .unwrap_or_else(Instant::now);
        let settled = Window::open_as_found(k).and_then(|w| w.close(youngest));
        let settled = match settled {
            Ok(s) => s,
            Err(e) if e.is::<Interrupted>() => return Err(e),
            Err(e) => {
                self.run.errors.kmemleak += 1;
                if self.kmemleak_up {
                    self.kmemleak_up = false;
                    self.event(Event::Finding {
                        finding: FindingKind::Kmemleak,
                        line: format!("{e:#}"),
                    });
                }
                return Ok(None);
            }
        };
        self.kmemleak_up = true;
        let (jiffies, wall) = (self.clock.and_then(|c| c.now()), now());
        let key = |r: &Report| (r.address, r.jiffies.unwrap_or(0));
        let present: BTreeSet<(u64, u64)> = settled.reports.iter().map(key).collect();
        let new: BTreeSet<(u64, u64)> = self.state.take(present).into_iter().collect();
        let mut fresh: Vec<&Report> = settled
            .reports
            .iter()
            .filter(|r| new.contains(&key(r)))
            .collect();
        fresh.sort_by_key(|r| (r.jiffies, r.address));
        for r in fresh {
            self.leak(r, jiffies, wall);
        }
        Ok(Some(settled.reports.len() as u64))
    }

    /// Logs a new object and counts it under its backtrace.
    fn leak(&mut self, r: &Report, jiffies: Option<u64>, wall: f64) {
        let Some(g) = group(std::slice::from_ref(r), &self.modules.sym).pop() else {
            return;
        };
        let allocated = self
            .clock
            .zip(r.jiffies)
            .zip(jiffies)
            .map(|((c, then), now)| c.wall_of(then, now, wall));
        let first = !self.state.leaks.contains_key(&g.fingerprint);
        let leak = self
            .state
            .leaks
            .entry(g.fingerprint.clone())
            .or_insert_with(|| Leak {
                culprit: g.culprit.clone(),
                culprit_line: g.culprit_line.clone(),
                module: g.module.clone(),
                first_seen: wall,
                ..Leak::default()
            });
        leak.last_seen = wall;
        leak.objects += 1;
        leak.bytes = leak.bytes.saturating_add(r.size);
        if leak.culprit_line.is_none() {
            leak.culprit_line = g.culprit_line.clone();
        }
        self.run.new_objects += 1;
        self.last_new_leak = wall;
        self.event(Event::Leak {
            address: format!("{:#x}", r.address),
            size: r.size,
            allocated,
            comm: r.comm.clone(),
            pid: r.pid,
            jiffies: r.jiffies,
            fingerprint: g.fingerprint,
            culprit: g.culprit,
            culprit_line: g.culprit_line,
            module: g.module,
            first,
        });
    }

    /// The kernel log since the last round: its notable lines.
    fn read_log(&mut self) {
        let Some(kmsg) = &mut self.kmsg else {
            return;
        };
        let lines = kmsg.drain_at_most(LOG_LINES_A_ROUND);
        for f in findings(&lines) {
            *self.state.findings.entry(f.kind.name().into()).or_default() += 1;
            *self.run.findings.entry(f.kind.name().into()).or_default() += 1;
            if f.kind == FindingKind::Kmemleak {
                self.kmemleak_up = false;
            }
            self.event(Event::Finding {
                finding: f.kind,
                line: f.line,
            });
        }
    }

    /// The kernel's memory now, and the trends.
    fn sample(&mut self, reported: Option<u64>, round_seconds: f64) {
        let Ok(mem) = MemInfo::read() else {
            return;
        };
        let slabs = std::fs::read_to_string("/proc/slabinfo")
            .ok()
            .map(|t| parse_slabinfo(&t));
        let grew = match (&self.slabs, &slabs) {
            (Some(b), Some(a)) => grown(b, a),
            _ => Vec::new(),
        };
        self.slabs = slabs;
        let allocinfo_bytes = allocinfo::read()
            .ok()
            .flatten()
            .map(|sites| sites.iter().fold(0i64, |t, s| t.saturating_add(s.bytes)));
        let t = now();
        let (slab, avail) = (mem.slab as f64 * 1024.0, mem.mem_available as f64 * 1024.0);
        self.fit_slab.add(t, slab);
        self.fit_avail.add(t, avail);
        self.recent_slab.add(t, slab);
        self.recent_avail.add(t, avail);
        self.last = Some((mem, reported, allocinfo_bytes, round_seconds));
        self.event(Event::Sample {
            mem_available_kib: mem.mem_available,
            slab_kib: mem.slab,
            sunreclaim_kib: mem.sunreclaim,
            reported,
            grew,
            allocinfo_bytes,
            round_seconds,
            rss_kib: rss_kib(),
        });
        let line = self.recent_slab.line();
        let after = self.opts.trend_after.as_secs_f64();
        if slab_warning(&line, after, self.last_new_leak, t) && t - self.warned_at > RECENT {
            self.warned_at = t;
            let w = format!(
                "Slab grew {:.0} KiB an hour for {:.0} min (r² {:.2}) while kmemleak reported nothing new: a leak it cannot see (objects still referenced, or pages)",
                line.slope * 3600.0 / 1024.0,
                line.span / 60.0,
                line.r2
            );
            self.run.warnings.push(w);
            self.event(Event::Trend {
                slab_slope: line.slope,
                r2: line.r2,
                span: line.span,
            });
        }
    }

    /// Writes the log, the state and the textfile; failures are counted,
    /// and what the log could not take is kept for the next round.
    fn persist(&mut self) {
        let mut failed = !self.log.flush();
        failed |= self.state.save(&self.opts.out.join("state.json")).is_err();
        if let Some(path) = &self.opts.textfile {
            // Rendered before it is written: it shows the failed writes of
            // earlier rounds, and this round's log flush; a failure of this
            // write shows in the next round's file.
            let text = metrics::render(self);
            failed |= write_atomically(path, &text).is_err();
        }
        if failed {
            self.run.errors.writes += 1;
        }
        self.run.errors.dropped_samples = self.log.dropped;
    }
}

/// Whether Slab's recent `line` is a steady growth over `span` seconds at
/// least, with no new leak found during it (`last_leak` the time of the
/// last new one, `t` now).
pub fn slab_warning(line: &Line, span: f64, last_leak: f64, t: f64) -> bool {
    steady_growth(line, TREND_MIN_POINTS, span, TREND_MIN_SLOPE) && last_leak < t - line.span
}

/// An event as a line for people.
pub fn human_line(l: &Logged) -> String {
    let t = utc(l.time);
    let t = t.get(11..19).unwrap_or(&t);
    let body = match &l.event {
        Event::Start {
            boot_id,
            interval,
            kmemleak,
            rounds_before,
            ..
        } => format!(
            "watching every {interval} s (kmemleak {kmemleak}; boot {boot_id}; {rounds_before} rounds before)"
        ),
        Event::Leak {
            address,
            size,
            allocated,
            comm,
            culprit,
            culprit_line,
            module,
            first,
            fingerprint,
            ..
        } => format!(
            "leak: {size} bytes at {address}{}{}, in {}{}{}{}",
            allocated.map_or(String::new(), |a| format!(
                ", allocated {}",
                utc(a).get(11..19).unwrap_or("?")
            )),
            comm.as_deref().map_or(String::new(), |c| format!(" by {c}")),
            culprit.as_deref().unwrap_or("?"),
            module.as_deref().map_or(String::new(), |m| format!(" [{m}]")),
            culprit_line
                .as_deref()
                .map_or(String::new(), |s| format!(" at {s}")),
            if *first {
                format!(" (new backtrace {fingerprint})")
            } else {
                String::new()
            }
        ),
        Event::Finding { finding, line } => format!("kernel log: {finding}: {line}"),
        Event::Sample {
            mem_available_kib,
            slab_kib,
            reported,
            ..
        } => format!(
            "round {}: MemAvailable {:.1} MiB, Slab {:.1} MiB, {}",
            l.round,
            *mem_available_kib as f64 / 1024.0,
            *slab_kib as f64 / 1024.0,
            reported.map_or("kmemleak unusable".into(), |n| format!(
                "kmemleak reports {n} objects"
            ))
        ),
        Event::Trend {
            slab_slope,
            r2,
            span,
        } => format!(
            "warning: Slab grew {:.0} KiB an hour for {:.0} min (r² {r2:.2}) while kmemleak reported nothing new",
            slab_slope * 3600.0 / 1024.0,
            span / 60.0
        ),
        Event::Stop { rounds, reason } => format!("stopped after {rounds} rounds ({reason})"),
    };
    format!("{t} {body}")
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
    let boot = boot_id();
    let state = State::load(&opts.out.join("state.json"), &boot)?;
    let (kmemleak, why) = match Kmemleak::open() {
        Ok(k) => (Some(k), "on".to_string()),
        Err(e) => (
            None,
            format!("unusable ({e:#}): memory is sampled, leaks are not reported"),
        ),
    };
    // Points at least this far apart for the last hour's line: enough of
    // them within --trend-after, never more than 36000.
    let spacing = (opts.trend_after.as_secs_f64() / 60.0).clamp(0.1, 10.0);
    let mut w = Watch {
        opts,
        log: EventLog::new(&opts.out, opts.log_mib << 20, opts.log_keep),
        modules: Modules::open(&opts.kos)?,
        kmemleak_up: kmemleak.is_some(),
        kmemleak,
        clock: JiffyClock::open(),
        kmsg: KmsgWatch::start().ok(),
        slabs: std::fs::read_to_string("/proc/slabinfo")
            .ok()
            .map(|t| parse_slabinfo(&t)),
        human,
        run: WatchRun {
            schema: "leaklab.watch/1".into(),
            dir: opts.out.display().to_string(),
            rounds: 0,
            rounds_total: 0,
            seconds: 0.0,
            new_objects: 0,
            leaks: Vec::new(),
            findings: BTreeMap::new(),
            trends: Trends::default(),
            warnings: Vec::new(),
            errors: Health::default(),
            stopped_by: String::new(),
        },
        fit_slab: Fit::default(),
        fit_avail: Fit::default(),
        recent_slab: Recent::new(RECENT, spacing),
        recent_avail: Recent::new(RECENT, spacing),
        last_new_leak: now(),
        warned_at: f64::NEG_INFINITY,
        last: None,
        state,
    };
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
    use super::*;

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
