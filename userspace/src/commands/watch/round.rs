// SPDX-License-Identifier: GPL-2.0
//! The watch as it runs: a round's scan, the leaks it reports once, the
//! kernel log, the memory samples and their trends, the state kept.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    time::Instant,
};

use anyhow::Result;

use crate::{
    analysis::{
        findings::{findings, FindingKind},
        group::group,
        trend::{steady_growth, Fit, Line, Recent},
    },
    kernel::{
        clock::{boot_id, JiffyClock},
        interrupt::Interrupted,
        kmsg::KmsgWatch,
        procfs::{parse_slabinfo, MemInfo},
    },
    kmemleak::{report::Report, window::Window, Kmemleak, MIN_AGE},
    output::{schema::Schema, write_atomically},
    report::watch::{
        event::{grown, human_line, Event, Logged, EVENT_SCHEMA},
        log::EventLog,
        metrics,
        run::{Health, Trends, WatchRun},
        state::{Leak, State},
    },
    trace::allocinfo,
};

use super::{
    modules::Modules,
    options::{Options, LOG_LINES_A_ROUND, RECENT},
    running::{now, rss_kib, Watch},
};

impl<'o> Watch<'o> {
    /// The watch on `opts.out` (its state loaded for this boot), with the
    /// boot's id and what kmemleak is to it ("on", or why not).
    pub(super) fn open(opts: &'o Options, human: bool) -> Result<(Self, String, String)> {
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
        let w = Watch {
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
                schema: Schema::Watch.name().into(),
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
        Ok((w, boot, why))
    }
}

impl Watch<'_> {
    /// Logs `event` (and prints its line for people).
    pub(super) fn event(&mut self, event: Event) {
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
    pub(super) fn round(&mut self) -> Result<()> {
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
    pub(super) fn scan(&mut self) -> Result<Option<u64>> {
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
    pub(super) fn leak(&mut self, r: &Report, jiffies: Option<u64>, wall: f64) {
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
    pub(super) fn read_log(&mut self) {
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
    pub(super) fn sample(&mut self, reported: Option<u64>, round_seconds: f64) {
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
    pub(super) fn persist(&mut self) {
        let mut failed = !self.log.flush();
        failed |= self.state.save(&self.opts.out.join("state.json")).is_err();
        if let Some(path) = &self.opts.textfile {
            // Rendered before it is written: it shows the failed writes of
            // earlier rounds, and this round's log flush; a failure of this
            // write shows in the next round's file.
            let text = metrics::render(&self.figures());
            failed |= write_atomically(path, &text).is_err();
        }
        if failed {
            self.run.errors.writes += 1;
        }
        self.run.errors.dropped_samples = self.log.dropped;
    }
}

/// The least points before Slab's growth is called steady (over at least
/// `--trend-after`).
pub const TREND_MIN_POINTS: u64 = 10;
/// The least growth of Slab called a leak, bytes a second (about 5 MiB a
/// day).
pub const TREND_MIN_SLOPE: f64 = 64.0;

/// Whether Slab's recent `line` is a steady growth over `span` seconds at
/// least, with no new leak found during it (`last_leak` the time of the
/// last new one, `t` now).
fn slab_warning(line: &Line, span: f64, last_leak: f64, t: f64) -> bool {
    steady_growth(line, TREND_MIN_POINTS, span, TREND_MIN_SLOPE) && last_leak < t - line.span
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
