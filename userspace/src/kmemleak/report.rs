// SPDX-License-Identifier: GPL-2.0
//! Parsing kmemleak reports.
//!
//! Takes the text of `/sys/kernel/debug/kmemleak` (or a saved copy), or a
//! kernel log with the reports `kmemleak.verbose=1` prints there, and
//! returns one [`Report`] per `unreferenced object` block, streaming. It accepts the
//! shapes printed from 6.1 to 6.12: frames with or without the `[<addr>]`
//! column, `backtrace:` or `backtrace (crc ...):`, `(age ...)` after the
//! jiffies, module tags such as `[kmemleak_test]`, and bare `0xffff...`
//! frames (a module that was unloaded before the report was read), and
//! reports as syzkaller's tools symbolize them (a source line after each
//! frame, `[inline]` frames). It never
//! panics: a block it cannot make sense of is kept with `garbled` set.

use serde::{Deserialize, Serialize};

use super::prefix::{log_body, starts_blank, trim};

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

fn hex(mut s: &str) -> Option<u64> {
    while let Some(rest) = s.strip_prefix("0x") {
        s = rest;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Whether `word` is a source location such as `net/core/sock.c:1774`.
fn source_line(word: &str) -> bool {
    word.rsplit_once(':').is_some_and(|(path, line)| {
        path.contains('.')
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_./+-".contains(&b))
            && !line.is_empty()
            && line.bytes().all(|b| b.is_ascii_digit())
    })
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
    // Reports symbolized by syzkaller's tools (as syzbot mails them) add
    // the call's source line after a frame and a frame for each inlined
    // call: `kmalloc include/linux/slab.h:557 [inline]`. Neither is a module.
    let mut module = None;
    loop {
        if let Some(r) = rest.strip_suffix(" [inline]") {
            rest = r.trim_end();
            continue;
        }
        if module.is_none() && rest.ends_with(']') {
            if let Some(open) = rest.rfind(" [") {
                module = Some(rest[open + 2..rest.len() - 1].to_string());
                rest = rest[..open].trim();
                continue;
            }
        }
        match rest.rsplit_once(' ') {
            Some((head, last)) if source_line(last) => rest = head.trim_end(),
            _ => break,
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
    // Short fields: a plain scan beats a searcher's setup here.
    let space = rest.bytes().position(|b| b == b' ')?;
    let (addr, rest) = (&rest[..space], &rest[space + 1..]);
    let size = rest.trim().strip_prefix("(size ")?;
    let size = &size[..size.bytes().position(|b| b == b')').unwrap_or(size.len())];
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

/// A report as the parser holds it while reading: numbers parsed, the
/// backtrace kept as text in one buffer, so that reading costs no
/// allocation per line once the buffers have grown. [`Block::to_report`]
/// makes a [`Report`] of it.
#[derive(Debug, Default, Clone)]
pub struct Block {
    address: u64,
    size: u64,
    comm: Field,
    pid: Option<u32>,
    jiffies: Option<u64>,
    crc: Field,
    /// The backtrace lines, trimmed, each followed by a newline.
    frames: String,
    garbled: bool,
}

impl Block {
    /// Empties the block for the report of a new header.
    fn start(&mut self, header: Option<(u64, u64)>) {
        (self.address, self.size) = header.unwrap_or((0, 0));
        self.garbled = header.is_none();
        self.comm.unset();
        self.pid = None;
        self.jiffies = None;
        self.crc.unset();
        self.frames.clear();
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The allocating task's pid.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether a line of the report could not be understood.
    pub fn garbled(&self) -> bool {
        self.garbled
    }

    /// The backtrace as printed: one trimmed line per frame, each ended by
    /// a newline.
    pub fn backtrace(&self) -> &str {
        &self.frames
    }

    /// The report, every frame parsed.
    pub fn to_report(&self) -> Report {
        Report {
            address: self.address,
            size: self.size,
            comm: self.comm.get().map(str::to_string),
            pid: self.pid,
            jiffies: self.jiffies,
            crc: self.crc.get().map(str::to_string),
            frames: self.frames.lines().map(parse_frame).collect(),
            garbled: self.garbled,
        }
    }
}

/// An optional text field of a [`Block`], its buffer kept when unset.
#[derive(Debug, Default, Clone)]
struct Field {
    text: String,
    set: bool,
}

impl Field {
    fn get(&self) -> Option<&str> {
        self.set.then_some(self.text.as_str())
    }

    fn set(&mut self, value: Option<&str>) {
        self.text.clear();
        self.text.push_str(value.unwrap_or_default());
        self.set = value.is_some();
    }

    fn unset(&mut self) {
        self.set = false;
    }
}

impl From<Option<&str>> for Field {
    fn from(value: Option<&str>) -> Self {
        let mut f = Self::default();
        f.set(value);
        f
    }
}

impl From<&Report> for Block {
    fn from(r: &Report) -> Self {
        let mut frames = String::new();
        for f in &r.frames {
            frames.push_str(&f.raw);
            frames.push('\n');
        }
        Self {
            address: r.address,
            size: r.size,
            comm: Field::from(r.comm.as_deref()),
            pid: r.pid,
            jiffies: r.jiffies,
            crc: Field::from(r.crc.as_deref()),
            frames,
            garbled: r.garbled,
        }
    }
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
    /// The report being read; meaningful only when `open`.
    current: Block,
    /// The report handed out last (kept to reuse its buffers).
    done: Block,
    open: bool,
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
            current: Block::default(),
            done: Block::default(),
            open: false,
            part: Part::Head,
            log: false,
        }
    }

    /// Whether `line` would begin a report here; a parser that has seen
    /// nothing yet is the same as a new one whatever comes.
    pub(super) fn joins_at(&self, line: &str) -> bool {
        if !self.open && !self.log {
            return true;
        }
        let body = match log_body(line) {
            Some(body) => body.strip_prefix("kmemleak: "),
            None if self.log => None,
            None => Some(line.strip_prefix("kmemleak: ").unwrap_or(line)),
        };
        body.is_some_and(|b| trim(b).starts_with("unreferenced object"))
    }

    /// Feeds one line (without its newline); returns the report it completed.
    pub fn line(&mut self, line: &str) -> Option<&Block> {
        let line = match log_body(line) {
            Some(body) => {
                self.log = true;
                body.strip_prefix("kmemleak: ")?
            }
            // Console lines around a log (a program's own output) are not reports.
            None if self.log => return None,
            None => line.strip_prefix("kmemleak: ").unwrap_or(line),
        };
        let t = trim(line);
        let first = t.bytes().next();
        if first == Some(b'u') && t.starts_with("unreferenced object") {
            self.part = Part::Head;
            let was_open = std::mem::replace(&mut self.open, true);
            std::mem::swap(&mut self.current, &mut self.done);
            self.current.start(parse_header(t));
            return was_open.then_some(&self.done);
        }
        if !self.open || t.is_empty() || self.part == Part::Done {
            return None;
        }
        let r = &mut self.current;
        let frame = self.part == Part::Trace && starts_blank(line);
        // Most lines are frames: those that cannot be one of the keywords
        // below go straight in.
        if frame && !matches!(first, Some(b'c' | b'h' | b'b')) {
            r.frames.push_str(t);
            r.frames.push('\n');
        } else if let Some(rest) = t.strip_prefix("comm \"") {
            if let Some((comm, tail)) = rest.split_once('"') {
                r.comm.set(Some(comm));
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
                r.crc.set(crc.strip_suffix("):"));
            }
        } else if frame {
            r.frames.push_str(t);
            r.frames.push('\n');
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
        if self.open && !header && self.part != Part::Done {
            self.current.garbled = true;
        }
    }

    /// Ends the input and returns the last report.
    pub fn finish(&mut self) -> Option<&Block> {
        std::mem::replace(&mut self.open, false).then_some(&self.current)
    }
}

/// What kmemleak prints after a scan that found new suspected leaks, with or
/// without `kmemleak.verbose=1` (the reports themselves only with it):
/// `kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)`.
const ANNOUNCEMENT: &str = "new suspected memory leak";

/// The number of suspected leaks a kernel log line announces (see
/// [`ANNOUNCEMENT`]), behind any log prefix.
pub fn announced(line: &str) -> Option<u64> {
    let body = log_body(line).unwrap_or(line);
    let rest = body.trim_start().strip_prefix("kmemleak: ")?;
    let (n, rest) = rest.split_once(' ')?;
    if !rest.starts_with(ANNOUNCEMENT) {
        return None;
    }
    n.parse().ok()
}

/// The suspected leaks the lines of `bytes` announce together (each scan
/// announces only the leaks it found new, so they add up).
pub fn announced_in(bytes: &[u8]) -> u64 {
    memchr::memmem::find_iter(bytes, ANNOUNCEMENT.as_bytes())
        .filter_map(|at| {
            let start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i);
            announced(&String::from_utf8_lossy(&bytes[start..end]))
        })
        .fold(0, u64::saturating_add)
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
        out.extend(p.line(line).map(Block::to_report));
    }
    if !tail.is_empty() {
        p.cut(tail);
    }
    out.extend(p.finish().map(Block::to_report));
    out
}
