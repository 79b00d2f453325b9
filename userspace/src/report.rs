//! Parsing kmemleak reports.
//!
//! Takes the text of `/sys/kernel/debug/kmemleak` (or a saved copy) and
//! returns one [`Report`] per `unreferenced object` block. It accepts the
//! shapes printed from 6.1 to 6.12: frames with or without the `[<addr>]`
//! column, `backtrace:` or `backtrace (crc ...):`, `(age ...)` after the
//! jiffies, module tags such as `[kmemleak_test]`, and bare `0xffff...`
//! frames (a module that was unloaded before the report was read). It never
//! panics: a block it cannot make sense of is kept with `garbled` set.

use serde::Serialize;

/// One kmemleak report: an object that nothing seemed to point to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Parses all reports in `text`.
pub fn parse(text: &str) -> Vec<Report> {
    #[derive(PartialEq)]
    enum Part {
        Head,
        Hex,
        Trace,
        Done,
    }
    let mut out: Vec<Report> = Vec::new();
    let mut part = Part::Head;
    // A last line with no newline was cut short (a truncated read or file).
    let cut_short = !text.is_empty() && !text.ends_with('\n');
    let last = text.lines().count().saturating_sub(1);
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if cut_short && i == last && !t.starts_with("unreferenced object") {
            if let Some(r) = out.last_mut() {
                if !"unreferenced object".starts_with(t) {
                    r.garbled = true;
                }
            }
            break;
        }
        if t.starts_with("unreferenced object") {
            let (address, size, garbled) = match parse_header(t) {
                Some((a, s)) => (a, s, false),
                None => (0, 0, true),
            };
            out.push(Report {
                address,
                size,
                comm: None,
                pid: None,
                jiffies: None,
                crc: None,
                frames: Vec::new(),
                garbled,
            });
            part = Part::Head;
            continue;
        }
        let Some(r) = out.last_mut() else { continue };
        if t.is_empty() {
            continue;
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
            part = Part::Hex;
        } else if t.starts_with("backtrace") {
            part = Part::Trace;
            if let Some(crc) = t.strip_prefix("backtrace (crc ") {
                r.crc = crc.strip_suffix("):").map(str::to_string);
            }
        } else if part == Part::Trace && line.starts_with(char::is_whitespace) {
            r.frames.push(parse_frame(t));
        } else if part == Part::Trace {
            // Report lines are indented; anything else ends the report.
            part = Part::Done;
        } else if part == Part::Head {
            r.garbled = true;
        }
    }
    out
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
