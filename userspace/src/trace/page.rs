// SPDX-License-Identifier: GPL-2.0
//! One page (sub-buffer) of a CPU's ring buffer as `trace_pipe_raw` hands
//! it out: a header (`events/header_page`: timestamp, commit) and the
//! events, each behind a 4-byte header (`events/header_event`: `type_len`
//! in the low 5 bits, `time_delta` in the other 27, on a little-endian
//! kernel), as kernel/trace/ring_buffer.c writes them.
//!
//! Nothing here panics on a page it does not understand: it stops reading
//! that page.

use anyhow::{bail, Context, Result};

use super::event::{Field, Format};

/// `type_len` of padding: a discarded event, or the end of the page.
const PADDING: u32 = 29;
/// `type_len` of a time extension: the delta continues in `array[0]`.
const TIME_EXTEND: u32 = 30;
/// `type_len` of an absolute timestamp.
const TIME_STAMP: u32 = 31;
/// Bits of a delta held in the event header.
const DELTA_BITS: u32 = 27;
/// The top bits an absolute timestamp leaves out (`TS_MSB`).
const TS_MSB: u64 = 0xf8 << 56;
/// `commit` flag: events were lost before this page (`RB_MISSED_EVENTS`).
const MISSED_EVENTS: u64 = 1 << 31;
/// `commit` flag: their number follows the data (`RB_MISSED_STORED`).
const MISSED_STORED: u64 = 1 << 30;

/// Where a page keeps its timestamp, its commit (data length and flags)
/// and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    timestamp: Field,
    commit: Field,
    data: usize,
}

impl Layout {
    /// The layout `events/header_page` describes.
    pub fn parse(header_page: &str) -> Result<Self> {
        // The same `field:type name; offset:n; size:n;` lines as a format
        // file, without the ID.
        let f = Format::parse(&format!("ID: 0\n{header_page}"))?;
        let get = |name: &str| {
            f.fields
                .get(name)
                .copied()
                .with_context(|| format!("header_page has no field {name}:"))
        };
        let layout = Self {
            timestamp: get("timestamp")?,
            commit: get("commit")?,
            data: get("data")?.offset,
        };
        if layout.timestamp.size != 8 {
            bail!("header_page's timestamp is not 8 bytes");
        }
        Ok(layout)
    }
}

/// What a page held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Events lost before this page (1 when the kernel did not count them).
    pub missed: u64,
}

fn word(page: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(page.get(at..at + 4)?.try_into().ok()?))
}

/// Calls `record(timestamp, payload)` for each event of `page` in order;
/// returns what else the page said.
pub fn read(layout: &Layout, page: &[u8], mut record: impl FnMut(u64, &[u8])) -> Page {
    let (Some(mut ts), Some(commit)) = (layout.timestamp.read(page), layout.commit.read(page))
    else {
        return Page::default();
    };
    let flags = commit & (MISSED_EVENTS | MISSED_STORED);
    let len = usize::try_from(commit & !(MISSED_EVENTS | MISSED_STORED)).unwrap_or(usize::MAX);
    let end = layout.data.saturating_add(len).min(page.len());
    let missed = if flags & MISSED_STORED != 0 {
        let count = Field {
            offset: end,
            size: layout.commit.size,
        };
        count.read(page).unwrap_or(1).max(1)
    } else {
        u64::from(flags & MISSED_EVENTS != 0)
    };
    let mut at = layout.data;
    while at + 4 <= end {
        let Some(header) = word(page, at) else { break };
        let (type_len, delta) = (header & 0x1f, u64::from(header >> 5));
        let array0 = word(page, at + 4);
        let (payload, size) = match type_len {
            0 => {
                // Length in array[0] (counting itself), data after it.
                let Some(n) = array0.map(|n| n as usize).filter(|&n| n >= 4) else {
                    break;
                };
                (Some(at + 8..at + 4 + n), 4 + n)
            }
            1..=28 => {
                let n = type_len as usize * 4;
                (Some(at + 4..at + 4 + n), 4 + n)
            }
            PADDING => {
                // A discarded event, its length less the header in
                // array[0]; with no delta the rest of the page is padding.
                match array0 {
                    Some(n) if delta != 0 && n >= 4 => (None, 4 + n as usize),
                    _ => break,
                }
            }
            TIME_EXTEND => {
                let Some(high) = array0 else { break };
                ts = ts.wrapping_add((u64::from(high) << DELTA_BITS) | delta);
                (None, 8)
            }
            _ => {
                debug_assert_eq!(type_len, TIME_STAMP);
                let Some(high) = array0 else { break };
                ts = ((u64::from(high) << DELTA_BITS) | delta) | (ts & TS_MSB);
                (None, 8)
            }
        };
        if let Some(range) = payload {
            ts = ts.wrapping_add(delta);
            let Some(data) = page.get(range.start..range.end.min(end)) else {
                break;
            };
            record(ts, data);
        }
        at = at.saturating_add(size);
    }
    Page { missed }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `events/header_page` of 6.12 on x86_64 (measured).
    pub const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";

    /// Builds pages as ring_buffer.c lays them out.
    pub struct Writer {
        page: Vec<u8>,
    }

    impl Writer {
        /// A page starting at `timestamp`.
        pub fn new(timestamp: u64) -> Self {
            let mut page = vec![0u8; 16];
            page[..8].copy_from_slice(&timestamp.to_ne_bytes());
            Self { page }
        }

        fn header(&mut self, type_len: u32, delta: u32) {
            self.page
                .extend_from_slice(&(type_len | (delta << 5)).to_ne_bytes());
        }

        /// A data event `delta` after the previous one: the short form for
        /// up to 112 bytes, else the long one.
        pub fn event(mut self, delta: u32, payload: &[u8]) -> Self {
            let padded = payload.len().div_ceil(4) * 4;
            if (1..=112).contains(&padded) {
                self.header((padded / 4) as u32, delta);
            } else {
                self.header(0, delta);
                self.page
                    .extend_from_slice(&(padded as u32 + 4).to_ne_bytes());
            }
            self.page.extend_from_slice(payload);
            self.page
                .resize(self.page.len() + padded - payload.len(), 0);
            self
        }

        /// A time extension by `delta`.
        pub fn extend(mut self, delta: u64) -> Self {
            self.header(TIME_EXTEND, (delta & ((1 << DELTA_BITS) - 1)) as u32);
            self.page
                .extend_from_slice(&((delta >> DELTA_BITS) as u32).to_ne_bytes());
            self
        }

        /// A discarded event of `len` bytes after its length word
        /// (`array[0]` holds its whole length less the header,
        /// rb_event_discard()).
        pub fn discarded(mut self, len: u32) -> Self {
            self.header(PADDING, 1);
            self.page.extend_from_slice(&(len + 4).to_ne_bytes());
            self.page.resize(self.page.len() + len as usize, 0xee);
            self
        }

        /// The page, 4096 bytes, its commit set and `flags` added (a
        /// `stored` count of missed events after the data).
        pub fn finish(mut self, flags: u64, stored: Option<u64>) -> Vec<u8> {
            let len = (self.page.len() - 16) as u64;
            self.page[8..16].copy_from_slice(&(len | flags).to_ne_bytes());
            if let Some(n) = stored {
                self.page.extend_from_slice(&n.to_ne_bytes());
            }
            // The end of the page: padding without a delta, then garbage.
            self.page.extend_from_slice(&PADDING.to_ne_bytes());
            self.page.resize(4096, 0xab);
            self.page
        }
    }

    fn events(page: &[u8]) -> (Vec<(u64, Vec<u8>)>, Page) {
        let layout = Layout::parse(HEADER_PAGE).unwrap();
        let mut out = Vec::new();
        let p = read(&layout, page, |ts, data| out.push((ts, data.to_vec())));
        (out, p)
    }

    #[test]
    fn the_layout_is_read_from_header_page() {
        let l = Layout::parse(HEADER_PAGE).unwrap();
        assert_eq!(l.data, 16);
        assert_eq!(l.commit, Field { offset: 8, size: 8 });
        assert!(Layout::parse("field: u64 timestamp;\toffset:0;\tsize:8;").is_err());
    }

    #[test]
    fn events_come_with_their_payload_and_time_in_order() {
        let long = [7u8; 200];
        let page = Writer::new(1000)
            .event(5, &[1, 2, 3, 4, 5, 6, 7, 8])
            .event(10, &long)
            .extend(1 << 30)
            .event(1, &[9; 4])
            .discarded(12)
            .event(2, &[3; 4])
            .finish(0, None);
        let (ev, p) = events(&page);
        assert_eq!(p.missed, 0);
        let times: Vec<u64> = ev.iter().map(|e| e.0).collect();
        assert_eq!(
            times,
            [1005, 1015, 1015 + (1 << 30) + 1, 1015 + (1 << 30) + 3]
        );
        assert_eq!(ev[0].1, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(ev[1].1, long, "the long form");
        assert_eq!(ev[3].1, [3; 4], "after the discarded event");
    }

    #[test]
    fn missed_events_are_counted_stored_or_not() {
        let page = Writer::new(0)
            .event(1, &[0; 8])
            .finish(MISSED_EVENTS | MISSED_STORED, Some(37));
        let (ev, p) = events(&page);
        assert_eq!((ev.len(), p.missed), (1, 37));
        let page = Writer::new(0).event(1, &[0; 8]).finish(MISSED_EVENTS, None);
        assert_eq!(events(&page).1.missed, 1);
    }

    #[test]
    fn a_truncated_or_lying_page_ends_the_reading_without_a_panic() {
        let page = Writer::new(0)
            .event(1, &[1; 8])
            .event(1, &[2; 8])
            .finish(0, None);
        let (ev, _) = events(&page[..30]);
        assert_eq!(ev.len(), 1, "only what the page holds");
        let mut lying = page.clone();
        lying[8..16].copy_from_slice(&u64::from(u32::MAX >> 2).to_ne_bytes());
        let (ev, _) = events(&lying);
        assert_eq!(ev.len(), 2, "a commit past the page stops at the padding");
        let mut long = Writer::new(0).event(1, &[0; 200]).finish(0, None);
        long[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        let (ev, _) = events(&long);
        assert!(ev.len() <= 1);
        assert_eq!(events(&[0; 10]).0.len(), 0);
    }
}
