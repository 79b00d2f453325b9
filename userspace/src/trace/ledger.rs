// SPDX-License-Identifier: GPL-2.0
//! The allocations traced and not freed yet: each allocation event opens an
//! entry (its stack arrives in a later record of the same CPU), each free
//! closes it. What is left when the tracing stops is outstanding; which of
//! it is a module's is decided by its stack ([`Ledger::outstanding`]).

use rustc_hash::FxHashMap;

use super::{
    event::{Event, Origin, Space, PAGE_SIZE},
    stacks::{self, Stack},
};
use crate::kmemleak::report::{Frame, Report};

/// One allocation not freed (yet).
#[derive(Debug, Clone)]
pub struct Allocation {
    /// The allocator.
    pub space: Space,
    /// Address, per-CPU pointer or pfn.
    pub key: u64,
    /// Bytes as allocated.
    pub bytes: u64,
    /// Who allocated it.
    pub origin: Origin,
    /// Its stack's return addresses, innermost first (empty if the stack
    /// record was lost).
    pub stack: Stack,
    /// Its place in the event order.
    pub seq: u64,
}

impl Allocation {
    /// The allocation as a report of the shape kmemleak's have, so that one
    /// symbolizer and one attribution serve both detectors: its frames as
    /// `frame` names them, the task as `comm` names it. A page's address is
    /// its physical address (the pfn times the page size).
    /// In interrupt context, the task is named as kmemleak names it
    /// (`softirq`, pid 0), not as the task the interrupt found running.
    pub fn report(&self, frame: impl Fn(u64) -> Frame, comm: Option<String>) -> Report {
        let (pid, comm) = match self.origin.context.comm() {
            Some(c) => (0, Some(c.to_string())),
            None => (self.origin.pid, comm),
        };
        Report {
            address: match self.space {
                Space::Page => self.key.saturating_mul(PAGE_SIZE),
                _ => self.key,
            },
            size: self.bytes,
            comm,
            pid: Some(pid),
            jiffies: None,
            crc: None,
            frames: self.stack.iter().map(|&a| frame(a)).collect(),
            garbled: false,
        }
    }
}

/// Allocations of one CPU waiting for their stack, at most: an interrupt
/// may allocate between an allocation and its stack record.
const NESTING: usize = 8;

/// What the events said so far.
#[derive(Debug, Default)]
pub struct Ledger {
    live: FxHashMap<(Space, u64), Allocation>,
    /// Calls that allocate, by task, until they return: their bytes.
    calls: FxHashMap<(Space, u32), u64>,
    /// Per CPU: the allocations whose stacks come next, innermost last.
    awaiting_stack: FxHashMap<u32, Vec<(Space, u64, u64)>>,
    /// Events counted.
    pub events: u64,
    /// Events the ring buffer lost.
    pub lost: u64,
    /// The markers seen, in order, each with the number of events before
    /// it.
    pub markers: Vec<(String, u64)>,
}

impl Ledger {
    /// Takes one record into account.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Alloc {
                origin,
                space,
                key,
                bytes,
            } => {
                self.events += 1;
                let waiting = self.awaiting_stack.entry(origin.cpu).or_default();
                if waiting.len() == NESTING {
                    waiting.remove(0);
                }
                waiting.push((space, key, self.events));
                self.live.insert(
                    (space, key),
                    Allocation {
                        space,
                        key,
                        bytes,
                        origin,
                        stack: stacks::none(),
                        seq: self.events,
                    },
                );
            }
            Event::Call {
                origin,
                space,
                bytes,
            } => {
                self.events += 1;
                self.calls.insert((space, origin.pid), bytes);
            }
            // The allocation is made at its return, whose stack comes next.
            Event::Return { origin, space, key } => match self.calls.remove(&(space, origin.pid)) {
                Some(bytes) if key != 0 => self.apply(Event::Alloc {
                    origin,
                    space,
                    key,
                    bytes,
                }),
                _ => self.events += 1,
            },
            Event::Free { origin, space, key } => {
                self.events += 1;
                self.free(&origin, space, key);
            }
            Event::Frees {
                origin,
                space,
                keys,
            } => {
                self.events += 1;
                for key in keys {
                    self.free(&origin, space, key);
                }
            }
            Event::Stack { origin, frames } => {
                let next = self.awaiting_stack.get_mut(&origin.cpu).and_then(Vec::pop);
                if let Some((space, key, seq)) = next {
                    if let Some(a) = self.live.get_mut(&(space, key)).filter(|a| a.seq == seq) {
                        a.stack = frames;
                    }
                }
            }
            Event::Marker(m) => self.markers.push((m, self.events)),
            Event::Lost(n) => self.lost = self.lost.saturating_add(n),
            Event::Other => {}
        }
    }

    fn free(&mut self, origin: &Origin, space: Space, key: u64) {
        self.live.remove(&(space, key));
        if let Some(waiting) = self.awaiting_stack.get_mut(&origin.cpu) {
            waiting.retain(|w| (w.0, w.1) != (space, key));
        }
    }

    /// The open allocations `keep` accepts, oldest first.
    pub fn outstanding(&self, keep: impl Fn(&Allocation) -> bool) -> Vec<&Allocation> {
        let mut v: Vec<&Allocation> = self.live.values().filter(|a| keep(a)).collect();
        v.sort_by_key(|a| a.seq);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(pid: u32, cpu: u32) -> Origin {
        Origin {
            pid,
            cpu,
            context: Default::default(),
        }
    }

    fn alloc(pid: u32, cpu: u32, space: Space, key: u64, bytes: u64) -> Event {
        Event::Alloc {
            origin: origin(pid, cpu),
            space,
            key,
            bytes,
        }
    }

    fn free(cpu: u32, space: Space, key: u64) -> Event {
        Event::Free {
            origin: origin(1, cpu),
            space,
            key,
        }
    }

    fn stack(cpu: u32, frames: &[u64]) -> Event {
        Event::Stack {
            origin: origin(1, cpu),
            frames: frames.into(),
        }
    }

    fn feed(events: Vec<Event>) -> Ledger {
        let mut l = Ledger::default();
        for e in events {
            l.apply(e);
        }
        l
    }

    fn bare(a: u64) -> Frame {
        Frame {
            raw: format!("{a:#x}"),
            address: Some(a),
            symbol: None,
            offset: None,
            module: None,
        }
    }

    #[test]
    fn a_bulk_free_frees_each_of_its_objects() {
        let l = feed(vec![
            alloc(7, 0, Space::Slab, 0x1000, 256),
            alloc(7, 0, Space::Slab, 0x2000, 256),
            alloc(7, 0, Space::Slab, 0x3000, 256),
            Event::Frees {
                origin: origin(1, 1),
                space: Space::Slab,
                keys: vec![0x1000, 0x3000, 0x9000],
            },
        ]);
        let out = l.outstanding(|_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, 0x2000);
    }

    #[test]
    fn a_freed_allocation_is_not_outstanding_and_a_kept_one_has_its_stack() {
        let l = feed(vec![
            alloc(7, 0, Space::Slab, 0xffff888000001000, 256),
            alloc(9, 1, Space::Slab, 0xffff888000002000, 8),
            stack(0, &[0xffffffff81000010, 0xffffffffa000112a]),
            stack(1, &[0xffffffff81000020]),
            free(1, Space::Slab, 0xffff888000002000),
        ]);
        let out = l.outstanding(|_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, 256);
        assert_eq!(
            *out[0].stack,
            [0xffffffff81000010, 0xffffffffa000112a],
            "its own CPU's stack"
        );
        assert_eq!(l.events, 3);
        let r = out[0].report(bare, Some("insmod".into()));
        assert_eq!(
            (r.address, r.size, r.pid, r.comm.as_deref()),
            (0xffff888000001000, 256, Some(7), Some("insmod"))
        );
        assert_eq!(r.frames[1].address, Some(0xffffffffa000112a));
    }

    #[test]
    fn an_interrupt_s_allocation_between_takes_its_own_stack_and_leaves_the_outer_one_its() {
        let l = feed(vec![
            alloc(7, 0, Space::Slab, 0x1000, 64),
            alloc(0, 0, Space::Slab, 0x2000, 32),
            stack(0, &[0xb]),
            stack(0, &[0xa]),
        ]);
        let out = l.outstanding(|_| true);
        assert_eq!(*out[0].stack, [0xa]);
        assert_eq!(*out[1].stack, [0xb]);
    }

    #[test]
    fn pages_are_matched_by_pfn_and_reported_at_their_physical_address() {
        let l = feed(vec![
            alloc(1, 0, Space::Page, 0x4a31, 8192),
            alloc(1, 0, Space::Page, 0x4a40, 4096),
            free(0, Space::Page, 0x4a40),
        ]);
        let out = l.outstanding(|_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].report(bare, None).address, 0x4a31000);
        assert_eq!(out[0].bytes, 8192);
    }

    #[test]
    fn a_call_s_allocation_is_made_at_its_return_with_the_return_s_stack() {
        let call = |pid, cpu| Event::Call {
            origin: origin(pid, cpu),
            space: Space::Vmalloc,
            bytes: 8192,
        };
        let ret = |pid, cpu, key| Event::Return {
            origin: origin(pid, cpu),
            space: Space::Vmalloc,
            key,
        };
        let l = feed(vec![
            call(7, 0),
            call(8, 1),
            // Task 7 slept and returns on the other CPU, its stack after.
            ret(7, 1, 0xffffc90000010000),
            stack(1, &[0xa]),
            ret(8, 1, 0),
            stack(1, &[0xb]),
            call(9, 0),
            ret(9, 0, 0xffffc90000020000),
            stack(0, &[0xc]),
            free(0, Space::Vmalloc, 0xffffc90000020000),
            // A return without its call (tracing began in between).
            ret(10, 0, 0xffffc90000030000),
        ]);
        let out = l.outstanding(|_| true);
        assert_eq!(out.len(), 1, "8 failed, 9 was freed: {out:?}");
        assert_eq!(
            (out[0].key, out[0].bytes, out[0].origin.pid),
            (0xffffc90000010000, 8192, 7)
        );
        assert_eq!(*out[0].stack, [0xa]);
    }

    #[test]
    fn an_interrupt_s_allocation_is_named_as_kmemleak_names_it() {
        let mut l = Ledger::default();
        l.apply(Event::Alloc {
            origin: Origin {
                pid: 44,
                cpu: 0,
                context: crate::trace::event::CpuContext::Softirq,
            },
            space: Space::Slab,
            key: 0x1000,
            bytes: 64,
        });
        let r = l.outstanding(|_| true)[0].report(bare, Some("trace-reader".into()));
        assert_eq!((r.pid, r.comm.as_deref()), (Some(0), Some("softirq")));
    }

    #[test]
    fn lost_events_and_markers_are_counted() {
        let l = feed(vec![
            Event::Lost(5),
            Event::Lost(2),
            Event::Marker("sync-1".into()),
            Event::Other,
        ]);
        assert_eq!(l.lost, 7);
        assert_eq!(l.markers, [("sync-1".to_string(), 0)]);
        assert_eq!(l.events, 0);
    }

    #[test]
    fn a_free_before_the_stack_leaves_nothing_and_the_stack_goes_nowhere() {
        let l = feed(vec![
            alloc(7, 0, Space::Slab, 0x1000, 64),
            free(0, Space::Slab, 0x1000),
            stack(0, &[0xa]),
            alloc(7, 0, Space::Slab, 0x1000, 64),
        ]);
        assert_eq!(l.live.len(), 1);
        assert!(
            l.outstanding(|_| true)[0].stack.is_empty(),
            "not the freed one's stack"
        );
    }
}
