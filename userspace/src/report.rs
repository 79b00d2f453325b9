//! Parsing kmemleak reports.
//!
//! Takes the text of `/sys/kernel/debug/kmemleak` (or a saved copy), or a
//! kernel log with the reports `kmemleak.verbose=1` prints there, and
//! returns one [`Report`] per `unreferenced object` block, streaming. It accepts the
//! shapes printed from 6.1 to 6.12: frames with or without the `[<addr>]`
//! column, `backtrace:` or `backtrace (crc ...):`, `(age ...)` after the
//! jiffies, module tags such as `[kmemleak_test]`, and bare `0xffff...`
//! frames (a module that was unloaded before the report was read). It never
//! panics: a block it cannot make sense of is kept with `garbled` set.

use serde::{Deserialize, Serialize};

/// One kmemleak report: an object that nothing seemed to point to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The object's address.
    pub address: u64,
    /// The object's size in bytes.
    pub size: u64,
    /// The allocating task's name.
    pub comm: Option<String>,
    /// The allocating task's pid.
    pub pid: Option<u32>,
    /// The jiffies value at allocation.
    pub jiffies: Option<u64>,
    /// Checksum of the object's contents (not of the stack).
    pub crc: Option<String>,
    /// The allocation backtrace, innermost frame first.
    pub frames: Vec<Frame>,
    /// Set when a line of the block could not be understood.
    pub garbled: bool,
}

/// One backtrace line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The line as printed, trimmed.
    pub raw: String,
    /// The return address, from a bare frame or the `[<addr>]` column.
    pub address: Option<u64>,
    /// The symbol, when the kernel could name it.
    pub symbol: Option<String>,
    /// The offset into `symbol`.
    pub offset: Option<u64>,
    /// The module the symbol belongs to, from a `[module]` tag.
    pub module: Option<String>,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Parses one backtrace line such as `kfree+0x1/0x2 [mod]`,
/// `[<ffffffff81000000>] kfree+0x1/0x2` or `0xffffffffa000023a`.
pub fn parse_frame(line: &str) -> Frame {
    let raw = line.trim().to_string();
    let mut rest = raw.as_str();
    let mut address = None;
    if let Some(after) = rest.strip_prefix("[<") {
        if let Some((addr, tail)) = after.split_once(">]") {
            address = hex(addr);
            rest = tail.trim();
        }
    }
    let mut module = None;
    if let Some(open) = rest.rfind(" [") {
        if rest.ends_with(']') {
            module = Some(rest[open + 2..rest.len() - 1].to_string());
            rest = rest[..open].trim();
        }
    }
    let (mut symbol, mut offset) = (None, None);
    if rest.starts_with("0x") && rest.len() > 2 && rest[2..].chars().all(|c| c.is_ascii_hexdigit())
    {
        address = address.or_else(|| hex(rest));
    } else if let Some((sym, off)) = rest.split_once('+') {
        symbol = Some(sym.to_string());
        offset = off.split('/').next().and_then(hex);
    } else if !rest.is_empty() {
        symbol = Some(rest.to_string());
    }
    Frame {
        raw,
        address,
        symbol,
        offset,
        module,
    }
}

/// Parses the header `unreferenced object 0xADDR (size N):` (with an
/// optional `(percpu)` or `(phys)` after "object").
fn parse_header(line: &str) -> Option<(u64, u64)> {
    let rest = line
        .trim()
        .strip_prefix("unreferenced object")?
        .trim_start();
    let rest = rest
        .strip_prefix("(percpu)")
        .or_else(|| rest.strip_prefix("(phys)"))
        .unwrap_or(rest)
        .trim_start();
    let (addr, rest) = rest.split_once(' ')?;
    let size = rest.trim().strip_prefix("(size ")?.split(')').next()?;
    Some((hex(addr)?, size.trim().parse().ok()?))
}

/// Where the parser is inside a report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Head,
    Hex,
    Trace,
    Done,
}

/// A streaming parser: feed it lines, it hands out each report when the
/// next one begins or the input ends, so memory stays bounded by one report.
///
/// It reads the kmemleak file as it is and kernel logs alike (`dmesg`,
/// `/dev/kmsg` records, syslog or journal lines, a serial console): lines with
/// a log prefix count only when the message is kmemleak's, as
/// `kmemleak.verbose=1` prints reports, and other messages are skipped.
#[derive(Debug)]
pub struct Parser {
    current: Option<Report>,
    part: Part,
    log: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser at the start of its input.
    pub fn new() -> Self {
        Self {
            current: None,
            part: Part::Head,
            log: false,
        }
    }

    /// Feeds one line (without its newline); returns the report it completed.
    pub fn line(&mut self, line: &str) -> Option<Report> {
        let line = match log_body(line) {
            Some(body) => {
                self.log = true;
                body.strip_prefix("kmemleak: ")?
            }
            // Console lines around a log (a program's own output) are not reports.
            None if self.log => return None,
            None => line.strip_prefix("kmemleak: ").unwrap_or(line),
        };
        let t = line.trim();
        if t.starts_with("unreferenced object") {
            let (address, size, garbled) = match parse_header(t) {
                Some((a, s)) => (a, s, false),
                None => (0, 0, true),
            };
            self.part = Part::Head;
            return self.current.replace(Report {
                address,
                size,
                comm: None,
                pid: None,
                jiffies: None,
                crc: None,
                frames: Vec::new(),
                garbled,
            });
        }
        let r = self.current.as_mut()?;
        if t.is_empty() || self.part == Part::Done {
            return None;
        }
        if let Some(rest) = t.strip_prefix("comm \"") {
            if let Some((comm, tail)) = rest.split_once('"') {
                r.comm = Some(comm.to_string());
                for field in tail.split(',') {
                    let field = field.trim();
                    if let Some(p) = field.strip_prefix("pid ") {
                        r.pid = p.trim().parse().ok();
                    } else if let Some(j) = field.strip_prefix("jiffies ") {
                        r.jiffies = j.split_whitespace().next().and_then(|j| j.parse().ok());
                    }
                }
            } else {
                r.garbled = true;
            }
        } else if t.starts_with("hex dump") {
            self.part = Part::Hex;
        } else if t.starts_with("backtrace") {
            self.part = Part::Trace;
            if let Some(crc) = t.strip_prefix("backtrace (crc ") {
                r.crc = crc.strip_suffix("):").map(str::to_string);
            }
        } else if self.part == Part::Trace && line.starts_with(char::is_whitespace) {
            r.frames.push(parse_frame(t));
        } else if self.part == Part::Trace {
            // Report lines are indented; anything else ends the report.
            self.part = Part::Done;
        } else if self.part == Part::Head {
            r.garbled = true;
        }
        None
    }

    /// Notes that the input ended in the middle of `line` (no newline after
    /// it): the report it belongs to is kept, marked garbled.
    pub fn cut(&mut self, line: &str) {
        let t = log_body(line).unwrap_or(line).trim();
        let t = t.strip_prefix("kmemleak:").map_or(t, str::trim);
        // A cut header begins a report that is lost; the one before was whole.
        let header = t.starts_with("unreferenced object") || "unreferenced object".starts_with(t);
        if let Some(r) = self.current.as_mut() {
            if !header && self.part != Part::Done {
                r.garbled = true;
            }
        }
    }

    /// Ends the input and returns the last report.
    pub fn finish(self) -> Option<Report> {
        self.current
    }
}

/// The message of a kernel log line with its prefixes taken off (a
/// `/dev/kmsg` record header, `<level>`, a syslog or journal
/// `... kernel: `, `[timestamp]` and `[T123]` caller fields), or `None` when
/// the line has none of them.
pub fn log_body(line: &str) -> Option<&str> {
    let mut s = line;
    let mut prefixed = false;
    // /dev/kmsg: "level,seq,usec,flags;message".
    if let Some((head, rest)) = s.split_once(';') {
        let f: Vec<&str> = head.split(',').collect();
        if f.len() >= 3
            && f[..3]
                .iter()
                .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        {
            s = rest;
            prefixed = true;
        }
    }
    if let Some(rest) = s.strip_prefix('<') {
        if let Some((level, tail)) = rest.split_once('>') {
            if (1..=3).contains(&level.len()) && level.bytes().all(|b| b.is_ascii_digit()) {
                s = tail;
                prefixed = true;
            }
        }
    }
    loop {
        let t = s.trim_start();
        if !line.starts_with(char::is_whitespace) || prefixed {
            if let Some(i) = t
                .find(" kernel: ")
                .filter(|&i| i < 80 && !t[..i].contains("kmemleak"))
            {
                s = &t[i + " kernel: ".len()..];
                prefixed = true;
                continue;
            }
        }
        let Some(inner) = t.strip_prefix('[').and_then(|x| x.split_once(']')) else {
            break;
        };
        if !is_stamp(inner.0) {
            break;
        }
        s = inner.1.strip_prefix(' ').unwrap_or(inner.1);
        prefixed = true;
    }
    prefixed.then_some(s)
}

/// A `[...]` field a kernel log puts before the message: a timestamp
/// (`12.345678`, or `dmesg -T`'s `Sun Nov 22 05:00:00 2026`) or a caller
/// id (`T123`, `C0`).
fn is_stamp(inner: &str) -> bool {
    let t = inner.trim();
    let seconds = t.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    let caller = t.len() > 1
        && (t.starts_with('T') || t.starts_with('C'))
        && t[1..].bytes().all(|c| c.is_ascii_digit());
    let date = t.len() >= 20
        && t.len() <= 32
        && t.contains(':')
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b' ' || c == b':');
    seconds || caller || date
}

/// Parses all reports in `text` (a kmemleak file or a kernel log).
pub fn parse(text: &str) -> Vec<Report> {
    let mut out = Vec::new();
    let mut p = Parser::new();
    // A last line with no newline was cut short (a truncated read or file).
    let (body, tail) = match text.rfind('\n') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    };
    for line in body.lines() {
        out.extend(p.line(line));
    }
    if !tail.is_empty() {
        p.cut(tail);
    }
    out.extend(p.finish());
    out
}

/// Parses reports from `input` as it arrives, handing each to `each` as soon
/// as it is complete; returns how many there were.
pub fn parse_stream(
    mut input: impl std::io::BufRead,
    mut each: impl FnMut(Report),
) -> std::io::Result<usize> {
    let mut p = Parser::new();
    let mut n = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        match line.strip_suffix('\n') {
            Some(l) => {
                if let Some(r) = p.line(l.strip_suffix('\r').unwrap_or(l)) {
                    n += 1;
                    each(r);
                }
            }
            None => p.cut(&line),
        }
    }
    if let Some(r) = p.finish() {
        n += 1;
        each(r);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    const CAPTURE_SAMPLES: &str = include_str!("../tests/data/leaklab-samples-x86_64.log");
    /// A console log of a real run (arm64 guest, `kmemleak.verbose=1`, the
    /// kernel's kmemleak-test.ko loaded and unloaded once, with its own
    /// `kmemleak: kmalloc(32) = ...` lines and other modules' messages).
    const CAPTURE_KMEMLEAK_TEST: &str = include_str!("../tests/data/kmemleak-test-arm64.log");

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
                rust.map(crate::symbolize::demangle).as_deref(),
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
            let mut streamed = Vec::new();
            parse_stream(log.as_bytes(), |r| streamed.push(r)).unwrap();
            assert_eq!(streamed, want, "streamed, prefix {prefix:?}");
        }
    }

    #[test]
    fn streaming_hands_out_a_report_when_the_next_begins() {
        let mut p = Parser::new();
        let mut lines = V612.lines();
        assert!(lines.by_ref().all(|l| p.line(l).is_none()));
        let first = p.line("unreferenced object 0xffff888003a8f000 (size 64):");
        assert_eq!(first.map(|r| r.frames.len()), Some(4));
        assert_eq!(p.finish().map(|r| r.size), Some(64));
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
        // xorshift64*: deterministic, no dependency.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545f4914f6cdd1d)
        };
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

    #[test]
    fn percpu_header_and_garbage_are_kept() {
        let r = parse("unreferenced object (percpu) 0x3c4b9d6a2b20 (size 4):\nwhat is this\n");
        assert_eq!(r[0].size, 4);
        assert!(r[0].garbled);
        let r = parse("unreferenced object 0xzz (size\n");
        assert_eq!(r.len(), 1);
        assert!(r[0].garbled);
    }
}
