// SPDX-License-Identifier: GPL-2.0
//! The run a command that loads modules stands on: the detectors chosen
//! and opened ([`detectors`]); a run ([`run`]) that loads modules inside
//! their window, records where each sits, and harvests what each detector
//! saw once they are gone ([`harvest`] for the trace); a session
//! ([`session`]), a run of one module; the lab's run of its own samples
//! on them ([`lab`]), which `cycle`, `matrix` and doctor's canary share; and
//! the check of any module in cycles ([`check`]), which `check` and `sweep`
//! share.

pub mod check;
pub mod detectors;
pub mod harvest;
pub mod lab;
pub mod run;
pub mod session;
