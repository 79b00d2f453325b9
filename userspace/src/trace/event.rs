//! The text of a tracefs instance's `trace_pipe`, one line at a time: the
//! allocation and free events of the `kmem` and `percpu` systems, the
//! `<stack trace>` record the `stacktrace` trigger adds after each
//! allocation, its ` => symbol+off/size <address>` frames (the `sym-addr`
//! option), `trace_marker` writes, and the `[LOST N EVENTS]` lines the
//! reader prints where the ring buffer overran.
//!
//! The instance runs with `hash-ptr` off, so `ptr=` is the real address.
//! Nothing here panics: a line it does not know is [`Line::Other`].

use crate::kmemleak::report::{parse_frame, Frame};

/// Which allocator an event is about; frees are matched within one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// kmalloc and kmem_cache objects, by address (kfree frees both).
    Slab,
    /// The page allocator, by page frame number.
    Page,
    /// Per-CPU objects, by their per-CPU pointer.
    Percpu,
}

/// The task and CPU an event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The task's name (`<...>` when the tracer did not record it).
    pub comm: String,
    /// Its pid.
    pub pid: u32,
    /// The CPU whose buffer held the event.
    pub cpu: u32,
}

/// One line of `trace_pipe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// An allocation: its space, key (address or pfn), bytes as allocated,
    /// and who asked.
    Alloc {
        /// Event origin.
        origin: Origin,
        /// The allocator.
        space: Space,
        /// Address, per-CPU pointer, or pfn.
        key: u64,
        /// Bytes as the allocator sized them.
        bytes: u64,
    },
    /// A free of `key` in `space`.
    Free {
        /// Event origin.
        origin: Origin,
        /// The allocator.
        space: Space,
        /// Address, per-CPU pointer, or pfn.
        key: u64,
    },
    /// The header of a stack trace: its frames follow as [`Line::Frame`].
    Stack(Origin),
    /// One frame of the stack trace above.
    Frame(Frame),
    /// A `trace_marker` write.
    Marker(String),
    /// The ring buffer of a CPU lost events here.
    Lost(u64),
    /// Anything else (other events, blank lines).
    Other,
}

/// The number in `text` (hex with or without `0x` when `hex`).
fn number(text: &str, hex: bool) -> Option<u64> {
    if hex {
        u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
    } else {
        text.parse().ok()
    }
}

/// The value of field `name` in `fields` (`name=value` separated by spaces).
fn field<'a>(fields: &'a str, name: &str) -> Option<&'a str> {
    fields
        .split(' ')
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

/// Splits `comm-pid [cpu] flags timestamp: rest` into its origin and rest.
fn header(line: &str) -> Option<(Origin, &str)> {
    let open = line.find(" [")?;
    let (task, after) = (line[..open].trim(), &line[open + 2..]);
    let (cpu, after) = after.split_once(']')?;
    let (comm, pid) = task.rsplit_once('-')?;
    let (_, rest) = after.split_once(": ")?;
    Some((
        Origin {
            comm: comm.to_string(),
            pid: pid.parse().ok()?,
            cpu: cpu.trim().parse().ok()?,
        },
        rest,
    ))
}

/// Parses one line of `trace_pipe`.
pub fn parse(line: &str) -> Line {
    if let Some(frame) = line.trim_start().strip_prefix("=> ") {
        return Line::Frame(frame_of(frame));
    }
    if let Some(n) = lost(line) {
        return Line::Lost(n);
    }
    let Some((origin, rest)) = header(line) else {
        return Line::Other;
    };
    if rest.trim_end() == "<stack trace>" {
        return Line::Stack(origin);
    }
    let Some((event, fields)) = rest.split_once(": ") else {
        return Line::Other;
    };
    let get = |name: &str, hex: bool| field(fields, name).and_then(|v| number(v, hex));
    let alloc = |space, key: Option<u64>, bytes: Option<u64>| match (key, bytes) {
        // A failed allocation (ptr 0) allocated nothing.
        (Some(key), Some(bytes)) if key != 0 => Line::Alloc {
            origin: origin.clone(),
            space,
            key,
            bytes,
        },
        _ => Line::Other,
    };
    let free = |space, key: Option<u64>| match key {
        Some(key) if key != 0 => Line::Free {
            origin: origin.clone(),
            space,
            key,
        },
        _ => Line::Other,
    };
    // With `sym-addr`, a marker's event name is the writer's address:
    // `tracing_mark_write+0xc3/0x1f6 <ffffffff810b363d>: text`.
    if event.starts_with("tracing_mark_write") {
        return Line::Marker(fields.trim_end().to_string());
    }
    match event {
        "kmalloc" | "kmem_cache_alloc" => {
            alloc(Space::Slab, get("ptr", true), get("bytes_alloc", false))
        }
        "kfree" | "kmem_cache_free" => free(Space::Slab, get("ptr", true)),
        "mm_page_alloc" => {
            let bytes = get("order", false)
                .filter(|&o| o < 32)
                .map(|o| 4096u64 << o);
            alloc(Space::Page, get("pfn", true), bytes)
        }
        "mm_page_free" | "mm_page_free_batched" => free(Space::Page, get("pfn", true)),
        "percpu_alloc_percpu" => alloc(Space::Percpu, get("ptr", true), get("bytes_alloc", false)),
        "percpu_free_percpu" => free(Space::Percpu, get("ptr", true)),
        _ => Line::Other,
    }
}

/// `CPU:1 [LOST 37 EVENTS]` (or `[LOST EVENTS]`, count unknown: one).
fn lost(line: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix("CPU:")?;
    let (_, rest) = rest.split_once(" [LOST")?;
    let n = rest.trim_end_matches("EVENTS]").trim();
    Some(if n.is_empty() { 1 } else { n.parse().ok()? })
}

/// A frame as the `sym-addr` option prints it: `sym+off/size [mod] <addr>`.
fn frame_of(text: &str) -> Frame {
    let text = text.trim();
    let (symbolic, address) = match text.rsplit_once(" <") {
        Some((s, a)) => (s, a.strip_suffix('>').and_then(|a| number(a, true))),
        None => (text, None),
    };
    let mut f = parse_frame(symbolic);
    f.raw = text.to_string();
    if address.is_some() {
        f.address = address;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(comm: &str, pid: u32, cpu: u32) -> Origin {
        Origin {
            comm: comm.into(),
            pid,
            cpu,
        }
    }

    #[test]
    fn allocation_and_free_events_give_their_space_key_and_size() {
        let l = "          insmod-61      [001] ..... 12.345678: kmalloc: call_site=kernel::alloc::allocator::ReallocFunc::call+0x52/0x90 ptr=ffff888003c4a000 bytes_req=256 bytes_alloc=256 gfp_flags=GFP_KERNEL node=-1 accounted=false";
        assert_eq!(
            parse(l),
            Line::Alloc {
                origin: origin("insmod", 61, 1),
                space: Space::Slab,
                key: 0xffff888003c4a000,
                bytes: 256
            }
        );
        let l = " kworker/u4:1-12 [000] d..1. 3.1: kmem_cache_free: call_site=rcu_do_batch+0x1/0x2 ptr=ffff888003c4a000 name=kmalloc-256";
        assert_eq!(
            parse(l),
            Line::Free {
                origin: origin("kworker/u4:1", 12, 0),
                space: Space::Slab,
                key: 0xffff888003c4a000
            }
        );
        let l = "leaklab-70 [000] ..... 9.0: mm_page_alloc: page=00000000a1b2c3d4 pfn=0x4a31 order=1 migratetype=0 gfp_flags=GFP_KERNEL";
        assert!(matches!(
            parse(l),
            Line::Alloc {
                space: Space::Page,
                key: 0x4a31,
                bytes: 8192,
                ..
            }
        ));
        let l = "<idle>-0 [001] ..s1. 9.0: mm_page_free_batched: page=00000000a1b2c3d4 pfn=0x4a31";
        assert!(matches!(
            parse(l),
            Line::Free {
                space: Space::Page,
                key: 0x4a31,
                ..
            }
        ));
        let l = "insmod-5 [000] ..... 1.0: percpu_alloc_percpu: call_site=kmemleak_test_init+0x1/0x2 [kmemleak_test] reserved=0 is_atomic=0 size=1 align=1 base_addr=ffff88800f000000 off=150620 ptr=0000607fffc24c5c bytes_alloc=1 gfp_flags=GFP_KERNEL";
        assert!(matches!(
            parse(l),
            Line::Alloc {
                space: Space::Percpu,
                key: 0x607fffc24c5c,
                bytes: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_failed_allocation_and_a_free_of_null_are_nothing() {
        let l = "a-1 [000] ..... 1.0: kmalloc: call_site=x+0x1/0x2 ptr=0000000000000000 bytes_req=8 bytes_alloc=0 gfp_flags=GFP_KERNEL node=-1 accounted=false";
        assert_eq!(parse(l), Line::Other);
        let l = "a-1 [000] ..... 1.0: kfree: call_site=x+0x1/0x2 ptr=0000000000000000";
        assert_eq!(parse(l), Line::Other);
    }

    #[test]
    fn stacks_frames_markers_and_losses() {
        assert_eq!(
            parse("  insmod-61 [001] ..... 12.345680: <stack trace>"),
            Line::Stack(origin("insmod", 61, 1))
        );
        let Line::Frame(f) =
            parse(" => error_path::probe_leaky+0x2a/0x90 [leaklab] <ffffffffa000112a>")
        else {
            panic!("a frame")
        };
        assert_eq!(f.address, Some(0xffffffffa000112a));
        assert_eq!(f.module.as_deref(), Some("leaklab"));
        assert_eq!(f.symbol.as_deref(), Some("error_path::probe_leaky"));
        let Line::Frame(f) = parse(" => 0xffffffffa000112a <ffffffffa000112a>") else {
            panic!("a frame")
        };
        assert_eq!(f.address, Some(0xffffffffa000112a));
        assert_eq!(
            parse("leaklab-9 [000] ..... 5.0: tracing_mark_write: leaklab-sync-3"),
            Line::Marker("leaklab-sync-3".into())
        );
        assert_eq!(
            parse("  sh-32 [000] ..... 1.956000: tracing_mark_write+0xc3/0x1f6 <ffffffff810b363d>: hello-marker"),
            Line::Marker("hello-marker".into()),
            "as printed with sym-addr (measured, 6.12.117)"
        );
        assert_eq!(parse("CPU:1 [LOST 37 EVENTS]"), Line::Lost(37));
        assert_eq!(parse("CPU:0 [LOST EVENTS]"), Line::Lost(1));
        assert_eq!(parse(""), Line::Other);
        assert_eq!(parse("garbage [x] y"), Line::Other);
    }
}
