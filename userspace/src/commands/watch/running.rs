// SPDX-License-Identifier: GPL-2.0
//! The state of a watch as it runs, and what it reads of itself (the
//! time, its memory): its rounds ([`super::round`]) work on it, and its
//! textfile is drawn from its [`Figures`].

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{
    analysis::trend::{Fit, Recent},
    kernel::{
        clock::JiffyClock,
        kmsg::KmsgWatch,
        procfs::{MemInfo, SlabCounts},
    },
    kmemleak::Kmemleak,
};

use super::{modules::Modules, options::Options};
use crate::report::watch::{log::EventLog, metrics::Figures, run::WatchRun, state::State};

/// The watch as it runs.
pub(super) struct Watch<'o> {
    pub(super) opts: &'o Options,
    pub(super) state: State,
    pub(super) log: EventLog,
    pub(super) modules: Modules,
    pub(super) kmemleak: Option<Kmemleak>,
    pub(super) kmemleak_up: bool,
    pub(super) clock: Option<JiffyClock>,
    pub(super) kmsg: Option<KmsgWatch>,
    pub(super) slabs: Option<SlabCounts>,
    pub(super) human: bool,
    pub(super) run: WatchRun,
    pub(super) fit_slab: Fit,
    pub(super) fit_avail: Fit,
    pub(super) recent_slab: Recent,
    pub(super) recent_avail: Recent,
    pub(super) last_new_leak: f64,
    pub(super) warned_at: f64,
    /// The last sample: memory, objects reported, allocinfo's bytes, the
    /// round's seconds.
    pub(super) last: Option<(MemInfo, Option<u64>, Option<i64>, f64)>,
}

impl Watch<'_> {
    /// What its textfile shows now.
    pub(super) fn figures(&self) -> Figures<'_> {
        Figures {
            state: &self.state,
            last: self.last.as_ref(),
            slab: (self.fit_slab.line(), self.recent_slab.line()),
            mem_available: (self.fit_avail.line(), self.recent_avail.line()),
            kmemleak_up: self.kmemleak_up && self.kmemleak.is_some(),
            errors: &self.run.errors,
            log: &self.log,
            now: now(),
            rss_kib: rss_kib(),
        }
    }
}

/// Unix seconds now.
pub(super) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The process's resident memory, KiB.
pub(super) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| crate::kernel::procfs::meminfo_field(&s, "VmRSS:"))
        .unwrap_or(0)
}
