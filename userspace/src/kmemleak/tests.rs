// SPDX-License-Identifier: GPL-2.0
//! The report grammar, the log prefixes and the parallel reader, tested
//! together on real captures and on generated input.

use super::{parallel::*, prefix::*, report::*};

const V612: &str = r#"unreferenced object 0xffff888003a8e000 (size 32):
  comm "insmod", pid 18, jiffies 4294892487
  hex dump (first 32 bytes):
    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  kkkkkkkkkkkkkkkk
  backtrace (crc 94d1eaa6):
    kmemleak_alloc+0x4a/0x80
    __kmalloc_cache_noprof+0x1a2/0x2a0
    0xffffffffa000023a
    do_one_initcall+0x41/0x1e0
"#;

#[test]
fn parses_612_report_with_bare_module_frame() {
    let r = parse(V612);
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(r.address, 0xffff888003a8e000);
    assert_eq!(r.size, 32);
    assert_eq!(r.comm.as_deref(), Some("insmod"));
    assert_eq!(r.pid, Some(18));
    assert_eq!(r.jiffies, Some(4294892487));
    assert_eq!(r.crc.as_deref(), Some("94d1eaa6"));
    assert_eq!(r.frames.len(), 4);
    assert_eq!(r.frames[0].symbol.as_deref(), Some("kmemleak_alloc"));
    assert_eq!(r.frames[0].offset, Some(0x4a));
    assert_eq!(r.frames[2].address, Some(0xffffffffa000023a));
    assert_eq!(r.frames[2].symbol, None);
    assert!(!r.garbled);
}

#[test]
fn parses_61_report_with_address_column_and_module_tag() {
    let text = "unreferenced object 0xffff8880054e8c00 (size 64):\n  comm \"insmod\", pid 90, jiffies 4294937440 (age 9.860s)\n  hex dump (first 32 bytes):\n    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................\n  backtrace:\n    [<ffffffff81327c7e>] kmalloc_trace+0x2e/0xc0\n    [<ffffffffc0010024>] kmemleak_test_init+0x24/0x1000 [kmemleak_test]\n";
    let r = &parse(text)[0];
    assert_eq!(r.jiffies, Some(4294937440));
    assert_eq!(r.crc, None);
    let f = &r.frames[1];
    assert_eq!(f.address, Some(0xffffffffc0010024));
    assert_eq!(f.symbol.as_deref(), Some("kmemleak_test_init"));
    assert_eq!(f.module.as_deref(), Some("kmemleak_test"));
}

#[test]
fn reads_frames_symbolized_by_syzkaller() {
    // syzbot's shape: a source line after each frame, a frame per inlined call.
    let text = "unreferenced object 0xffff888109e0af00 (size 192):\n  comm \"kworker/1:2\", pid 3205, jiffies 4294942324 (age 8.180s)\n  backtrace:\n    [<0000000070ad19b0>] kmalloc include/linux/slab.h:557 [inline]\n    [<0000000070ad19b0>] usb_alloc_urb+0x66/0xe0 drivers/usb/core/urb.c:74\n    lookup_or_create_module_kobject kernel/params.c:774 [inline]\n    entry_SYSCALL_64_after_hwframe+0x1f/0x30 arch/x86/entry/entry_64.S:296\n    nvmet_req_alloc_sgls+0x294/0x4f0 [nvmet]\n";
    let r = &parse(text)[0];
    let names: Vec<_> = r.frames.iter().map(|f| f.symbol.as_deref()).collect();
    assert_eq!(
        names,
        [
            Some("kmalloc"),
            Some("usb_alloc_urb"),
            Some("lookup_or_create_module_kobject"),
            Some("entry_SYSCALL_64_after_hwframe"),
            Some("nvmet_req_alloc_sgls"),
        ]
    );
    assert_eq!(r.frames[0].offset, None);
    assert_eq!(r.frames[1].offset, Some(0x66));
    let modules: Vec<_> = r.frames.iter().map(|f| f.module.as_deref()).collect();
    assert_eq!(modules, [None, None, None, None, Some("nvmet")]);
    assert!(!r.garbled);
}

/// `V612` as a kernel log prints it with `kmemleak.verbose=1`, each line
/// behind `prefix` and "kmemleak: ", with another message in between.
fn as_log(prefix: &str) -> String {
    let mut out = format!("{prefix}virtio_blk virtio0: [vda] 8 512-byte logical blocks\n");
    for (i, l) in V612.lines().enumerate() {
        out += &format!("{prefix}kmemleak: {l}\n");
        if i == 2 {
            out += &format!("{prefix}random: crng init done\n");
        }
    }
    out += &format!(
        "{prefix}kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"
    );
    out + "@1 a line of a program's own output\n"
}

/// A console log of a real run (x86_64 guest, `kmemleak.verbose=1`,
/// error_path and conditional_free leaky twice each, read after rmmod).
const CAPTURE_SAMPLES: &str = include_str!("../../tests/data/leaklab-samples-x86_64.log");
/// A console log of a real run (arm64 guest, `kmemleak.verbose=1`, the
/// kernel's kmemleak-test.ko loaded and unloaded once, with its own
/// `kmemleak: kmalloc(32) = ...` lines and other modules' messages).
const CAPTURE_KMEMLEAK_TEST: &str = include_str!("../../tests/data/kmemleak-test-arm64.log");

#[test]
fn parses_a_captured_console_log_of_the_samples() {
    let r = parse(CAPTURE_SAMPLES);
    let sizes: Vec<u64> = r.iter().map(|r| r.size).collect();
    assert_eq!(sizes, [256, 256, 128, 128]);
    for r in &r {
        assert!(!r.garbled, "{r:?}");
        assert_eq!(r.comm.as_deref(), Some("exe"));
        // The module was unloaded before the scan: its frames are bare.
        assert!(r
            .frames
            .iter()
            .any(|f| f.raw.starts_with("0xffffffffa") && f.address.is_some()));
        // Rust frames of the kernel crate come mangled, and demangle.
        let rust = r
            .frames
            .iter()
            .find_map(|f| f.symbol.as_deref().filter(|s| s.starts_with("_R")));
        assert_eq!(
            rust.map(|s| format!("{:#}", rustc_demangle::demangle(s)))
                .as_deref(),
            Some("<kernel::alloc::allocator::ReallocFunc>::call")
        );
        assert_eq!(
            r.frames.last().and_then(|f| f.symbol.as_deref()),
            Some("entry_SYSCALL_64_after_hwframe")
        );
    }
}

#[test]
fn parses_a_captured_console_log_of_kmemleak_test() {
    let r = parse(CAPTURE_KMEMLEAK_TEST);
    // kmemleak-test.c on one CPU: kmalloc 32, 32, 1024, 1024, 2048, 2048,
    // 4096, 4096; vmalloc(64) five times (a page each); ten 512-byte list
    // elements; kmalloc(129) (192) for the CPU; __alloc_percpu(64).
    let mut sizes: Vec<u64> = r.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    let mut want = vec![32, 32, 64, 192, 1024, 1024, 2048, 2048];
    want.extend([512; 10]);
    want.extend([4096; 7]);
    want.sort_unstable();
    assert_eq!(sizes, want);
    // All allocated by the module's init, which a bare address names now.
    for r in &r {
        assert!(!r.garbled, "{r:?}");
        assert!(
            r.frames
                .iter()
                .any(|f| f.symbol.as_deref() == Some("do_one_initcall")),
            "{r:?}"
        );
        assert!(
            r.frames
                .iter()
                .any(|f| f.symbol.is_none() && f.address.is_some()),
            "{r:?}"
        );
    }
}

#[test]
fn printks_layout_read_at_fixed_places_as_in_full() {
    let lines = [
        "[    6.874545] kmemleak: unreferenced object 0x1 (size 8):",
        "[12345.000001] kmemleak:     kfree+0x1/0x2",
        "[    6.874545] kmemleak:",
        // Then not a kmemleak message, for both readings.
        "[    6.874545] kmemleaks x",
        // Not the fixed layout: the full reading decides.
        "[123456.874545] kmemleak: backtrace (crc 0):",
        "[  1 2.874545] kmemleak: x",
        "[     .874545] kmemleak: x",
        "[    6.87454a] kmemleak: x",
        "[    6.874545]  kmemleak: x",
        "[    6.874545] leaklab: loaded",
        "[    6.874545] kmemlea",
        "[ 6.5] kmemleak: x",
    ];
    for (i, line) in lines.iter().enumerate() {
        let fast = printk_kmemleak(line);
        assert_eq!(fast.is_some(), i < 4, "{line:?}");
        if fast.is_some() {
            assert_eq!(fast, dmesg_kmemleak(line), "{line:?}");
        }
    }
    assert_eq!(printk_kmemleak(lines[0]), Some(&lines[0][15..]));
}

#[test]
fn reads_reports_from_kernel_logs() {
    let want = parse(V612);
    for prefix in [
        "[   18.123456] ",
        "[   18.123456] [    T42] ",
        "<4>[   18.123456] ",
        "4,1203,18123456,-;",
        "Nov 22 05:00:01 rock5b kernel: [   18.123456] ",
        "Nov 22 05:00:01 rock5b kernel: ",
        "[Sun Nov 22 05:00:01 2026] ",
        "",
    ] {
        let log = as_log(prefix);
        assert_eq!(parse(&log), want, "prefix {prefix:?}");
        let streamed = parallel(log.as_bytes(), 16, 2);
        assert_eq!(streamed, want, "streamed, prefix {prefix:?}");
    }
}

/// `text` read by [`parse_parallel`] in chunks of `chunk` bytes: its reports.
fn parallel(text: &[u8], chunk: usize, threads: usize) -> Vec<Report> {
    parallel_parsed(text, chunk, threads).reports
}

/// `text` read by [`parse_parallel`] in chunks of `chunk` bytes, as a
/// stream and as a mapped file, which must agree.
fn parallel_parsed(text: &[u8], chunk: usize, threads: usize) -> Parsed<Vec<Report>> {
    let run = |input| {
        parse_parallel(
            input,
            threads,
            chunk,
            Vec::new,
            |v, b| v.push(b.to_report()),
            |v, later| v.extend(later),
        )
        .unwrap()
    };
    let streamed = run(Input::Read(Box::new(text)));
    // And as a mapped file, its pages given back as it goes.
    let path = std::env::temp_dir().join(format!(
        "leaklab-parse-{}-{:?}.log",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, text).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: the file is this test's own; nothing changes it.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(run(Input::Mapped(&map)), streamed, "mapped");
    streamed
}

#[test]
fn reading_in_parallel_chunks_is_reading_in_order() {
    let mut inputs: Vec<Vec<u8>> = vec![
        CAPTURE_SAMPLES.into(),
        CAPTURE_KMEMLEAK_TEST.into(),
        format!("{V612}{V612}{V612}").into(),
        as_log("[   18.123456] ").repeat(3).into(),
        as_log("4,1203,18123456,-;").into(),
        // The kmemleak file, then a log: from there on, lines without
        // a log prefix (headers too) are not reports.
        format!("{V612}{}{V612}{}", as_log("[ 1.5] "), as_log("<4>")).into(),
        V612.replace('\n', "\r\n").into(),
        // Cut short in the middle of the last report.
        format!("{V612}{}", &V612[..V612.len() - 7]).into(),
        String::new().into(),
    ];
    let mut invalid = Vec::from(V612.as_bytes());
    invalid.splice(40..40, [0xff, 0xe2, b'\n', 0xc3]);
    inputs.push(invalid);
    for text in &inputs {
        let want = parse(&String::from_utf8_lossy(text));
        for chunk in [1, 5, 64, 333, 4096] {
            for threads in [1, 2, 3] {
                assert_eq!(
                    parallel(text, chunk, threads),
                    want,
                    "chunk {chunk}, {threads} threads, input {:?}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }
}

#[test]
fn streaming_hands_out_a_report_when_the_next_begins() {
    let mut p = Parser::new();
    let mut lines = V612.lines();
    assert!(lines.by_ref().all(|l| p.line(l).is_none()));
    let first = p.line("unreferenced object 0xffff888003a8f000 (size 64):");
    assert_eq!(first.map(|r| r.to_report().frames.len()), Some(4));
    assert_eq!(p.finish().map(|r| r.size()), Some(64));
}

#[test]
fn truncated_input_keeps_every_whole_report() {
    let text = format!("{V612}{V612}");
    let full = parse(&text);
    assert_eq!(full.len(), 2);
    let second = text.len() - V612.len();
    for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        let part = parse(&text[..cut]);
        assert!(part.len() <= full.len());
        if cut >= second {
            // The first report was whole: it must come back unchanged.
            assert_eq!(part[0], full[0], "cut at {cut}");
        }
    }
}

#[test]
fn a_report_cut_mid_line_is_kept_and_marked() {
    let cut = &V612[..V612.len() - 5];
    let r = parse(cut);
    assert_eq!(r.len(), 1);
    assert!(r[0].garbled);
    assert_eq!(r[0].frames.len(), 3, "the cut frame is not taken as whole");
    assert!(!parse(V612)[0].garbled);
}

#[test]
fn random_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(0x9e3779b97f4a7c15);
    let mut next = || rng.u64(..);
    let alphabet: Vec<char> = "unreferenced object 0x(size )comm\"pid, jiffies backtrace (crc ):[<>]+/ \n\t0123456789abcdefxyz\u{fffd}é"
            .chars()
            .collect();
    for _ in 0..5000 {
        let len = (next() % 300) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let _ = parse(&s);
        let _ = parse(&format!("{V612}{s}"));
        for line in s.lines() {
            let _ = parse_frame(line);
        }
    }
}

/// The prefixes a kernel log line may carry (none, dmesg, the console,
/// /dev/kmsg, the journal).
const LOG_PREFIXES: [&str; 5] = [
    "",
    "[   18.123456] ",
    "<4>[    0.5] [  T42] ",
    "4,1203,18123456,-;",
    "Nov 22 05:00:01 rock5b kernel: ",
];

/// Other messages between reports.
const LOG_NOISE: [&str; 4] = [
    "random: crng init done",
    "virtio_blk virtio0: [vda] 8 512-byte logical blocks",
    "kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
    "unreferenced objects are fine to talk about",
];

/// Property: reports written in any of the shapes, with or without a
/// log prefix, with other messages and garbage between and inside them,
/// come back exactly, in order, by every reader and at every chunk size.
#[test]
fn whole_reports_always_come_back() {
    let mut rng = fastrand::Rng::with_seed(0x2545f4914f6cdd1d);
    let mut next = move |n: u64| rng.u64(..n.max(1));
    let (prefixes, noise) = (LOG_PREFIXES, LOG_NOISE);
    for _ in 0..300 {
        let prefix = prefixes[next(prefixes.len() as u64) as usize];
        let log = !prefix.is_empty();
        let mut want = Vec::new();
        let mut text = String::new();
        for _ in 0..next(6) {
            let r = Report {
                address: 0xffff_8880_0000_0000 + next(1 << 30) * 8,
                size: 1 + next(8192),
                comm: Some(["insmod", "kworker/0:1", "exe"][next(3) as usize].to_string()),
                pid: Some(next(40000) as u32),
                jiffies: Some(4294892487 + next(100000)),
                crc: Some(format!("{:08x}", next(u32::MAX as u64))),
                frames: (0..1 + next(12))
                    .map(|i| match next(3) {
                        0 => parse_frame(&format!("0xffffffffa00{:05x}", next(1 << 20))),
                        1 => parse_frame(&format!("f{i}+0x{:x}/0x200 [mod_{i}]", next(512))),
                        _ => parse_frame(&format!("[<ffffffff8100{i:04x}>] g{i}+0x1/0x2")),
                    })
                    .collect(),
                garbled: false,
            };
            let mut lines = vec![
                format!("unreferenced object {:#x} (size {}):", r.address, r.size),
                format!(
                    "  comm \"{}\", pid {}, jiffies {}",
                    r.comm.as_deref().unwrap(),
                    r.pid.unwrap(),
                    r.jiffies.unwrap()
                ),
                "  hex dump (first 16 bytes):".into(),
                "    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  kkkkkkkkkkkkkkkk".into(),
                format!("  backtrace (crc {}):", r.crc.as_deref().unwrap()),
            ];
            lines.extend(r.frames.iter().map(|f| format!("    {}", f.raw)));
            for l in lines {
                let tag = if log { "kmemleak: " } else { "" };
                text += &format!("{prefix}{tag}{l}\n");
                // In a log, other messages may come between any two
                // lines (kmemleak's own only between reports).
                if log && next(4) == 0 {
                    text += &format!("{prefix}{}\n", noise[next(2) as usize]);
                }
            }
            if log && next(3) == 0 {
                text += &format!("{prefix}{}\n", noise[next(noise.len() as u64) as usize]);
            }
            want.push(r);
        }
        let got = parse(&text);
        assert_eq!(got, want, "{text}");
        let chunk = 1 + next(300) as usize;
        assert_eq!(
            parallel(text.as_bytes(), chunk, 2),
            want,
            "chunk {chunk}: {text}"
        );
        // Cut anywhere: every report whose lines all came before the cut
        // comes back as it was.
        let cut = next(text.len() as u64 + 1) as usize;
        let part = parse(&text[..cut]);
        let whole = want
            .iter()
            .filter(|r| {
                let last = format!("    {}\n", r.frames.last().unwrap().raw);
                let header = format!("object {:#x} ", r.address);
                text.find(&header)
                    .and_then(|h| text[h..].find(&last).map(|i| h + i + last.len()))
                    .is_some_and(|end| end <= cut)
            })
            .count();
        assert!(part.len() >= whole, "cut at {cut}: {part:?}");
        // The last may be marked garbled: a cut line might have been its.
        let unmarked = |r: &[Report]| -> Vec<Report> {
            r.iter()
                .cloned()
                .map(|r| Report {
                    garbled: false,
                    ..r
                })
                .collect()
        };
        assert_eq!(
            unmarked(&part[..whole]),
            unmarked(&want[..whole]),
            "cut at {cut}"
        );
        assert!(part[..whole.saturating_sub(1)].iter().all(|r| !r.garbled));
    }
}

#[test]
fn percpu_header_and_garbage_are_kept() {
    let r = parse("unreferenced object (percpu) 0x3c4b9d6a2b20 (size 4):\nwhat is this\n");
    assert_eq!(r[0].size, 4);
    assert!(r[0].garbled);
    let r = parse("unreferenced object 0xzz (size\n");
    assert_eq!(r.len(), 1);
    assert!(r[0].garbled);
}

#[test]
fn announcements_of_leaks_are_counted_once_in_any_chunking() {
    // Without kmemleak.verbose=1: two scans announce 2 and 3 leaks, no
    // report follows; with it (as_log), one report and its announcement.
    let quiet = "[    5.100000] virtio_blk virtio0: [vda] 8 512-byte logical blocks\n\
        [   12.345678] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n\
        [   13.000000] kmemleak: Automatic memory scanning thread ended\n\
        @1 kmemleak: 9 new suspected memory leaks, says a program\n\
        Jan  1 00:00:20 host kernel: kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n";
    // Also with the last line cut short of its newline.
    for text in [quiet.to_string(), quiet.trim_end().to_string()] {
        for chunk in [16, 64, 1 << 20] {
            let p = parallel_parsed(text.as_bytes(), chunk, 2);
            assert_eq!(
                (p.reports.len(), p.announced),
                (0, 5),
                "chunk {chunk}: {text}"
            );
        }
    }
    let verbose = as_log("[    6.874545] ");
    let p = parallel_parsed(verbose.as_bytes(), 32, 2);
    assert_eq!((p.reports.len(), p.announced), (1, 1));
    assert_eq!(
        announced("<6>kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"),
        Some(1)
    );
    assert_eq!(
        announced("kmemleak: Kernel memory leak detector initialized"),
        None
    );
}
