// SPDX-License-Identifier: GPL-2.0
//! The event log's records (`DIR/events.jsonl`, schema
//! `leaklab.watch-event/1`), and each as a line for people.

use serde::{Deserialize, Serialize};

use crate::output::schema::Schema;
use crate::{analysis::findings::FindingKind, kernel::procfs::SlabCounts, output::utc};

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
pub const EVENT_SCHEMA: &str = Schema::WatchEvent.name();

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::procfs::SlabCounts;

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
