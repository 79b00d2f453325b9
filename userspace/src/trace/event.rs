//! The records of a tracefs instance's ring buffer, decoded by the layout
//! each event's `format` file gives: the allocation and free events of the
//! `kmem` and `percpu` systems, the `kernel_stack` record the `stacktrace`
//! trigger adds after each allocation, and `trace_marker` writes (`print`).
//!
//! Binary records need no formatting in the kernel (no symbol lookup per
//! frame) and no text parsing here. Nothing here panics: a record it does
//! not know, or one too short for its fields, is [`Event::Other`].

use std::{collections::HashMap, fs, path::Path};

use anyhow::{bail, Context, Result};

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
        /// The return addresses.
        frames: Vec<u64>,
    },
    /// A `trace_marker` write.
    Marker(String),
    /// The ring buffer of a CPU lost this many events here.
    Lost(u64),
    /// Anything else.
    Other,
}

/// Where a field lies in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Bytes from the record's start.
    pub offset: usize,
    /// Its size in bytes (0 for a flexible array).
    pub size: usize,
}

impl Field {
    /// The field as an unsigned number (native byte order), if the record
    /// holds it.
    pub fn read(self, record: &[u8]) -> Option<u64> {
        let b = record.get(self.offset..self.offset.checked_add(self.size)?)?;
        Some(match self.size {
            1 => u64::from(b[0]),
            2 => u64::from(u16::from_ne_bytes(b.try_into().ok()?)),
            4 => u64::from(u32::from_ne_bytes(b.try_into().ok()?)),
            8 => u64::from_ne_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }
}

/// An event's `format` file: its id and its fields by name.
#[derive(Debug, Clone, Default)]
pub struct Format {
    /// The `common_type` of its records.
    pub id: u16,
    /// Fields by name (an array's name without its brackets).
    pub fields: HashMap<String, Field>,
}

impl Format {
    /// Parses a `format` file (`ID: n` and `field:decl name; offset:o;
    /// size:s; signed:x;` lines).
    pub fn parse(text: &str) -> Result<Self> {
        let mut f = Self::default();
        let mut id = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("ID:") {
                id = v.trim().parse().ok();
                continue;
            }
            let Some(decl) = line.strip_prefix("field:") else {
                continue;
            };
            let mut parts = decl.split(';').map(str::trim);
            let Some(name) = parts
                .next()
                .and_then(|d| d.split_whitespace().last())
                .map(|n| n.split('[').next().unwrap_or(n))
            else {
                continue;
            };
            let (mut offset, mut size) = (None, None);
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            if let (Some(offset), Some(size)) = (offset, size) {
                f.fields.insert(name.to_string(), Field { offset, size });
            }
        }
        f.id = id.context("the format has no ID line")?;
        Ok(f)
    }

    fn field(&self, name: &str, event: &str) -> Result<Field> {
        self.fields
            .get(name)
            .copied()
            .with_context(|| format!("the trace event {event} has no field {name}"))
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

/// The free events: (event, space, key field).
const FREES: &[(&str, Space, &str)] = &[
    ("kmem/kfree", Space::Slab, "ptr"),
    ("kmem/kmem_cache_free", Space::Slab, "ptr"),
    ("kmem/mm_page_free", Space::Page, "pfn"),
    ("kmem/mm_page_free_batched", Space::Page, "pfn"),
    ("percpu/percpu_free_percpu", Space::Percpu, "ptr"),
];

/// Page size the page events are counted in.
pub const PAGE_SIZE: u64 = 4096;

/// Decodes records by the format files of one tracefs `events` directory.
#[derive(Debug, Clone)]
pub struct Decoder {
    kinds: HashMap<u16, Kind>,
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
            Kind::Stack { size, caller } => {
                let n = usize::try_from(size.read(record)?).ok()?;
                let words = record.get(caller.offset..)?.chunks_exact(8);
                let frames = words
                    .take(n)
                    .filter_map(|w| Some(u64::from_ne_bytes(w.try_into().ok()?)))
                    .filter(|&a| a != 0 && a != u64::MAX)
                    .collect();
                Event::Stack { origin, frames }
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
pub(crate) mod tests {
    use super::*;

    /// The format files of 6.12 on x86_64 as the kernel printed them
    /// (measured; print fmt lines left out).
    pub const FORMATS: &[(&str, &str)] = &[
        ("kmem/kmalloc", "name: kmalloc\nID: 261\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long call_site;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:const void * ptr;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:size_t bytes_req;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:size_t bytes_alloc;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:unsigned long gfp_flags;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:int node;\toffset:48;\tsize:4;\tsigned:1;\n"),
        ("kmem/kmem_cache_alloc", "ID: 262\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:const void * ptr;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:size_t bytes_alloc;\toffset:32;\tsize:8;\tsigned:0;\n"),
        ("kmem/mm_page_alloc", "ID: 256\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:unsigned int order;\toffset:16;\tsize:4;\tsigned:0;\n"),
        ("percpu/percpu_alloc_percpu", "ID: 250\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:size_t size;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:void * ptr;\toffset:56;\tsize:8;\tsigned:0;\n\tfield:size_t bytes_alloc;\toffset:64;\tsize:8;\tsigned:0;\n"),
        ("kmem/kfree", "ID: 263\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:unsigned long call_site;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:const void * ptr;\toffset:16;\tsize:8;\tsigned:0;\n"),
        ("kmem/kmem_cache_free", "ID: 264\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:const void * ptr;\toffset:16;\tsize:8;\tsigned:0;\n"),
        ("kmem/mm_page_free", "ID: 257\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;\n"),
        ("kmem/mm_page_free_batched", "ID: 258\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;\n"),
        ("percpu/percpu_free_percpu", "ID: 251\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:void * ptr;\toffset:24;\tsize:8;\tsigned:0;\n"),
        ("ftrace/kernel_stack", "name: kernel_stack\nID: 4\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int size;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long caller[8];\toffset:16;\tsize:64;\tsigned:0;\n"),
        ("ftrace/print", "name: print\nID: 5\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:char buf[];\toffset:16;\tsize:0;\tsigned:0;\n"),
    ];

    /// A decoder of [`FORMATS`].
    pub fn decoder() -> Decoder {
        Decoder::from_formats(None, |event| {
            FORMATS
                .iter()
                .find(|f| f.0 == event)
                .map(|f| f.1.to_string())
                .context("no such event")
        })
        .unwrap()
    }

    /// A record: the common header (`id`, pid) and then `fields` at their
    /// offsets.
    pub fn record(id: u16, pid: u32, len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
        let mut r = vec![0u8; len];
        r[0..2].copy_from_slice(&id.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        for (offset, bytes) in fields {
            r[*offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        r
    }

    /// The format files of Debian 12's own kernels as they printed them
    /// (`=== system/event` before each), captured in QEMU.
    const DEBIAN: [(&str, &str); 4] = [
        (
            "6.1-x86_64",
            include_str!("../../tests/data/formats/6.1-x86_64.txt"),
        ),
        (
            "6.12-x86_64",
            include_str!("../../tests/data/formats/6.12-x86_64.txt"),
        ),
        (
            "6.1-arm64",
            include_str!("../../tests/data/formats/6.1-arm64.txt"),
        ),
        (
            "6.12-arm64",
            include_str!("../../tests/data/formats/6.12-arm64.txt"),
        ),
    ];

    fn captured<'a>(text: &'a str, event: &str) -> Option<&'a str> {
        text.split("=== ")
            .find_map(|part| part.strip_prefix(event)?.strip_prefix('\n'))
    }

    /// What the parser meets on 6.1 and on 6.12: the same fields at the
    /// same places, under other event ids (never written in the code), and
    /// the per-CPU event's `size` beside `bytes_alloc` on both.
    #[test]
    fn debian_6_1_and_6_12_formats_decode_alike() {
        let mut ids = Vec::new();
        for (kernel, text) in DEBIAN {
            let d = Decoder::from_formats(None, |e| {
                captured(text, e)
                    .map(str::to_string)
                    .with_context(|| format!("{kernel} has no {e}"))
            })
            .unwrap_or_else(|e| panic!("{kernel}: {e:#}"));
            let kmalloc = Format::parse(captured(text, "kmem/kmalloc").unwrap()).unwrap();
            ids.push(kmalloc.id);
            let at = |f: &str| kmalloc.fields[f].offset;
            let ptr = 0xffff888003c4a000u64.to_ne_bytes();
            let r = record(
                kmalloc.id,
                61,
                at("node") + 4,
                &[
                    (2, &[0x10]),
                    (at("ptr"), &ptr),
                    (at("bytes_req"), &200u64.to_ne_bytes()),
                    (at("bytes_alloc"), &256u64.to_ne_bytes()),
                ],
            );
            assert_eq!(
                d.decode(0, &r),
                Event::Alloc {
                    origin: Origin {
                        pid: 61,
                        cpu: 0,
                        context: CpuContext::Softirq
                    },
                    space: Space::Slab,
                    key: 0xffff888003c4a000,
                    bytes: 256
                },
                "{kernel}"
            );
            let percpu =
                Format::parse(captured(text, "percpu/percpu_alloc_percpu").unwrap()).unwrap();
            let at = |f: &str| percpu.fields[f].offset;
            let r = record(
                percpu.id,
                5,
                at("gfp_flags") + 8,
                &[
                    (at("ptr"), &0x607fffc24c5cu64.to_ne_bytes()),
                    (at("size"), &32u64.to_ne_bytes()),
                    (at("bytes_alloc"), &64u64.to_ne_bytes()),
                ],
            );
            assert!(
                matches!(d.decode(0, &r), Event::Alloc { bytes: 32, .. }),
                "{kernel}: {:?}",
                d.decode(0, &r)
            );
        }
        assert_ne!(ids[0], ids[1], "6.1's and 6.12's ids differ");
    }

    #[test]
    fn a_format_file_gives_the_id_and_each_field_s_place() {
        let f = Format::parse(FORMATS[9].1).unwrap();
        assert_eq!(f.id, 4);
        assert_eq!(f.fields["size"], Field { offset: 8, size: 4 });
        assert_eq!(
            f.fields["caller"],
            Field {
                offset: 16,
                size: 64
            }
        );
        assert_eq!(f.fields["common_pid"], Field { offset: 4, size: 4 });
        assert!(Format::parse("field:int x;\toffset:0;\tsize:4;").is_err());
    }

    #[test]
    fn allocation_and_free_records_give_their_space_key_and_size() {
        let d = decoder();
        let ptr = 0xffff888003c4a000u64.to_ne_bytes();
        let r = record(261, 61, 56, &[(16, &ptr), (32, &256u64.to_ne_bytes())]);
        assert_eq!(
            d.decode(1, &r),
            Event::Alloc {
                origin: Origin {
                    pid: 61,
                    cpu: 1,
                    context: CpuContext::Task
                },
                space: Space::Slab,
                key: 0xffff888003c4a000,
                bytes: 256
            }
        );
        let r = record(264, 12, 40, &[(16, &ptr)]);
        assert_eq!(
            d.decode(0, &r),
            Event::Free {
                origin: Origin {
                    pid: 12,
                    cpu: 0,
                    context: CpuContext::Task
                },
                space: Space::Slab,
                key: 0xffff888003c4a000
            }
        );
        let r = record(
            256,
            70,
            40,
            &[(8, &0x4a31u64.to_ne_bytes()), (16, &1u32.to_ne_bytes())],
        );
        assert!(matches!(
            d.decode(0, &r),
            Event::Alloc {
                space: Space::Page,
                key: 0x4a31,
                bytes: 8192,
                ..
            }
        ));
        let r = record(258, 0, 16, &[(8, &0x4a31u64.to_ne_bytes())]);
        assert!(matches!(
            d.decode(1, &r),
            Event::Free {
                space: Space::Page,
                key: 0x4a31,
                ..
            }
        ));
        let r = record(
            250,
            5,
            80,
            &[
                (24, &32u64.to_ne_bytes()),
                (56, &0x607fffc24c5cu64.to_ne_bytes()),
                (64, &96u64.to_ne_bytes()),
            ],
        );
        assert!(
            matches!(
                d.decode(0, &r),
                Event::Alloc {
                    space: Space::Percpu,
                    key: 0x607fffc24c5c,
                    bytes: 32,
                    ..
                }
            ),
            "a per-CPU object counts the size asked for, as kmemleak does, not all CPUs' copies"
        );
        // A large kmalloc (pages): the bytes asked for, as kmemleak counts.
        let r = record(
            261,
            61,
            56,
            &[
                (16, &ptr),
                (24, &10000u64.to_ne_bytes()),
                (32, &16384u64.to_ne_bytes()),
            ],
        );
        assert!(matches!(d.decode(0, &r), Event::Alloc { bytes: 10000, .. }));
        let r = record(
            261,
            61,
            56,
            &[
                (16, &ptr),
                (24, &200u64.to_ne_bytes()),
                (32, &256u64.to_ne_bytes()),
            ],
        );
        assert!(
            matches!(d.decode(0, &r), Event::Alloc { bytes: 256, .. }),
            "a slab kmalloc counts its object's size"
        );
    }

    #[test]
    fn failed_allocations_short_records_and_unknown_events_are_nothing() {
        let d = decoder();
        let r = record(261, 1, 56, &[(32, &8u64.to_ne_bytes())]);
        assert_eq!(d.decode(0, &r), Event::Other, "ptr 0");
        let r = record(256, 1, 24, &[(8, &u64::MAX.to_ne_bytes())]);
        assert_eq!(d.decode(0, &r), Event::Other, "pfn -1");
        let r = record(261, 1, 20, &[]);
        assert_eq!(d.decode(0, &r), Event::Other, "too short for bytes_alloc");
        assert_eq!(d.decode(0, &record(999, 1, 16, &[])), Event::Other);
        assert_eq!(d.decode(0, &[1]), Event::Other);
        assert_eq!(d.decode(0, &[]), Event::Other);
    }

    #[test]
    fn a_stack_holds_its_stated_number_of_frames_and_a_marker_its_text() {
        let d = decoder();
        let mut frames = Vec::new();
        for a in [0xffffffff81000010u64, 0xffffffffa000112a, 0xdead] {
            frames.extend_from_slice(&a.to_ne_bytes());
        }
        let r = record(
            4,
            7,
            16 + frames.len(),
            &[(8, &2u32.to_ne_bytes()), (16, &frames)],
        );
        assert_eq!(
            d.decode(0, &r),
            Event::Stack {
                origin: Origin {
                    pid: 7,
                    cpu: 0,
                    context: CpuContext::Task
                },
                frames: vec![0xffffffff81000010, 0xffffffffa000112a]
            }
        );
        let r = record(4, 7, 32, &[(8, &100u32.to_ne_bytes()), (16, &frames[..16])]);
        assert!(
            matches!(d.decode(0, &r), Event::Stack { frames, .. } if frames.len() == 2),
            "a size past the record stops at its end"
        );
        let r = record(5, 9, 40, &[(16, b"leaklab-sync-3\n\0")]);
        assert_eq!(d.decode(0, &r), Event::Marker("leaklab-sync-3".into()));
    }

    #[test]
    fn a_missing_format_file_says_what_the_kernel_needs() {
        let e = Decoder::load(Path::new("/nonexistent/events"), None).unwrap_err();
        assert!(format!("{e:#}").contains("CONFIG_EVENT_TRACING"), "{e:#}");
    }
}
