// SPDX-License-Identifier: GPL-2.0
//! The reader thread's side of the trace: every CPU's `trace_pipe_raw`
//! read page by page, decoded, and taken into the [`Ledger`] in timestamp
//! order across the CPUs.

use std::{
    collections::VecDeque,
    fs::{self, File},
    io::{ErrorKind, Read},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    sync::Mutex,
};

use anyhow::{bail, Context, Result};

use super::{
    event::{CpuContext, Decoder, Event},
    ledger::Ledger,
    page::{self, Layout},
};

/// Pages read from one CPU in a round, at most: the others are read too
/// before any of it is taken in.
const PAGES_PER_ROUND: usize = 256;

/// One CPU's `trace_pipe_raw` and what was read of it and not yet taken
/// in.
struct CpuBuffer {
    cpu: u32,
    file: File,
    pending: VecDeque<(u64, Event)>,
    /// The time of the last record read.
    last: u64,
    /// Whether the last read found it empty.
    drained: bool,
}

impl CpuBuffer {
    /// Opens `per_cpu/cpuN/trace_pipe_raw` of every CPU of the instance.
    fn open_all(dir: &Path) -> Result<Vec<Self>> {
        let per_cpu = dir.join("per_cpu");
        let mut cpus = Vec::new();
        for entry in fs::read_dir(&per_cpu)
            .with_context(|| format!("listing {}", per_cpu.display()))?
            .flatten()
        {
            let name = entry.file_name();
            let Some(cpu) = name
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let path = entry.path().join("trace_pipe_raw");
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            cpus.push(Self {
                cpu,
                file,
                pending: VecDeque::new(),
                last: 0,
                drained: false,
            });
        }
        if cpus.is_empty() {
            bail!("{} lists no CPU", per_cpu.display());
        }
        Ok(cpus)
    }
}

/// The reader thread's state: every CPU's buffer, and how to read them.
pub(super) struct Reader {
    cpus: Vec<CpuBuffer>,
    decoder: Decoder,
    layout: Layout,
    page: Vec<u8>,
    /// The reader thread's id: its own events are dropped ([`own`]).
    tid: Option<u32>,
}

/// Whether `event` is the reader `tid`'s own: made in its task context (an
/// interrupt's, on its time, is not). They come without stacks
/// ([`super::instance::reader_filter`]), and what the reader allocates is
/// no module's.
fn own(event: &Event, tid: Option<u32>) -> bool {
    event
        .origin()
        .is_some_and(|o| Some(o.pid) == tid && o.context == CpuContext::Task)
}

impl Reader {
    /// Opens every CPU's `trace_pipe_raw` of the instance `dir`, whose
    /// records `decoder` decodes in pages of `layout` and `page_bytes`.
    pub(super) fn open(
        dir: &Path,
        decoder: Decoder,
        layout: Layout,
        page_bytes: usize,
    ) -> Result<Self> {
        Ok(Self {
            cpus: CpuBuffer::open_all(dir)?,
            decoder,
            layout,
            page: vec![0u8; page_bytes.max(4096)],
            tid: None,
        })
    }

    /// Names the thread that reads, whose own events are dropped.
    pub(super) fn own(&mut self, tid: i32) {
        self.tid = u32::try_from(tid).ok();
    }

    /// Reads what every CPU has (up to [`PAGES_PER_ROUND`] pages each) and
    /// takes what it can into `ledger` ([`take_in`]). Returns the pages
    /// read.
    pub(super) fn round(&mut self, ledger: &Mutex<Ledger>) -> Result<usize> {
        let mut pages = 0;
        for c in &mut self.cpus {
            c.drained = false;
            for _ in 0..PAGES_PER_ROUND {
                let n = match c.file.read(&mut self.page) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(e).with_context(|| format!("reading CPU {}'s trace", c.cpu))
                    }
                };
                if n == 0 {
                    c.drained = true;
                    break;
                }
                pages += 1;
                let (decoder, cpu, tid) = (&self.decoder, c.cpu, self.tid);
                let (pending, last) = (&mut c.pending, &mut c.last);
                let p = page::read(&self.layout, &self.page[..n], |ts, record| {
                    *last = ts;
                    match decoder.decode(cpu, record) {
                        Event::Other => {}
                        e if own(&e, tid) => {}
                        e => pending.push_back((ts, e)),
                    }
                });
                if p.missed > 0 {
                    c.pending.push_front((0, Event::Lost(p.missed)));
                }
            }
        }
        take_in(
            &mut self.cpus,
            &mut ledger.lock().unwrap_or_else(|p| p.into_inner()),
        );
        Ok(pages)
    }
}

/// Takes into `ledger`, oldest first across the CPUs, every record read
/// that no CPU can still precede: up to the last one read of any CPU whose
/// buffer was not read empty.
fn take_in(cpus: &mut [CpuBuffer], ledger: &mut Ledger) {
    let until = cpus
        .iter()
        .filter(|c| !c.drained)
        .map(|c| c.last)
        .min()
        .unwrap_or(u64::MAX);
    loop {
        let next = cpus
            .iter_mut()
            .filter(|c| c.pending.front().is_some_and(|e| e.0 <= until))
            .min_by_key(|c| c.pending.front().map(|e| e.0));
        match next.and_then(|c| c.pending.pop_front()) {
            Some((_, e)) => ledger.apply(e),
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::event::{Origin, Space};

    fn cpu(cpu: u32, pending: &[(u64, Event)], last: u64, drained: bool) -> CpuBuffer {
        CpuBuffer {
            cpu,
            file: File::open("/dev/null").unwrap(),
            pending: pending.iter().cloned().collect(),
            last,
            drained,
        }
    }

    /// Task 1 on `cpu`.
    fn origin(cpu: u32) -> Origin {
        Origin {
            pid: 1,
            cpu,
            context: Default::default(),
        }
    }

    fn alloc(cpu: u32, key: u64) -> Event {
        Event::Alloc {
            origin: origin(cpu),
            space: Space::Slab,
            key,
            bytes: 64,
        }
    }

    fn free(cpu: u32, key: u64) -> Event {
        Event::Free {
            origin: origin(cpu),
            space: Space::Slab,
            key,
        }
    }

    #[test]
    fn the_reader_s_own_events_are_dropped_but_not_an_interrupt_s_on_its_time() {
        let mine = alloc(0, 0x1000);
        assert!(own(&mine, Some(1)), "task 1 is the reader");
        assert!(!own(&mine, Some(2)), "another task's");
        assert!(!own(&mine, None), "no reader named yet");
        let softirq = Event::Free {
            origin: Origin {
                context: CpuContext::Softirq,
                ..origin(0)
            },
            space: Space::Slab,
            key: 0x1000,
        };
        assert!(!own(&softirq, Some(1)), "an RCU callback's free counts");
        assert!(!own(&Event::Lost(3), Some(1)));
    }

    #[test]
    fn records_are_taken_in_time_order_across_cpus() {
        // Allocated on CPU 0, freed on CPU 1, allocated again on CPU 1:
        // taken CPU by CPU (CPU 1 first), CPU 0's allocation would come last
        // and hold the address with the wrong stack.
        let mut cpus = [
            cpu(
                1,
                &[(20, free(1, 0x1000)), (30, alloc(1, 0x1000))],
                30,
                true,
            ),
            cpu(0, &[(10, alloc(0, 0x1000))], 10, true),
        ];
        let mut l = Ledger::default();
        take_in(&mut cpus, &mut l);
        let held = l.outstanding(|_| true);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].origin.cpu, 1, "the later allocation");
        assert!(cpus.iter().all(|c| c.pending.is_empty()));
    }

    #[test]
    fn a_cpu_not_read_empty_holds_back_what_is_later_than_its_last_record() {
        // CPU 0 has more to read after time 15: CPU 1's free at 20 waits,
        // since CPU 0 may yet have an allocation of that address before it.
        let mut cpus = [
            cpu(0, &[(10, alloc(0, 0x2000))], 15, false),
            cpu(1, &[(20, free(1, 0x1000))], 20, true),
        ];
        let mut l = Ledger::default();
        take_in(&mut cpus, &mut l);
        assert_eq!(l.events, 1);
        assert_eq!(cpus[1].pending.len(), 1, "held back");
        cpus[0].pending.push_back((18, alloc(0, 0x1000)));
        cpus[0].drained = true;
        take_in(&mut cpus, &mut l);
        assert_eq!(l.events, 3);
        let held: Vec<u64> = l.outstanding(|_| true).iter().map(|a| a.key).collect();
        assert_eq!(held, [0x2000], "0x1000 allocated at 18, freed at 20");
    }
}
