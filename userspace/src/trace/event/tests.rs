// SPDX-License-Identifier: GPL-2.0
//! Unit tests of [`super`], and what other modules' tests build on.

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
        include_str!("../../../tests/data/formats/6.1-x86_64.txt"),
    ),
    (
        "6.12-x86_64",
        include_str!("../../../tests/data/formats/6.12-x86_64.txt"),
    ),
    (
        "6.1-arm64",
        include_str!("../../../tests/data/formats/6.1-arm64.txt"),
    ),
    (
        "6.12-arm64",
        include_str!("../../../tests/data/formats/6.12-arm64.txt"),
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
        let percpu = Format::parse(captured(text, "percpu/percpu_alloc_percpu").unwrap()).unwrap();
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
}

#[test]
fn sizes_are_counted_as_kmemleak_counts_them() {
    let d = decoder();
    let ptr = 0xffff888003c4a000u64.to_ne_bytes();
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
            frames: vec![0xffffffff81000010, 0xffffffffa000112a].into()
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

#[test]
fn kfree_rcu_frees_the_object_its_head_lies_in() {
    let object = 0xffff_8880_03a8_e000;
    // 6.12: kvfree_call_rcu(head, ptr).
    assert_eq!(deferred_object(object + 0x10, object), Some(object));
    // 6.1: kvfree_call_rcu(head, offset of the head in the object).
    assert_eq!(deferred_object(object + 0x10, 0x10), Some(object));
    // Without a head (kfree_rcu_mightsleep): the object itself, both.
    assert_eq!(deferred_object(0, object), Some(object));
    assert_eq!(deferred_object(0, 0), None);
    assert_eq!(deferred_object(0x8, 0x10), None);
}

/// `kmem_cache_free_bulk()`'s probe as Debian 6.12 x86_64 printed its
/// format (print fmt left out), and the vmalloc probes it comes with.
const BULK_FORMAT: &str = "name: kfree_bulk\nID: 1496\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:u64 count;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:u64 objs[];\toffset:24;\tsize:512;\tsigned:0;\n";

fn probe_format(id: u16, field: &str) -> String {
    format!("ID: {id}\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:u64 {field};\toffset:16;\tsize:8;\tsigned:0;\n")
}

/// A bulk free frees the first `count` objects of its array and nothing
/// after them: the probe reads 64 words, and past `count` they are
/// whatever the caller's memory held (a live object's address among them,
/// as captured: `kfree_skb_list()`'s array of 16 on its stack).
#[test]
fn a_bulk_free_frees_its_count_of_objects_and_not_the_words_after() {
    let d = Decoder::from_formats(Some("g"), |event| {
        Ok(match event {
            "g/vmalloc" => probe_format(1490, "size"),
            "g/vmalloc_ret" => probe_format(1491, "addr"),
            "g/vfree" => probe_format(1492, "addr"),
            "g/vfree_atomic" => probe_format(1493, "addr"),
            "g/kfree_bulk" => BULK_FORMAT.to_string(),
            _ => FORMATS
                .iter()
                .find(|f| f.0 == event)
                .map(|f| f.1.to_string())
                .context("no such event")?,
        })
    })
    .unwrap();
    let (freed, stale) = (0xff37_3e2e_1ec9_9600u64, 0xff37_3e2e_1952_be00u64);
    let mut objs = vec![0u8; 512];
    objs[..8].copy_from_slice(&freed.to_ne_bytes());
    objs[19 * 8..20 * 8].copy_from_slice(&stale.to_ne_bytes());
    let r = record(
        1496,
        137,
        24 + 512,
        &[(16, &1u64.to_ne_bytes()), (24, &objs)],
    );
    match d.decode(0, &r) {
        Event::Frees { space, keys, .. } => {
            assert_eq!(space, Space::Slab);
            assert_eq!(keys, [freed]);
        }
        e => panic!("{e:?}"),
    }
    // A count past the array is the array.
    let r = record(
        1496,
        137,
        24 + 512,
        &[(16, &100u64.to_ne_bytes()), (24, &objs)],
    );
    assert!(matches!(d.decode(0, &r), Event::Frees { keys, .. } if keys == [freed, stale]));
}
