// SPDX-License-Identifier: GPL-2.0
//! The records of a tracefs instance's ring buffer, decoded by the layout
//! each event's `format` file gives: the allocation and free events of the
//! `kmem` and `percpu` systems, the `kernel_stack` record the `stacktrace`
//! trigger adds after each allocation, and `trace_marker` writes (`print`).
//!
//! Binary records need no formatting in the kernel (no symbol lookup per
//! frame) and no text parsing here. Nothing here panics: a record it does
//! not know, or one too short for its fields, is [`Event::Other`].

use std::{cell::RefCell, fs, path::Path};

use anyhow::{bail, Context, Result};
use rustc_hash::FxHashMap;

use super::stacks::{Stack, Stacks};

mod format;
pub use format::{Field, Format};

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
    /// vmalloc areas, by address (seen through kprobe events).
    Vmalloc,
}

/// The task and CPU an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The task's pid (in interrupt context, the task interrupted).
    pub pid: u32,
    /// The CPU whose buffer held the event.
    pub cpu: u32,
    /// Task or interrupt context.
    pub context: CpuContext,
}

/// Where an event ran, by its `common_flags` (`TRACE_FLAG_HARDIRQ` 0x08,
/// `TRACE_FLAG_SOFTIRQ` 0x10, `TRACE_FLAG_NMI` 0x40 in 6.1 and 6.12 alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuContext {
    /// A task's own.
    #[default]
    Task,
    /// A softirq (a timer, a tasklet, RCU callbacks, networking).
    Softirq,
    /// A hard interrupt.
    Hardirq,
    /// A non-maskable interrupt.
    Nmi,
}

impl CpuContext {
    /// The context of `common_flags`.
    pub fn of(flags: u64) -> Self {
        match flags {
            f if f & 0x40 != 0 => Self::Nmi,
            f if f & 0x08 != 0 => Self::Hardirq,
            f if f & 0x10 != 0 => Self::Softirq,
            _ => Self::Task,
        }
    }

    /// The name kmemleak gives the allocating "task" in interrupt context
    /// (with pid 0): none for a task's own.
    pub fn comm(self) -> Option<&'static str> {
        match self {
            Self::Task => None,
            Self::Softirq => Some("softirq"),
            Self::Hardirq => Some("hardirq"),
            Self::Nmi => Some("nmi"),
        }
    }
}

/// One record of the ring buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
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
    /// A call that allocates: its address comes with its return
    /// ([`Event::Return`] of the same task).
    Call {
        /// Event origin.
        origin: Origin,
        /// The allocator.
        space: Space,
        /// Bytes as kmemleak counts them.
        bytes: u64,
    },
    /// The return of the task's [`Event::Call`] in `space`, with the
    /// address it allocated (0: none).
    Return {
        /// Event origin.
        origin: Origin,
        /// The allocator.
        space: Space,
        /// The address.
        key: u64,
    },
    /// Frees of each of `keys` in `space` at once.
    Frees {
        /// Event origin.
        origin: Origin,
        /// The allocator.
        space: Space,
        /// Addresses.
        keys: Vec<u64>,
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
    /// A stack trace: the return addresses, innermost first.
    Stack {
        /// Event origin.
        origin: Origin,
        /// The return addresses (one copy per distinct stack).
        frames: Stack,
    },
    /// A `trace_marker` write.
    Marker(String),
    /// The ring buffer of a CPU lost this many events here.
    Lost(u64),
    /// Anything else.
    Other,
}

impl Event {
    /// Who made the event (not said of a marker, a loss or another
    /// record).
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Self::Alloc { origin, .. }
            | Self::Call { origin, .. }
            | Self::Return { origin, .. }
            | Self::Free { origin, .. }
            | Self::Frees { origin, .. }
            | Self::Stack { origin, .. } => Some(origin),
            Self::Marker(_) | Self::Lost(_) | Self::Other => None,
        }
    }
}

/// What a known event means.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An allocation, sized as [`Size`] says.
    Alloc {
        space: Space,
        key: Field,
        size: SizeField,
    },
    /// A call that allocates `size` bytes (page-aligned, as kmemleak counts
    /// a vmalloc area).
    Call {
        space: Space,
        size: Field,
    },
    /// Its return, with the address.
    Return {
        space: Space,
        key: Field,
    },
    Free {
        space: Space,
        key: Field,
    },
    /// An object handed to `kfree_rcu()`: freed after a grace period.
    DeferredFree {
        head: Field,
        arg: Field,
    },
    /// The first `count` of the array `objs`, freed at once.
    BulkFree {
        count: Field,
        objs: Field,
    },
    Stack {
        size: Field,
        caller: Field,
    },
    Marker {
        buf: Field,
    },
}

/// How an allocation event gives its bytes: as kmemleak counts the object,
/// so that both detectors agree on every object both see.
#[derive(Debug, Clone, Copy)]
enum Size {
    /// This field's bytes.
    Bytes(&'static str),
    /// This field's page order.
    Order(&'static str),
    /// kmalloc's: the slab object's size (`bytes_alloc`, what kmemleak
    /// records for a kmalloc cache's object), or, for a large kmalloc
    /// served by the page allocator, the bytes asked for (`bytes_req`,
    /// what kmemleak records then).
    Kmalloc,
}

/// A [`Size`] with its fields located.
#[derive(Debug, Clone, Copy)]
enum SizeField {
    Bytes(Field),
    Order(Field),
    Kmalloc { alloc: Field, req: Field },
}

/// The largest kmalloc a slab cache serves (`KMALLOC_MAX_CACHE_SIZE`, two
/// pages with SLUB); larger ones come from the page allocator.
const KMALLOC_MAX_CACHE_SIZE: u64 = 2 * PAGE_SIZE;

/// The allocation events: (event, space, key field, size).
const ALLOCS: &[(&str, Space, &str, Size)] = &[
    ("kmem/kmalloc", Space::Slab, "ptr", Size::Kmalloc),
    (
        "kmem/kmem_cache_alloc",
        Space::Slab,
        "ptr",
        Size::Bytes("bytes_alloc"),
    ),
    (
        "kmem/mm_page_alloc",
        Space::Page,
        "pfn",
        Size::Order("order"),
    ),
    // A per-CPU object by the size asked for (kmemleak's), not by what all
    // CPUs' copies take together (`bytes_alloc`).
    (
        "percpu/percpu_alloc_percpu",
        Space::Percpu,
        "ptr",
        Size::Bytes("size"),
    ),
];

/// The vmalloc probes ([`Decoder::load`] with a group): the call with the
/// size asked for, its return with the address, the frees.
pub const VMALLOC_CALL: &str = "vmalloc";
/// The return probe of [`VMALLOC_CALL`].
pub const VMALLOC_RETURN: &str = "vmalloc_ret";
/// The free probes.
pub const VMALLOC_FREES: [&str; 2] = ["vfree", "vfree_atomic"];
/// The probe of `kfree_rcu()`'s frees, in the same group where the kernel
/// took it ([`super::vmalloc::Probes`]).
pub const DEFERRED_FREE: &str = "kfree_rcu";
/// The probe of `kmem_cache_free_bulk()` (and `kfree_bulk()`), which frees
/// an array of objects without a `kmem_cache_free` event: a socket buffer
/// freed by `kfree_skb_list()` goes this way.
pub const BULK_FREE: &str = "kfree_bulk";
/// The objects a [`BULK_FREE`] record holds at most (the kernel's
/// `MAX_ARRAY_LEN` for a probe's array): `kfree_skb_list()` frees 16 at a
/// time, the NAPI cache 32; `kvfree_rcu()`'s larger batches were counted
/// when handed over ([`DEFERRED_FREE`]).
pub const BULK_MAX: usize = 64;

/// The free events: (event, space, key field).
const FREES: &[(&str, Space, &str)] = &[
    ("kmem/kfree", Space::Slab, "ptr"),
    ("kmem/kmem_cache_free", Space::Slab, "ptr"),
    ("kmem/mm_page_free", Space::Page, "pfn"),
    ("kmem/mm_page_free_batched", Space::Page, "pfn"),
    ("percpu/percpu_free_percpu", Space::Percpu, "ptr"),
];

/// The object `kvfree_call_rcu(head, arg)` frees: `arg` itself since 6.2
/// (`kvfree_call_rcu(struct rcu_head *, void *ptr)`); before, `arg` is
/// the head's offset in the object (a number below a page), or the object
/// itself when there is no head (`kvfree_call_rcu(NULL, ptr)`).
fn deferred_object(head: u64, arg: u64) -> Option<u64> {
    let key = match (head, arg) {
        (0, ptr) => ptr,
        (head, offset) if offset < PAGE_SIZE => head.checked_sub(offset)?,
        (_, ptr) => ptr,
    };
    (key != 0 && key != u64::MAX).then_some(key)
}

/// Page size the page events are counted in.
pub const PAGE_SIZE: u64 = 4096;

/// The kinds of the kprobe events of group `group`
/// ([`super::vmalloc::Probes`]): the vmalloc call, its return and frees,
/// and the deferred and bulk frees where the kernel took their probes.
fn probe_kinds(group: &str, read: &impl Fn(&str) -> Result<Format>) -> Result<Vec<(Format, Kind)>> {
    let mut formats = Vec::new();
    let event = format!("{group}/{VMALLOC_CALL}");
    let f = read(&event)?;
    let kind = Kind::Call {
        space: Space::Vmalloc,
        size: f.field("size", &event)?,
    };
    formats.push((f, kind));
    let event = format!("{group}/{VMALLOC_RETURN}");
    let f = read(&event)?;
    let kind = Kind::Return {
        space: Space::Vmalloc,
        key: f.field("addr", &event)?,
    };
    formats.push((f, kind));
    for free in VMALLOC_FREES {
        let event = format!("{group}/{free}");
        let f = read(&event)?;
        let kind = Kind::Free {
            space: Space::Vmalloc,
            key: f.field("addr", &event)?,
        };
        formats.push((f, kind));
    }
    // Only where the kernel took the probe.
    let event = format!("{group}/{DEFERRED_FREE}");
    if let Ok(f) = read(&event) {
        let kind = Kind::DeferredFree {
            head: f.field("head", &event)?,
            arg: f.field("arg", &event)?,
        };
        formats.push((f, kind));
    }
    let event = format!("{group}/{BULK_FREE}");
    if let Ok(f) = read(&event) {
        let kind = Kind::BulkFree {
            count: f.field("count", &event)?,
            objs: f.field("objs", &event)?,
        };
        formats.push((f, kind));
    }
    Ok(formats)
}

/// Decodes records by the format files of one tracefs `events` directory.
#[derive(Debug, Clone)]
pub struct Decoder {
    kinds: FxHashMap<u16, Kind>,
    /// The stacks decoded so far, each kept once.
    stacks: RefCell<Stacks>,
    common_type: Field,
    common_pid: Field,
    common_flags: Option<Field>,
}

impl Decoder {
    /// The names of the events this decoder reads, allocations first.
    pub fn allocation_events() -> impl Iterator<Item = &'static str> {
        ALLOCS.iter().map(|a| a.0)
    }

    /// The free events it reads.
    pub fn free_events() -> impl Iterator<Item = &'static str> {
        FREES.iter().map(|f| f.0)
    }

    /// Reads the format files under `events` (a tracefs `events`
    /// directory), with the vmalloc probes of group `vmalloc` where there
    /// are some.
    pub fn load(events: &Path, vmalloc: Option<&str>) -> Result<Self> {
        Self::from_formats(vmalloc, |event| {
            let path = events.join(event).join("format");
            fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (the kernel needs CONFIG_EVENT_TRACING)",
                    path.display()
                )
            })
        })
    }

    /// Builds the decoder from the format files `text` gives by event name
    /// (`kmem/kmalloc`), with the vmalloc probes of group `vmalloc`.
    pub fn from_formats(
        vmalloc: Option<&str>,
        text: impl Fn(&str) -> Result<String>,
    ) -> Result<Self> {
        let read = |event: &str| -> Result<Format> {
            Format::parse(&text(event)?).with_context(|| format!("parsing the format of {event}"))
        };
        let mut formats = Vec::new();
        for &(event, space, key, size) in ALLOCS {
            let f = read(event)?;
            let size = match size {
                Size::Bytes(n) => SizeField::Bytes(f.field(n, event)?),
                Size::Order(n) => SizeField::Order(f.field(n, event)?),
                Size::Kmalloc => SizeField::Kmalloc {
                    alloc: f.field("bytes_alloc", event)?,
                    req: f.field("bytes_req", event)?,
                },
            };
            let kind = Kind::Alloc {
                space,
                key: f.field(key, event)?,
                size,
            };
            formats.push((f, kind));
        }
        if let Some(group) = vmalloc {
            formats.extend(probe_kinds(group, &read)?);
        }
        for &(event, space, key) in FREES {
            let f = read(event)?;
            let kind = Kind::Free {
                space,
                key: f.field(key, event)?,
            };
            formats.push((f, kind));
        }
        let stack = read("ftrace/kernel_stack")?;
        let kind = Kind::Stack {
            size: stack.field("size", "kernel_stack")?,
            caller: stack.field("caller", "kernel_stack")?,
        };
        formats.push((stack, kind));
        let print = read("ftrace/print")?;
        let kind = Kind::Marker {
            buf: print.field("buf", "print")?,
        };
        formats.push((print, kind));
        let first = &formats[0].0;
        let (common_type, common_pid) = (
            first.field("common_type", "kmalloc")?,
            first.field("common_pid", "kmalloc")?,
        );
        if common_type.size != 2 {
            bail!("common_type is {} bytes, not 2", common_type.size);
        }
        let common_flags = first.fields.get("common_flags").copied();
        Ok(Self {
            kinds: formats.into_iter().map(|(f, k)| (f.id, k)).collect(),
            common_type,
            common_pid,
            common_flags,
            stacks: RefCell::default(),
        })
    }

    /// Decodes one record of CPU `cpu`'s buffer.
    pub fn decode(&self, cpu: u32, record: &[u8]) -> Event {
        self.try_decode(cpu, record).unwrap_or(Event::Other)
    }

    fn try_decode(&self, cpu: u32, record: &[u8]) -> Option<Event> {
        let id = u16::try_from(self.common_type.read(record)?).ok()?;
        let kind = self.kinds.get(&id)?;
        let flags = self.common_flags.and_then(|f| f.read(record));
        let origin = Origin {
            pid: u32::try_from(self.common_pid.read(record)?).ok()?,
            cpu,
            context: CpuContext::of(flags.unwrap_or(0)),
        };
        Some(match *kind {
            Kind::Alloc { space, key, size } => {
                let key = key.read(record)?;
                let bytes = match size {
                    SizeField::Bytes(f) => f.read(record)?,
                    SizeField::Order(f) => {
                        PAGE_SIZE.checked_shl(u32::try_from(f.read(record)?).ok()?)?
                    }
                    SizeField::Kmalloc { alloc, req } => match alloc.read(record)? {
                        large if large > KMALLOC_MAX_CACHE_SIZE => req.read(record)?,
                        slab => slab,
                    },
                };
                // A failed allocation (no pointer, pfn -1) allocated nothing.
                if key == 0 || key == u64::MAX {
                    return None;
                }
                Event::Alloc {
                    origin,
                    space,
                    key,
                    bytes,
                }
            }
            Kind::Call { space, size } => Event::Call {
                origin,
                space,
                bytes: size.read(record)?.checked_next_multiple_of(PAGE_SIZE)?,
            },
            Kind::Return { space, key } => Event::Return {
                origin,
                space,
                key: key.read(record)?,
            },
            Kind::Free { space, key } => {
                let key = key.read(record)?;
                if key == 0 || key == u64::MAX {
                    return None;
                }
                Event::Free { origin, space, key }
            }
            Kind::DeferredFree { head, arg } => {
                let key = deferred_object(head.read(record)?, arg.read(record)?)?;
                Event::Free {
                    origin,
                    space: Space::Slab,
                    key,
                }
            }
            Kind::BulkFree { count, objs } => {
                let count = usize::try_from(count.read(record)?).ok()?;
                let array = record.get(objs.offset..objs.offset + objs.size)?;
                let keys = array
                    .chunks_exact(8)
                    .take(count)
                    .filter_map(|w| Some(u64::from_ne_bytes(w.try_into().ok()?)))
                    .filter(|&k| k != 0 && k != u64::MAX)
                    .collect();
                Event::Frees {
                    origin,
                    space: Space::Slab,
                    keys,
                }
            }
            Kind::Stack { size, caller } => {
                let n = usize::try_from(size.read(record)?).ok()?;
                let words = record.get(caller.offset..)?.chunks_exact(8);
                let frames = words
                    .take(n)
                    .filter_map(|w| Some(u64::from_ne_bytes(w.try_into().ok()?)))
                    .filter(|&a| a != 0 && a != u64::MAX);
                Event::Stack {
                    origin,
                    frames: self.stacks.borrow_mut().intern(frames),
                }
            }
            Kind::Marker { buf } => {
                let text = record.get(buf.offset..)?;
                let end = text
                    .iter()
                    .position(|&b| b == 0 || b == b'\n')
                    .unwrap_or(text.len());
                Event::Marker(String::from_utf8_lossy(&text[..end]).into_owned())
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
