// SPDX-License-Identifier: GPL-2.0
//! The documents of `watch`: its run ([`run::WatchRun`], `leaklab.watch/1`),
//! its state and event log in the directory it writes ([`state`],
//! [`event`], [`log`]), its figures as a Prometheus textfile
//! ([`metrics`]), and that directory read back for `show` ([`view`]).

pub mod event;
pub mod log;
pub mod metrics;
pub mod run;
pub mod state;
pub mod view;

/// The recent stretch the trend warning looks at, seconds.
pub const RECENT: f64 = 3600.0;
