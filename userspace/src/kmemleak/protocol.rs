// SPDX-License-Identifier: GPL-2.0
//! The scan protocol: how leaklab gets a trustworthy set of reports out of
//! kmemleak (Documentation/scan-protocol.md).
//!
//! kmemleak reports an object once it is at least 5 s old and no scan found
//! a pointer to it, and only after a scan saw its contents unchanged since
//! the scan before. A single scan right after the work misses young objects;
//! a fixed sleep is too short on a slow machine and wasted on a fast one; the
//! auto-scan thread scans whenever it likes and marks objects reported behind
//! the protocol's back. The protocol is a small state machine:
//!
//! ```text
//!  Idle --begin--> Paused --cleared--> Quieting --stack=off|on--> Open --work done--> Aging
//!   (auto-scan stopped,      (old reports       (task stacks not         (waits until the youngest
//!    noted to restore)        flushed)           scanned for the lab's    object is old enough)
//!                                                samples, scanned for
//!                                                any other module)
//!
//!  Aging --ripe--> Scanning --same set twice--> Settled { stable: true }
//!                     |  \--MAX_SCANS scans--> Settled { stable: false }
//!                     \--log: disabled / out of pool--> Failed
//!  any state --kmemleak refuses a command--> Failed
//!  leaving (Settled, Failed, or an error): stack scanning and auto-scan
//!  restored as they were
//! ```
//!
//! [`Protocol`] is the machine alone (no I/O, tested below); [`Window`]
//! drives it against the kernel.

use std::{collections::BTreeSet, time::Instant};

use super::MIN_AGE;

/// The most scans after the age window before the set is taken as it is
/// (and the answer called inconclusive). Two agreeing scans settle a
/// matrix in 3 or 4; a guest full of leaks (`faults` fills a 1 MiB cap in
/// 128 MiB: thousands of objects) took more than 6 once under load.
pub const MAX_SCANS: usize = 12;

/// Where the protocol is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing done yet.
    Idle,
    /// The auto-scan thread is stopped.
    Paused {
        /// Earlier reports are to be flushed.
        flush: bool,
    },
    /// Stack scanning is being set for the window ([`Stacks`]).
    Quieting,
    /// Ready for the work: what is reported from now on is new (unless the
    /// window keeps earlier reports).
    Open,
    /// Waiting for the youngest object of the work to reach the minimum age.
    Aging {
        /// When it does.
        ripe: Instant,
    },
    /// Scanning until two scans in a row report the same set.
    Scanning {
        /// Scans so far (the one that gives new objects their checksum included).
        scans: usize,
        /// The set the last scan reported.
        previous: Option<BTreeSet<u64>>,
    },
    /// The set is final.
    Settled {
        /// Two scans agreed (else the scan limit was reached first).
        stable: bool,
        /// Scans run.
        scans: usize,
    },
    /// kmemleak cannot give an answer.
    Failed(String),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The protocol starts; whether the auto-scan thread was running.
    Begin {
        /// The `kmemleak` kernel thread exists.
        auto_scan: bool,
        /// Flush earlier reports (else they count too).
        flush: bool,
    },
    /// `scan` then `clear` went through.
    Cleared,
    /// The caller's work is done; its last allocation was at `youngest`.
    WorkDone {
        /// When the youngest object of interest was allocated (at the latest).
        youngest: Instant,
    },
    /// Time passed.
    Now(Instant),
    /// A scan ran and the report file listed these objects.
    Scanned(BTreeSet<u64>),
    /// The kernel log said something about kmemleak.
    Log(String),
    /// kmemleak refused a command (the reason, ready to print).
    Refused(String),
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `scan=off`.
    StopAutoScan,
    /// Write `scan`, then `clear`.
    ScanAndClear,
    /// Write `stack=off` (`false`) or `stack=on` (`true`), as the
    /// protocol's [`Stacks`] says.
    StackScan(bool),
    /// Let the caller do its work.
    Work,
    /// Sleep until then.
    SleepUntil(Instant),
    /// Write `scan`, then read the report file.
    Scan,
    /// Nothing more: read the result.
    Finish,
}

/// Whether kmemleak scans task stacks in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stacks {
    /// Not scanned: the lab's own samples. kmemleak scans each stack whole,
    /// dead frames below the stack pointer too, and a stale copy there (of
    /// a leak, or of the object that last had its slot) keeps a leak from
    /// being reported. The lab's samples keep nothing on a stack, so
    /// nothing real is missed.
    Ignored,
    /// Scanned (kmemleak's default): any other module, which may keep an
    /// object only in a local of a sleeping thread; without the stacks
    /// that object would be reported, a false leak
    /// (Documentation/scan-protocol.md has the measurement).
    Scanned,
    /// Left as the user set it, no `stack=` written, and the auto-scan
    /// thread left alone too: a monitor on someone else's machine
    /// (`leaklab watch`). kmemleak does not say how stack scanning is set,
    /// so a window that wrote it could not put it back.
    AsFound,
}

/// The protocol's state machine.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// Where it is.
    pub state: State,
    /// The stack scanning the window asks for.
    pub stacks: Stacks,
    /// The auto-scan thread was running when the protocol began: turn it
    /// back on when leaving.
    pub restore_auto_scan: bool,
    /// `stack=off` went through: `stack=on` (kmemleak's default) on
    /// leaving. (kmemleak does not say how it was set; leaklab leaves it on.)
    pub restore_stack_scan: bool,
}

impl Default for Protocol {
    fn default() -> Self {
        Self::new()
    }
}

impl Protocol {
    /// A protocol in [`State::Idle`] for the lab's samples
    /// ([`Stacks::Ignored`]).
    pub fn new() -> Self {
        Self::with_stacks(Stacks::Ignored)
    }

    /// A protocol in [`State::Idle`] that sets stack scanning so.
    pub fn with_stacks(stacks: Stacks) -> Self {
        Self {
            state: State::Idle,
            stacks,
            restore_auto_scan: false,
            restore_stack_scan: false,
        }
    }

    /// The state and action that set stack scanning for the window, or
    /// open it at once when stack scanning is left as found.
    fn quiet(&self) -> (State, Action) {
        match self.stacks {
            Stacks::AsFound => (State::Open, Action::Work),
            s => (State::Quieting, Action::StackScan(s == Stacks::Scanned)),
        }
    }

    /// Takes `event` and says what to do next.
    pub fn step(&mut self, event: Event) -> Action {
        use {Action as A, Event as E, State as S};
        if let E::Refused(reason) = &event {
            self.state = S::Failed(reason.clone());
            return A::Finish;
        }
        if let E::Log(line) = &event {
            if let Some(reason) = log_failure(line) {
                self.state = S::Failed(reason);
                return A::Finish;
            }
        }
        let (state, action) = match (std::mem::replace(&mut self.state, S::Idle), event) {
            // A monitor's window changes nothing: its rounds read the whole
            // report each time, so the auto-scan thread marking objects
            // reported does not hide them; and stopped and started again
            // each round, the thread would scan at once and log twice.
            (S::Idle, E::Begin { flush: false, .. }) if self.stacks == Stacks::AsFound => {
                (S::Open, A::Work)
            }
            (S::Idle, E::Begin { auto_scan, flush }) => {
                self.restore_auto_scan = auto_scan;
                match (auto_scan, flush) {
                    (true, _) => (S::Paused { flush }, A::StopAutoScan),
                    (false, true) => (S::Paused { flush }, A::ScanAndClear),
                    (false, false) => self.quiet(),
                }
            }
            // `scan=off` went through (a `Now` after StopAutoScan).
            (S::Paused { flush: true }, E::Now(_)) => (S::Paused { flush: true }, A::ScanAndClear),
            (S::Paused { flush: false }, E::Now(_)) => self.quiet(),
            (S::Paused { .. }, E::Cleared) => self.quiet(),
            // `stack=off` or `stack=on` went through.
            (S::Quieting, E::Now(_)) => {
                self.restore_stack_scan = self.stacks == Stacks::Ignored;
                (S::Open, A::Work)
            }
            (S::Open, E::WorkDone { youngest }) => {
                let ripe = youngest + MIN_AGE;
                (S::Aging { ripe }, A::SleepUntil(ripe))
            }
            (S::Aging { ripe }, E::Now(now)) if now >= ripe => (
                S::Scanning {
                    scans: 0,
                    previous: None,
                },
                A::Scan,
            ),
            (S::Aging { ripe }, E::Now(_)) => (S::Aging { ripe }, A::SleepUntil(ripe)),
            (S::Scanning { scans, previous }, E::Scanned(set)) => {
                let scans = scans + 1;
                if previous.as_ref() == Some(&set) {
                    (
                        S::Settled {
                            stable: true,
                            scans,
                        },
                        A::Finish,
                    )
                } else if scans >= MAX_SCANS {
                    (
                        S::Settled {
                            stable: false,
                            scans,
                        },
                        A::Finish,
                    )
                } else {
                    (
                        S::Scanning {
                            scans,
                            previous: Some(set),
                        },
                        A::Scan,
                    )
                }
            }
            // Other log lines change nothing.
            (s, E::Log(_)) => {
                let a = match &s {
                    S::Scanning { .. } => A::Scan,
                    S::Aging { ripe } => A::SleepUntil(*ripe),
                    S::Open => A::Work,
                    _ => A::Finish,
                };
                (s, a)
            }
            (s @ (S::Settled { .. } | S::Failed(_)), _) => (s, A::Finish),
            (s, e) => (
                S::Failed(format!(
                    "scan protocol: {e:?} is not expected in state {s:?} (a leaklab bug)"
                )),
                A::Finish,
            ),
        };
        self.state = state;
        action
    }
}

/// What a kernel log line says about kmemleak that makes its answer
/// worthless, ready to print, or `None`.
pub fn log_failure(line: &str) -> Option<String> {
    let l = line.trim();
    let body = l.strip_prefix("kmemleak:")?.trim();
    if body.contains("Memory pool empty")
        || body.contains("Cannot allocate a kmemleak_object")
        || body.contains("out of memory")
    {
        Some(format!(
            "kmemleak ran out of metadata memory and disabled itself ({body}): boot with a larger CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE, or less leaking"
        ))
    } else if body.contains("Kernel memory leak detector disabled") || body.contains("disabled") {
        Some(format!(
            "kmemleak is disabled ({body}): boot without kmemleak=off, and see the kernel log for why it stopped"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(a: &[u64]) -> BTreeSet<u64> {
        a.iter().copied().collect()
    }

    /// Runs a protocol to the age window; returns it and the ripe time.
    fn to_scanning(auto_scan: bool, youngest: Instant) -> Protocol {
        let mut p = Protocol::new();
        let a = p.step(Event::Begin {
            auto_scan,
            flush: true,
        });
        if auto_scan {
            assert_eq!(a, Action::StopAutoScan);
            assert_eq!(p.step(Event::Now(youngest)), Action::ScanAndClear);
        } else {
            assert_eq!(a, Action::ScanAndClear);
        }
        assert_eq!(p.step(Event::Cleared), Action::StackScan(false));
        assert!(!p.restore_stack_scan);
        assert_eq!(p.step(Event::Now(youngest)), Action::Work);
        assert!(p.restore_stack_scan);
        assert_eq!(p.state, State::Open);
        let ripe = youngest + MIN_AGE;
        assert_eq!(
            p.step(Event::WorkDone { youngest }),
            Action::SleepUntil(ripe)
        );
        p
    }

    #[test]
    fn a_watch_window_changes_nothing() {
        for auto_scan in [true, false] {
            let mut p = Protocol::with_stacks(Stacks::AsFound);
            // Neither `scan=off`, `clear` nor `stack=`: straight to the work,
            // and nothing to restore.
            let a = p.step(Event::Begin {
                auto_scan,
                flush: false,
            });
            assert_eq!(a, Action::Work);
            assert_eq!(p.state, State::Open);
            assert!(!p.restore_stack_scan && !p.restore_auto_scan);
        }
    }

    #[test]
    fn waits_for_the_youngest_object_not_a_fixed_time() {
        let t0 = Instant::now();
        let mut p = to_scanning(false, t0);
        // Woken early (a signal, a short sleep): it sleeps again until ripe.
        let early = t0 + Duration::from_secs(1);
        assert_eq!(p.step(Event::Now(early)), Action::SleepUntil(t0 + MIN_AGE));
        assert_eq!(p.step(Event::Now(t0 + MIN_AGE)), Action::Scan);
        // Work that ended long ago needs no wait at all.
        let mut old = to_scanning(false, t0);
        assert_eq!(
            old.step(Event::Now(t0 + Duration::from_secs(60))),
            Action::Scan
        );
    }

    #[test]
    fn settles_when_two_scans_agree() {
        let t0 = Instant::now();
        let mut p = to_scanning(true, t0);
        assert!(p.restore_auto_scan);
        p.step(Event::Now(t0 + MIN_AGE));
        assert_eq!(p.step(Event::Scanned(set(&[]))), Action::Scan);
        assert_eq!(p.step(Event::Scanned(set(&[1, 2]))), Action::Scan);
        assert_eq!(
            p.step(Event::Log("random: crng init done".into())),
            Action::Scan
        );
        assert_eq!(p.step(Event::Scanned(set(&[1, 2]))), Action::Finish);
        assert_eq!(
            p.state,
            State::Settled {
                stable: true,
                scans: 3
            }
        );
    }

    #[test]
    fn a_set_that_keeps_changing_stops_at_the_limit_marked_unstable() {
        let t0 = Instant::now();
        let mut p = to_scanning(false, t0);
        p.step(Event::Now(t0 + MIN_AGE));
        for i in 0..MAX_SCANS as u64 - 1 {
            assert_eq!(p.step(Event::Scanned(set(&[i]))), Action::Scan);
        }
        assert_eq!(p.step(Event::Scanned(set(&[99]))), Action::Finish);
        assert_eq!(
            p.state,
            State::Settled {
                stable: false,
                scans: MAX_SCANS
            }
        );
    }

    #[test]
    fn kmemleak_trouble_fails_with_the_reason() {
        let t0 = Instant::now();
        let mut p = to_scanning(true, t0);
        p.step(Event::Now(t0 + MIN_AGE));
        let a = p.step(Event::Log(
            "kmemleak: Memory pool empty, consider increasing CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE"
                .into(),
        ));
        assert_eq!(a, Action::Finish);
        let State::Failed(reason) = &p.state else {
            panic!("{:?}", p.state)
        };
        assert!(
            reason.starts_with("kmemleak ran out of metadata memory"),
            "{reason}"
        );
        // Restoring the auto-scan thread does not depend on how it ended.
        assert!(p.restore_auto_scan);
        // A refused command from the start.
        let mut q = Protocol::new();
        q.step(Event::Begin {
            auto_scan: false,
            flush: true,
        });
        assert_eq!(
            q.step(Event::Refused("kmemleak is disabled".into())),
            Action::Finish
        );
        assert_eq!(q.state, State::Failed("kmemleak is disabled".into()));
        assert!(!q.restore_auto_scan);
    }

    #[test]
    fn without_flush_the_work_starts_at_once() {
        let mut p = Protocol::new();
        let begin = |auto_scan| Event::Begin {
            auto_scan,
            flush: false,
        };
        assert_eq!(p.step(begin(false)), Action::StackScan(false));
        assert_eq!(p.step(Event::Now(Instant::now())), Action::Work);
        let mut q = Protocol::new();
        assert_eq!(q.step(begin(true)), Action::StopAutoScan);
        assert_eq!(q.step(Event::Now(Instant::now())), Action::StackScan(false));
        assert_eq!(q.step(Event::Now(Instant::now())), Action::Work);
        assert_eq!(q.state, State::Open);
        assert!(q.restore_auto_scan && q.restore_stack_scan);
    }

    #[test]
    fn a_window_for_any_module_scans_stacks_and_leaves_them_on() {
        let mut p = Protocol::with_stacks(Stacks::Scanned);
        let begin = Event::Begin {
            auto_scan: true,
            flush: true,
        };
        assert_eq!(p.step(begin), Action::StopAutoScan);
        assert_eq!(p.step(Event::Now(Instant::now())), Action::ScanAndClear);
        assert_eq!(p.step(Event::Cleared), Action::StackScan(true));
        assert_eq!(p.step(Event::Now(Instant::now())), Action::Work);
        assert!(p.restore_auto_scan);
        assert!(!p.restore_stack_scan);
    }

    #[test]
    fn events_out_of_order_are_a_failure_not_a_panic() {
        let mut p = Protocol::new();
        assert_eq!(p.step(Event::Scanned(set(&[1]))), Action::Finish);
        assert!(matches!(p.state, State::Failed(_)));
    }
}
