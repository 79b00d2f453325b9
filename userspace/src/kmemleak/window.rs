// SPDX-License-Identifier: GPL-2.0
//! The scan protocol run against the kernel ([`super::protocol`] is the
//! state machine alone): open a window, do the work, close it to get the
//! reports.

use std::time::Instant;

use anyhow::Result;

use super::{
    protocol::{log_failure, Action, Event, Protocol, Stacks, State},
    report::{self, Report},
    Kmemleak,
};
use crate::kernel::{
    clock::JiffyClock,
    interrupt,
    kmsg::KmsgWatch,
    undo::{self, Noted},
};

/// How long before a flushing window opened (in ms) an object may have been
/// allocated and still count as the window's: rounding, when the clock
/// knows the kernel's jiffies ([`JiffyClock::offset`]).
const OPENING_MARGIN_MS: u64 = 50;
/// The same when it does not: jiffies may also lag CLOCK_MONOTONIC by that
/// much (0.177 s seen on x86_64 under TCG).
const OPENING_MARGIN_UNCALIBRATED_MS: u64 = 400;

/// Whether `r` was allocated at or after the jiffies `opened` (a report
/// without a stamp, or a window without an opening, counts).
///
/// A window flushes the reports before it, but an object that leaked
/// earlier and was still referenced then (a stale pointer in memory reused
/// later) is reported once its last reference is overwritten, in whatever
/// window is open then: a doctor's canary object surfaced so in the matrix
/// that followed it in the same boot, counted as the matrix's own leak.
/// Its allocation stamp tells it apart.
fn allocated_since(r: &Report, opened: Option<u64>) -> bool {
    match (r.jiffies, opened) {
        (Some(j), Some(o)) => j >= o,
        _ => true,
    }
}

/// Whether kmemleak's auto-scan thread (the `kmemleak` kernel thread) runs.
pub fn auto_scan_running() -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "kmemleak")
        })
}

/// The protocol run against the kernel: open a window, do the work, close
/// it to get the reports. Dropping it (also on an error) restores stack
/// scanning and the auto-scan thread as the protocol noted them.
pub struct Window<'k> {
    kmemleak: &'k Kmemleak,
    kmsg: KmsgWatch,
    protocol: Protocol,
    /// The restores, noted for a panic (which skips `drop`).
    undo: Vec<Noted>,
    /// A flushing window's opening, in jiffies less a margin
    /// ([`OPENING_MARGIN_MS`]):
    /// objects allocated before it are not the window's (None: the window
    /// keeps earlier reports, or the kernel's HZ is unknown).
    opened: Option<u64>,
}

/// The settled answer.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The reports of the last scan.
    pub reports: Vec<Report>,
    /// Scans run after the age window.
    pub scans: usize,
    /// Whether two scans in a row agreed.
    pub stable: bool,
}

impl<'k> Window<'k> {
    /// Stops the auto-scan thread (noting whether it ran), flushes earlier
    /// reports, and returns ready for the work.
    pub fn open(kmemleak: &'k Kmemleak) -> Result<Self> {
        Self::begin(kmemleak, true, Stacks::Ignored)
    }

    /// As [`Window::open`], but earlier reports still count.
    pub fn open_keeping_reports(kmemleak: &'k Kmemleak) -> Result<Self> {
        Self::begin(kmemleak, false, Stacks::Ignored)
    }

    /// A monitor's window: earlier reports still count, and kmemleak's
    /// settings (stack scanning, the auto-scan thread) stay as the user set
    /// them ([`Stacks::AsFound`]).
    pub fn open_as_found(kmemleak: &'k Kmemleak) -> Result<Self> {
        Self::begin(kmemleak, false, Stacks::AsFound)
    }

    /// As [`Window::open`], task stacks scanned: for a module that gets
    /// none of the lab's help ([`Stacks::Scanned`]).
    pub fn open_scanning_stacks(kmemleak: &'k Kmemleak) -> Result<Self> {
        Self::begin(kmemleak, true, Stacks::Scanned)
    }

    fn begin(kmemleak: &'k Kmemleak, flush: bool, stacks: Stacks) -> Result<Self> {
        let mut w = Self {
            kmemleak,
            kmsg: KmsgWatch::start()?,
            protocol: Protocol::with_stacks(stacks),
            undo: Vec::new(),
            opened: None,
        };
        let mut action = w.protocol.step(Event::Begin {
            auto_scan: auto_scan_running(),
            flush,
        });
        loop {
            action = match action {
                Action::StopAutoScan => {
                    let e = w.command("scan=off");
                    if e.is_none() {
                        w.note("scan=on");
                    }
                    w.protocol.step(e.unwrap_or(Event::Now(Instant::now())))
                }
                Action::ScanAndClear => {
                    let e = w
                        .command("scan")
                        .or_else(|| w.command("clear"))
                        .unwrap_or(Event::Cleared);
                    w.protocol.step(e)
                }
                Action::StackScan(on) => {
                    let e = w.command(if on { "stack=on" } else { "stack=off" });
                    if e.is_none() && !on {
                        w.note("stack=on");
                    }
                    w.protocol.step(e.unwrap_or(Event::Now(Instant::now())))
                }
                Action::Work => {
                    if flush {
                        w.opened = JiffyClock::open().and_then(|c| {
                            let ms = match c.offset {
                                Some(_) => OPENING_MARGIN_MS,
                                None => OPENING_MARGIN_UNCALIBRATED_MS,
                            };
                            Some(c.now()?.saturating_sub(c.hz * ms / 1000 + 2))
                        });
                    }
                    return Ok(w);
                }
                _ => return Err(w.failure()),
            };
        }
    }

    /// Whether kmemleak's auto-scan thread ran when the window opened (it is
    /// stopped in the window and started again when the window closes).
    pub fn auto_scan_was_running(&self) -> bool {
        self.protocol.restore_auto_scan
    }

    /// After the work (its youngest object allocated no later than
    /// `youngest`): waits out the minimum age, scans until the reported set
    /// is stable, and returns it.
    pub fn close(self, youngest: Instant) -> Result<Settled> {
        self.close_with(youngest, &mut |_| {})
    }

    /// As [`Window::close`], telling `progress` what it waits for.
    pub fn close_with(self, youngest: Instant, progress: &mut dyn FnMut(&str)) -> Result<Settled> {
        self.close_settling_on(youngest, progress, &|_| true)
    }

    /// As [`Window::close_with`], the set that must agree between two scans
    /// being only the reports `judged` keeps: a verdict that depends on
    /// those alone need not wait for the rest (thousands of objects leaked
    /// on purpose, whose set may flicker by one for a long time) to settle.
    pub fn close_settling_on(
        mut self,
        youngest: Instant,
        progress: &mut dyn FnMut(&str),
        judged: &dyn Fn(&Report) -> bool,
    ) -> Result<Settled> {
        let mut action = self.protocol.step(Event::WorkDone { youngest });
        let mut last = Vec::new();
        loop {
            action = match action {
                Action::SleepUntil(t) => {
                    if let Some(d) = t.checked_duration_since(Instant::now()) {
                        progress(&format!(
                            "waiting {:.1} s for the youngest objects to reach kmemleak's minimum age",
                            d.as_secs_f64()
                        ));
                        interrupt::sleep(d)?;
                    }
                    self.protocol.step(Event::Now(Instant::now()))
                }
                Action::Scan => {
                    interrupt::check()?;
                    if let State::Scanning { scans, .. } = &self.protocol.state {
                        progress(&format!("scan {} (until two agree)", scans + 1));
                    }
                    if let Some(refused) = self.command("scan") {
                        self.protocol.step(refused)
                    } else if let Some(failed) = self.log_failures() {
                        self.protocol.step(failed)
                    } else {
                        last = report::parse(&self.kmemleak.read()?);
                        last.retain(|r| allocated_since(r, self.opened));
                        let set = last
                            .iter()
                            .filter(|r| judged(r))
                            .map(|r| r.address)
                            .collect();
                        self.protocol.step(Event::Scanned(set))
                    }
                }
                Action::Finish => break,
                _ => return Err(self.failure()),
            };
        }
        match &self.protocol.state {
            State::Settled { stable, scans } => Ok(Settled {
                reports: last,
                scans: *scans,
                stable: *stable,
            }),
            _ => Err(self.failure()),
        }
    }

    /// Notes `cmd` as the restore of a setting the window changed, for a
    /// panic ([`undo`]).
    fn note(&mut self, cmd: &'static str) {
        let kmemleak = self.kmemleak.clone();
        let what = format!("wrote {cmd} to {}", kmemleak.path().display());
        self.undo
            .push(undo::note(what, move || kmemleak.command(cmd)));
    }

    /// Sends `cmd`; a refusal comes back as the event to feed.
    fn command(&self, cmd: &str) -> Option<Event> {
        self.kmemleak
            .command(cmd)
            .err()
            .map(|e| Event::Refused(format!("{e:#}")))
    }

    /// The first kmemleak failure the kernel log has shown since the window
    /// opened, as an event.
    fn log_failures(&mut self) -> Option<Event> {
        self.kmsg
            .drain()
            .into_iter()
            .find(|l| log_failure(l).is_some())
            .map(Event::Log)
    }

    fn failure(&self) -> anyhow::Error {
        match &self.protocol.state {
            State::Failed(reason) => anyhow::anyhow!("{reason}"),
            s => anyhow::anyhow!("scan protocol stopped in state {s:?}"),
        }
    }
}

impl Drop for Window<'_> {
    fn drop(&mut self) {
        if self.protocol.restore_stack_scan {
            let _ = self.kmemleak.command("stack=on");
        }
        if self.protocol.restore_auto_scan {
            // Best effort: there is no better place to report a failure.
            let _ = self.kmemleak.command("scan=on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(jiffies: &str) -> Report {
        let text = format!(
            "unreferenced object 0xffff888003a1c000 (size 256):\n  comm \"sh\", pid 70, jiffies {jiffies}\n  backtrace (crc 0):\n    kmalloc_trace+0x26/0x90\n"
        );
        report::parse(&text).remove(0)
    }

    #[test]
    fn objects_allocated_before_a_window_opened_are_not_its_own() {
        let opened = Some(4_294_900_000);
        assert!(!allocated_since(&report("4294899999"), opened));
        assert!(allocated_since(&report("4294900000"), opened));
        assert!(allocated_since(&report("4295000000"), opened));
        // No opening (a window keeping earlier reports), or no stamp: kept.
        assert!(allocated_since(&report("1"), None));
        let mut r = report("1");
        r.jiffies = None;
        assert!(allocated_since(&r, opened));
    }
}
