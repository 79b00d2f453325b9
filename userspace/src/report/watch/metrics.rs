// SPDX-License-Identifier: GPL-2.0
//! A running watch's figures as a Prometheus textfile: leaks by culprit and
//! module, the kernel's memory and its trend, and the watch's own health.
//! Counters end in `_total`, units are bytes and seconds.

use std::collections::BTreeMap;

use super::{
    log::EventLog,
    run::Health,
    state::{Leak, State},
};
use crate::{
    analysis::trend::Line,
    kernel::procfs::MemInfo,
    output::prometheus::{Exposition, Kind},
};

/// What the textfile shows of a running watch, read at the end of a round.
pub struct Figures<'a> {
    /// The state kept across restarts: leaks, findings, rounds.
    pub state: &'a State,
    /// The last sample: memory, objects reported, allocinfo's bytes, the
    /// round's seconds.
    pub last: Option<&'a (MemInfo, Option<u64>, Option<i64>, f64)>,
    /// Slab's trend over the run and over the last hour.
    pub slab: (Line, Line),
    /// MemAvailable's trend over the run and over the last hour.
    pub mem_available: (Line, Line),
    /// Whether kmemleak is there and its last round worked.
    pub kmemleak_up: bool,
    /// The run's failures.
    pub errors: &'a Health,
    /// The event log.
    pub log: &'a EventLog,
    /// Unix seconds now.
    pub now: f64,
    /// The watch's own resident memory, KiB.
    pub rss_kib: u64,
}

/// The textfile's text after the round just done.
pub fn render(w: &Figures) -> String {
    let mut e = Exposition::default();
    leaks(&mut e, w);
    memory(&mut e, w);
    health(&mut e, w);
    e.text().to_string()
}

/// The leaks reported, by culprit and module, and the kernel log's
/// findings, by kind.
fn leaks(e: &mut Exposition, w: &Figures) {
    // Several backtraces may share a culprit: one series each (culprit,
    // module), summed, as Prometheus takes a series once.
    let by_culprit = by_culprit(w.state.leaks.values());
    let objects = "leaklab_watch_leaked_objects_total";
    e.family(
        objects,
        Kind::Counter,
        "Objects kmemleak reported as leaked, each once, by culprit and module (all runs on the directory).",
    );
    for ((culprit, module), (n, _)) in &by_culprit {
        e.sample(
            objects,
            &[("culprit", culprit), ("module", module)],
            *n as f64,
        );
    }
    let bytes = "leaklab_watch_leaked_bytes_total";
    e.family(
        bytes,
        Kind::Counter,
        "Bytes of the objects reported as leaked, by culprit and module.",
    );
    for ((culprit, module), (_, b)) in &by_culprit {
        e.sample(
            bytes,
            &[("culprit", culprit), ("module", module)],
            *b as f64,
        );
    }
    let findings = "leaklab_watch_kernel_log_findings_total";
    e.family(
        findings,
        Kind::Counter,
        "Notable kernel log lines (warning, bug, oops, slab_still_has_objects, kmemleak), by kind.",
    );
    for (k, n) in &w.state.findings {
        e.sample(findings, &[("kind", k)], *n as f64);
    }
}

/// The kernel's memory at the last round, and its trend.
fn memory(e: &mut Exposition, w: &Figures) {
    if let Some((mem, reported, allocinfo, round)) = w.last {
        e.single(
            "leaklab_watch_mem_available_bytes",
            Kind::Gauge,
            "MemAvailable at the last round.",
            mem.mem_available as f64 * 1024.0,
        )
        .single(
            "leaklab_watch_slab_bytes",
            Kind::Gauge,
            "Slab at the last round.",
            mem.slab as f64 * 1024.0,
        )
        .single(
            "leaklab_watch_slab_unreclaimable_bytes",
            Kind::Gauge,
            "SUnreclaim at the last round.",
            mem.sunreclaim as f64 * 1024.0,
        )
        .single(
            "leaklab_watch_round_duration_seconds",
            Kind::Gauge,
            "Wall time of the last round.",
            *round,
        );
        if let Some(n) = reported {
            e.single(
                "leaklab_watch_kmemleak_reported_objects",
                Kind::Gauge,
                "Objects kmemleak reports now (old and new).",
                *n as f64,
            );
        }
        if let Some(b) = allocinfo {
            e.single(
                "leaklab_watch_allocinfo_bytes",
                Kind::Gauge,
                "Live bytes the kernel's allocation profiling counts (/proc/allocinfo).",
                *b as f64,
            );
        }
    }
    for (name, what, (run, hour)) in [
        ("slab", "Slab", w.slab),
        ("mem_available", "MemAvailable", w.mem_available),
    ] {
        let slope = format!("leaklab_watch_{name}_slope_bytes_per_second");
        let help = format!("Least-squares change of {what}, over the run and over the last hour.");
        e.family(&slope, Kind::Gauge, &help)
            .sample(&slope, &[("window", "run")], run.slope)
            .sample(&slope, &[("window", "hour")], hour.slope);
    }
}

/// The watch's own health: kmemleak's, its rounds, its failures, its
/// event log and its memory.
fn health(e: &mut Exposition, w: &Figures) {
    e.single(
        "leaklab_watch_kmemleak_up",
        Kind::Gauge,
        "1 when the last kmemleak round worked, 0 when kmemleak is absent, disabled or failing.",
        f64::from(u8::from(w.kmemleak_up)),
    )
    .single(
        "leaklab_watch_rounds_total",
        Kind::Counter,
        "Rounds run (all runs on the directory).",
        w.state.rounds as f64,
    )
    .single(
        "leaklab_watch_last_round_timestamp_seconds",
        Kind::Gauge,
        "When the last round ended (Unix time).",
        w.now,
    );
    let errors = "leaklab_watch_errors_total";
    let h = w.errors;
    e.family(errors, Kind::Counter, "The watch's failures this run: kmemleak rounds that failed, writes that failed (a full disk).")
        .sample(errors, &[("kind", "kmemleak")], h.kmemleak as f64)
        .sample(errors, &[("kind", "write")], (h.writes + u64::from(w.log.failing.is_some())) as f64);
    e.single(
        "leaklab_watch_log_writable",
        Kind::Gauge,
        "1 when the event log took every event, 0 while it cannot be written (events wait in memory).",
        f64::from(u8::from(w.log.failing.is_none())),
    )
    .single(
        "leaklab_watch_pending_events",
        Kind::Gauge,
        "Events waiting to be written to the event log.",
        w.log.pending() as f64,
    )
    .single(
        "leaklab_watch_dropped_samples_total",
        Kind::Counter,
        "Memory samples given up while the event log could not be written (leaks and findings never are).",
        w.log.dropped as f64,
    )
    .single(
        "leaklab_watch_resident_memory_bytes",
        Kind::Gauge,
        "The watch's own resident memory.",
        w.rss_kib as f64 * 1024.0,
    );
}

/// Objects and bytes of `leaks` by culprit and module (`?` and `kernel`
/// for none).
fn by_culprit<'a>(
    leaks: impl Iterator<Item = &'a Leak>,
) -> BTreeMap<(&'a str, &'a str), (u64, u64)> {
    let mut m: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for l in leaks {
        let key = (
            l.culprit.as_deref().unwrap_or("?"),
            l.module.as_deref().unwrap_or("kernel"),
        );
        let e = m.entry(key).or_default();
        e.0 = e.0.saturating_add(l.objects);
        e.1 = e.1.saturating_add(l.bytes);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtraces_of_one_culprit_are_one_series() {
        let leak = |c: &str, m: Option<&str>, n| Leak {
            culprit: Some(c.into()),
            module: m.map(str::to_string),
            objects: n,
            bytes: 64 * n,
            ..Leak::default()
        };
        let leaks = [
            leak("drip_leaky+0x17", Some("leaky_driver"), 2),
            leak("drip_leaky+0x17", Some("leaky_driver"), 3),
            leak("kstrdup+0x2e", None, 1),
        ];
        let m = by_culprit(leaks.iter());
        assert_eq!(m.len(), 2);
        assert_eq!(m[&("drip_leaky+0x17", "leaky_driver")], (5, 320));
        assert_eq!(m[&("kstrdup+0x2e", "kernel")], (1, 64));
    }
}
