//! The allocations traced and not freed yet: each allocation event opens an
//! entry (its stack arrives in the next record of the same CPU), each free
//! closes it. What is left when the tracing stops is outstanding; which of
//! it is a module's is decided by its stack ([`Ledger::outstanding`]).

use std::collections::HashMap;

use super::event::{Line, Origin, Space};
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
    /// Its stack, innermost first (empty if the stack record was lost).
    pub frames: Vec<Frame>,
    /// Its place in the event order.
    pub seq: u64,
}

impl Allocation {
    /// The allocation as a report of the shape kmemleak's have, so that one
    /// symbolizer and one attribution serve both detectors. A page's
    /// address is its physical address (the pfn times the page size).
    pub fn report(&self) -> Report {
        Report {
            address: match self.space {
                Space::Page => self.key << 12,
                _ => self.key,
            },
            size: self.bytes,
            comm: Some(self.origin.comm.clone()),
            pid: Some(self.origin.pid),
            jiffies: None,
            crc: None,
            frames: self.frames.clone(),
            garbled: false,
        }
    }
}

/// What the events said so far.
#[derive(Debug, Default)]
pub struct Ledger {
    live: HashMap<(Space, u64), Allocation>,
    /// Per CPU: the allocation whose stack comes next.
    awaiting_stack: HashMap<u32, (Space, u64)>,
    /// The allocation whose frames are being read.
    reading: Option<(Space, u64)>,
    /// Events counted.
    pub events: u64,
    /// Events the ring buffer lost (`[LOST N EVENTS]`).
    pub lost: u64,
    /// The markers seen, in order.
    pub markers: Vec<String>,
}

impl Ledger {
    /// Takes one line of `trace_pipe` into account.
    pub fn apply(&mut self, line: Line) {
        match line {
            Line::Frame(f) => {
                if let Some(a) = self.reading.and_then(|k| self.live.get_mut(&k)) {
                    a.frames.push(f);
                }
                return;
            }
            Line::Other => return,
            _ => {}
        }
        self.reading = None;
        match line {
            Line::Alloc {
                origin,
                space,
                key,
                bytes,
            } => {
                self.events += 1;
                self.awaiting_stack.insert(origin.cpu, (space, key));
                self.live.insert(
                    (space, key),
                    Allocation {
                        space,
                        key,
                        bytes,
                        origin,
                        frames: Vec::new(),
                        seq: self.events,
                    },
                );
            }
            Line::Free { origin, space, key } => {
                self.events += 1;
                self.live.remove(&(space, key));
                if self.awaiting_stack.get(&origin.cpu) == Some(&(space, key)) {
                    self.awaiting_stack.remove(&origin.cpu);
                }
            }
            Line::Stack(origin) => {
                self.reading = self.awaiting_stack.remove(&origin.cpu);
            }
            Line::Marker(m) => self.markers.push(m),
            Line::Lost(n) => self.lost = self.lost.saturating_add(n),
            Line::Frame(_) | Line::Other => {}
        }
    }

    /// How many allocations are open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// The open allocations `keep` accepts, oldest first.
    pub fn outstanding(&self, keep: impl Fn(&Allocation) -> bool) -> Vec<Allocation> {
        let mut v: Vec<Allocation> = self.live.values().filter(|a| keep(a)).cloned().collect();
        v.sort_by_key(|a| a.seq);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::parse;
    use super::*;

    fn feed(lines: &str) -> Ledger {
        let mut l = Ledger::default();
        for line in lines.lines() {
            l.apply(parse(line));
        }
        l
    }

    const ALLOC: &str = "insmod-7 [000] ..... 1.0: kmalloc: call_site=f+0x1/0x2 ptr=ffff888000001000 bytes_req=200 bytes_alloc=256 gfp_flags=GFP_KERNEL node=-1 accounted=false";

    #[test]
    fn a_freed_allocation_is_not_outstanding_and_a_kept_one_has_its_stack() {
        let l = feed(&format!(
            "{ALLOC}\n\
             other-9 [001] ..... 1.0: kmalloc: call_site=g+0x1/0x2 ptr=ffff888000002000 bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL node=-1 accounted=false\n\
             insmod-7 [000] ..... 1.0: <stack trace>\n\
             \x20=> __kmalloc_noprof+0x1/0x2 <ffffffff81000010>\n\
             \x20=> probe_leaky+0x2a/0x90 [leaklab] <ffffffffa000112a>\n\
             other-9 [001] ..... 1.1: <stack trace>\n\
             \x20=> g+0x1/0x2 <ffffffff81000020>\n\
             x-3 [001] ..... 2.0: kfree: call_site=h+0x1/0x2 ptr=ffff888000002000\n"
        ));
        let out = l.outstanding(|_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, 256);
        assert_eq!(out[0].frames.len(), 2, "the stack of its own CPU");
        assert_eq!(out[0].frames[1].address, Some(0xffffffffa000112a));
        assert_eq!(l.events, 3);
        let r = out[0].report();
        assert_eq!(
            (r.address, r.size, r.pid),
            (0xffff888000001000, 256, Some(7))
        );
    }

    #[test]
    fn pages_are_matched_by_pfn_and_reported_at_their_physical_address() {
        let l = feed(
            "a-1 [000] ..... 1.0: mm_page_alloc: page=0000000000000001 pfn=0x4a31 order=1 migratetype=0 gfp_flags=GFP_KERNEL\n\
             a-1 [000] ..... 1.0: mm_page_alloc: page=0000000000000001 pfn=0x4a40 order=0 migratetype=0 gfp_flags=GFP_KERNEL\n\
             a-1 [000] ..... 1.0: mm_page_free: page=0000000000000001 pfn=0x4a40 order=0\n",
        );
        let out = l.outstanding(|_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].report().address, 0x4a31000);
        assert_eq!(out[0].bytes, 8192);
    }

    #[test]
    fn lost_events_and_markers_are_counted() {
        let l = feed("CPU:0 [LOST 5 EVENTS]\nCPU:1 [LOST 2 EVENTS]\nx-1 [000] ..... 1.0: tracing_mark_write: sync-1\n");
        assert_eq!(l.lost, 7);
        assert_eq!(l.markers, ["sync-1"]);
    }

    #[test]
    fn a_free_before_the_stack_leaves_nothing_and_the_stack_goes_nowhere() {
        let l = feed(&format!(
            "{ALLOC}\n\
             insmod-7 [000] ..... 1.0: kfree: call_site=f+0x1/0x2 ptr=ffff888000001000\n\
             insmod-7 [000] ..... 1.0: <stack trace>\n\
             \x20=> f+0x1/0x2 <ffffffff81000010>\n"
        ));
        assert_eq!(l.len(), 0);
    }
}
