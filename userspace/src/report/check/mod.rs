// SPDX-License-Identifier: GPL-2.0
//! The document of `check` ([`Check`]): the module's leaks by backtrace,
//! each detector's apart, the cycles run, and its renderings.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{analysis::detector::Detector, trace::allocinfo::AllocInfo};

mod html;
mod render;

/// A place the module leaks from: reports with the same backtrace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leak {
    /// `memory leak in <function>`, for CI to deduplicate with.
    pub title: Option<String>,
    /// The first frame outside the allocator wrappers.
    pub culprit: Option<String>,
    /// Its source line, from the module's DWARF.
    pub culprit_line: Option<String>,
    /// Objects reported.
    pub objects: usize,
    /// Their bytes together.
    pub bytes: u64,
    /// Objects per cycle that allocated them (cycles without any left out).
    pub per_cycle: BTreeMap<u32, usize>,
    /// The cycle the first of them was allocated in.
    pub first_cycle: Option<u32>,
    /// Objects whose cycle is not known (allocated by a task no cycle
    /// started: a kworker, a timer, an interrupt).
    pub unknown_cycle: usize,
    /// The allocating tasks' names.
    pub comms: Vec<String>,
    /// The backtrace of the first object, symbolized, innermost first.
    pub frames: Vec<String>,
    /// The fingerprint of the backtrace, as `parse` and `scan` give it.
    pub fingerprint: String,
}

impl Leak {
    /// The order a check lists its leaks in: most objects first, then most
    /// bytes; the fingerprint only breaks ties, so that a rebuild that
    /// moves code (and so the frames' offsets) keeps the order.
    pub fn listed_order(&self, other: &Self) -> std::cmp::Ordering {
        other
            .objects
            .cmp(&self.objects)
            .then(other.bytes.cmp(&self.bytes))
            .then(self.fingerprint.cmp(&other.fingerprint))
    }
}

/// What `check` found.
#[derive(Debug, Serialize, Deserialize)]
pub struct Check {
    /// Schema name and version of this JSON document.
    pub schema: String,
    /// The running kernel's release.
    pub kernel: String,
    /// The module's name.
    pub module: String,
    /// Its file.
    pub path: PathBuf,
    /// The parameters it was loaded with.
    pub params: Vec<String>,
    /// The exercise scripts.
    pub exercise: Vec<PathBuf>,
    /// Whether it stayed loaded through the scans.
    pub kept_loaded: bool,
    /// The cycles run.
    pub cycles: Vec<CycleRecord>,
    /// The module's leaks, the most objects first.
    pub leaks: Vec<Leak>,
    /// Reports not in the module's code paths, listed apart and not held
    /// against it.
    pub outside: Vec<Leak>,
    /// Scans after the last cycle.
    pub scans: usize,
    /// Whether two scans in a row agreed.
    pub stable: bool,
    /// Whether kmemleak scanned task stacks (it does for any module).
    pub stacks_scanned: bool,
    /// What kmemleak cannot see.
    pub blind_spots: String,
    /// The detectors that judged (`kmemleak`, `trace`); `leaks`, `outside`
    /// and `scans` are kmemleak's.
    pub detectors: Vec<Detector>,
    /// What the allocation trace found, when it judged.
    pub trace: Option<TraceCheck>,
    /// What the kernel's allocation profiling saw, where it is on: a view
    /// beside the verdict, not part of it.
    pub allocinfo: Option<AllocInfo>,
}

/// The allocation trace's findings.
#[derive(Debug, Serialize, Deserialize)]
pub struct TraceCheck {
    /// The module's allocations (and vmalloc areas) not freed once it was
    /// gone, by backtrace, the most objects first.
    pub leaks: Vec<Leak>,
    /// Events read.
    pub events: u64,
    /// Events lost to a full ring buffer: the check is inconclusive then.
    pub lost: u64,
    /// What the trace could not decide (a failed init whose code could not
    /// be placed): the check is inconclusive then. Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undecided: Vec<String>,
    /// What it cannot see.
    pub blind_spots: String,
}

impl TraceCheck {
    /// Whether it could not decide: events were lost, or a failed init's
    /// code could not be placed.
    pub fn undecided(&self) -> bool {
        self.lost > 0 || !self.undecided.is_empty()
    }
}

/// Objects and bytes of `leaks` together.
pub fn total(leaks: &[Leak]) -> (usize, u64) {
    leaks.iter().fold((0, 0), |(o, b), l| {
        (o.saturating_add(l.objects), b.saturating_add(l.bytes))
    })
}

impl Check {
    /// Objects and bytes the module leaked, by kmemleak.
    pub fn leaked(&self) -> (usize, u64) {
        total(&self.leaks)
    }

    /// The trace's leaks (none when it did not judge).
    pub fn traced_leaks(&self) -> &[Leak] {
        self.trace.as_ref().map_or(&[], |t| &t.leaks)
    }

    /// The cycle that would not unload the module, if one would not.
    pub fn stuck(&self) -> Option<&CycleRecord> {
        self.cycles.iter().find(|c| c.unloaded == Some(false))
    }
}

/// One cycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CycleRecord {
    /// Its number, from 1.
    pub cycle: u32,
    /// Whether the module loaded.
    pub loaded: bool,
    /// What its init returned when it failed (`-ENODEV (No such device)`).
    pub init_error: Option<String>,
    /// The exercise scripts' exit statuses, in order.
    pub exercise: Vec<i32>,
    /// Whether it unloaded (`None`: it never loaded).
    pub unloaded: Option<bool>,
    /// Why it did not unload.
    pub unload_error: Option<String>,
    /// Objects of the module's leaks allocated in this cycle.
    pub leaked: usize,
}
