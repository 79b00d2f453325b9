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

fn hex(mut s: &str) -> Option<u64> {
    while let Some(rest) = s.strip_prefix("0x") {
        s = rest;
    }
    u64::from_str_radix(s, 16).ok()
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
    fn joins_at(&self, line: &str) -> bool {
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

/// The message of a kernel log line with its prefixes taken off (a
/// `/dev/kmsg` record header, `<level>`, a syslog or journal
/// `... kernel: `, `[timestamp]` and `[T123]` caller fields), or `None` when
/// the line has none of them.
#[inline]
pub fn log_body(line: &str) -> Option<&str> {
    printk_kmemleak(line).or_else(|| log_body_in_full(line))
}

/// [`log_body`] past its fixed-layout check.
fn log_body_in_full(line: &str) -> Option<&str> {
    if let Some(body) = dmesg_kmemleak(line) {
        return Some(body);
    }
    let mut s = line;
    let mut prefixed = false;
    // /dev/kmsg: "level,seq,usec,flags;message" (the level comes first).
    if line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        if let Some((head, rest)) = s.split_once(';') {
            let mut f = head.split(',');
            if f.by_ref()
                .take(3)
                .filter(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
                .count()
                == 3
            {
                s = rest;
                prefixed = true;
            }
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
    let indented = line.starts_with(char::is_whitespace);
    loop {
        let t = s.trim_start();
        if !indented || prefixed {
            if let Some(i) = syslog_kernel(t) {
                s = &t[i + " kernel: ".len()..];
                prefixed = true;
                continue;
            }
        }
        let Some(inner) = t.strip_prefix('[').and_then(|x| x.split_once(']')) else {
            break;
        };
        if stamp(inner.0).is_none() {
            break;
        }
        s = inner.1.strip_prefix(' ').unwrap_or(inner.1);
        prefixed = true;
    }
    prefixed.then_some(s)
}

/// The common case of [`log_body`], read byte by byte without its search
/// for a syslog tag: a line of `[seconds]` and `[caller]` fields, then
/// kmemleak's message. No ` kernel: ` can come before the message there, as
/// neither field can hold one (a date could). `None` says "not sure": the
/// full reading decides then.
fn dmesg_kmemleak(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let digits = |mut i: usize| {
        while at(i).is_ascii_digit() {
            i += 1;
        }
        i
    };
    let blanks = |mut i: usize| {
        while is_ascii_blank(at(i)) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    loop {
        if at(i) != b'[' {
            return None;
        }
        i = blanks(i + 1);
        i = match at(i) {
            // A caller id: T123, C0.
            b'T' | b'C' if at(i + 1).is_ascii_digit() => digits(i + 1),
            // Seconds: 12.345678.
            c if c.is_ascii_digit() => {
                i = digits(i);
                if at(i) != b'.' {
                    return None;
                }
                digits(i + 1)
            }
            _ => return None,
        };
        i = blanks(i);
        if at(i) != b']' {
            return None;
        }
        let body = i + 1 + usize::from(at(i + 1) == b' ');
        i = blanks(body);
        if at(i) != b'[' {
            return b[i..].starts_with(b"kmemleak").then(|| &line[body..]);
        }
    }
}

/// The common case of [`log_body`] at fixed places, with no loop whose
/// length varies: printk's own `[%5lu.%06lu] kmemleak` (nearly every line of
/// a report in a log); `None` when the line is not exactly that.
fn printk_kmemleak(line: &str) -> Option<&str> {
    let b: &[u8; 23] = line.as_bytes().get(..23)?.try_into().ok()?;
    let (secs, micros) = (&b[1..6], &b[7..13]);
    let spaces = secs.iter().take_while(|&&c| c == b' ').count();
    let shape = b[0] == b'[' && b[6] == b'.' && &b[13..23] == b"] kmemleak";
    (shape
        && spaces < secs.len()
        && secs[spaces..].iter().all(u8::is_ascii_digit)
        && micros.iter().all(u8::is_ascii_digit))
    .then(|| &line[15..])
}

/// ASCII whitespace as `char::is_whitespace` has it (with \x0b).
fn is_ascii_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `s.starts_with(char::is_whitespace)`, quicker on ASCII.
fn starts_blank(s: &str) -> bool {
    match s.bytes().next() {
        Some(b) if b.is_ascii() => is_ascii_blank(b),
        Some(_) => s.starts_with(char::is_whitespace),
        None => false,
    }
}

/// `str::trim_start`, quicker on ASCII.
#[inline]
fn trim_start(s: &str) -> &str {
    let b = s.as_bytes();
    let mut n = 0;
    while n < b.len() && is_ascii_blank(b[n]) {
        n += 1;
    }
    let s = &s[n..];
    match s.bytes().next() {
        Some(b) if !b.is_ascii() => s.trim_start(),
        _ => s,
    }
}

/// `str::trim`, quicker on ASCII.
#[inline]
fn trim(s: &str) -> &str {
    let s = trim_start(s);
    let n = s.bytes().rev().take_while(|&b| is_ascii_blank(b)).count();
    let s = &s[..s.len() - n];
    match s.bytes().next_back() {
        Some(b) if !b.is_ascii() => s.trim_end(),
        _ => s,
    }
}

/// Where a syslog or journal line's ` kernel: ` begins: within its first 80
/// bytes, with no "kmemleak" before it (that would be the message).
fn syslog_kernel(t: &str) -> Option<usize> {
    const TAG: &[u8] = b" kernel: ";
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(TAG));
    // A match that starts before byte 80 ends before byte 80 + TAG.len().
    let head = &t.as_bytes()[..t.len().min(80 + TAG.len() - 1)];
    FINDER
        .find(head)
        .filter(|&i| i < 80 && !t[..i].contains("kmemleak"))
}

/// A `[...]` field a kernel log puts before the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// `12.345678`
    Seconds,
    /// A caller id: `T123`, `C0`.
    Caller,
    /// `dmesg -T`'s `Sun Nov 22 05:00:00 2026`.
    Date,
}

/// What kind of [`Stamp`] `inner` (the text between the brackets) is.
fn stamp(inner: &str) -> Option<Stamp> {
    let t = trim(inner);
    let digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
    if t.split_once('.')
        .is_some_and(|(a, b)| !a.is_empty() && digits(a) && digits(b))
    {
        Some(Stamp::Seconds)
    } else if t.len() > 1 && (t.starts_with('T') || t.starts_with('C')) && digits(&t[1..]) {
        Some(Stamp::Caller)
    } else if (20..=32).contains(&t.len())
        && t.contains(':')
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b' ' || c == b':')
    {
        Some(Stamp::Date)
    } else {
        None
    }
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

/// What [`parse_parallel`] reads.
pub enum Input<'a> {
    /// Bytes already in memory: chunks are slices of them.
    Bytes(&'a [u8]),
    /// A file mapped into memory: read as [`Input::Bytes`], and each part
    /// read to its end is given back (its pages leave the process's RSS).
    Mapped(&'a memmap2::Mmap),
    /// A stream, read into buffers a chunk at a time.
    Read(Box<dyn std::io::Read + 'a>),
}

/// Parses reports from `input` on `threads` threads, exactly as
/// [`parse_blocks`] would. The input is cut into chunks of about `chunk`
/// bytes, each at the start of a report where one is near; each chunk is
/// parsed on its own into an `A` (`new`, then `add` per report) and the
/// results are joined in input order with `append`. A chunk whose parse on
/// its own could differ from reading on (it starts inside a report, or the
/// log state before it matters) is read again after the chunks before it.
pub fn parse_parallel<'a, A: Send>(
    input: Input<'a>,
    threads: usize,
    chunk: usize,
    new: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, &Block) + Sync,
    mut append: impl FnMut(&mut A, A) + Send,
) -> std::io::Result<A> {
    use std::borrow::Cow;
    use std::sync::{mpsc, Mutex};

    struct Done<'d, A> {
        data: Cow<'d, [u8]>,
        tally: A,
        parser: Parser,
    }
    let chunk = chunk.max(1);
    enum Source<'s> {
        Bytes(&'s [u8]),
        Read(Box<dyn std::io::Read + 's>),
    }
    let (map, source) = match input {
        Input::Bytes(bytes) => (None, Source::Bytes(bytes)),
        Input::Mapped(map) => (Some(map), Source::Bytes(map)),
        Input::Read(stream) => (None, Source::Read(stream)),
    };
    let page = page_size();
    let (to_workers, jobs) = mpsc::sync_channel::<(usize, Cow<'a, [u8]>)>(threads.max(1));
    let jobs = Mutex::new(jobs);
    let (to_merge, done) = mpsc::channel::<(usize, Done<'a, A>)>();
    let (give_back, spare) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let to_merge = to_merge.clone();
            let (jobs, new, add) = (&jobs, &new, &add);
            scope.spawn(move || loop {
                let job = jobs.lock().map(|j| j.recv());
                let Ok(Ok((i, data))) = job else { break };
                let mut tally = new();
                let mut parser = Parser::new();
                for_lines(without_newline(&data), |l| {
                    if let Some(b) = parser.line(l) {
                        add(&mut tally, b);
                    }
                });
                let done = Done {
                    data,
                    tally,
                    parser,
                };
                if to_merge.send((i, done)).is_err() {
                    break;
                }
            });
        }
        drop(to_merge);
        // The merge: in input order, a chunk at a time.
        let (new, add) = (&new, &add);
        let merge = scope.spawn(move || {
            let mut acc = new();
            let mut p = Parser::new();
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0;
            let mut released = 0;
            for (i, d) in done {
                waiting.insert(i, d);
                while let Some(d) = waiting.remove(&next) {
                    next += 1;
                    let first = d.data.split(|&b| b == b'\n').next().unwrap_or(&[]);
                    if p.joins_at(without_cr(&String::from_utf8_lossy(first))) {
                        if let Some(b) = p.finish() {
                            add(&mut acc, b);
                        }
                        append(&mut acc, d.tally);
                        p = d.parser;
                    } else {
                        for_lines(without_newline(&d.data), |l| {
                            if let Some(b) = p.line(l) {
                                add(&mut acc, b);
                            }
                        });
                    }
                    match (d.data, map) {
                        (Cow::Owned(buf), _) => {
                            let _ = give_back.send(buf);
                        }
                        (Cow::Borrowed(read), Some(map)) => {
                            released = release(map, page, released, read)
                        }
                        (Cow::Borrowed(_), None) => {}
                    }
                }
            }
            (acc, p)
        });
        // The reader: chunks of whole lines, cut before a report header.
        let send = |index: &mut usize, data: Cow<'a, [u8]>| {
            let sent = to_workers.send((*index, data)).is_ok();
            *index += 1;
            sent
        };
        let mut index = 0;
        let mut failed = None;
        let rest: Cow<'a, [u8]> = match source {
            Source::Bytes(bytes) => {
                let mut pos = 0;
                while bytes.len() - pos > chunk {
                    // A window with no whole line ends at the next newline.
                    let end = pos + chunk;
                    let cut = chunk_end(&bytes[pos..end]).or_else(|| {
                        memchr::memchr(b'\n', &bytes[end..]).map(|i| end - pos + i + 1)
                    });
                    let Some(cut) = cut else { break };
                    if !send(&mut index, Cow::Borrowed(&bytes[pos..pos + cut])) {
                        break;
                    }
                    pos += cut;
                }
                Cow::Borrowed(&bytes[pos..])
            }
            Source::Read(mut input) => {
                use std::io::Read;
                // In buffers the merge gives back.
                let mut buf: Vec<u8> = Vec::with_capacity(2 * chunk);
                loop {
                    match (&mut input).take(chunk as u64).read_to_end(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                    if buf.len() < chunk {
                        continue;
                    }
                    let Some(cut) = chunk_end(&buf) else { continue };
                    let mut next = spare.try_recv().unwrap_or_default();
                    next.clear();
                    next.extend_from_slice(&buf[cut..]);
                    buf.truncate(cut);
                    if !send(&mut index, Cow::Owned(std::mem::replace(&mut buf, next))) {
                        break;
                    }
                }
                Cow::Owned(buf)
            }
        };
        // What is left: whole lines, and perhaps a last line cut short.
        let whole = memchr::memrchr(b'\n', &rest).map_or(0, |i| i + 1);
        let (lines, tail) = match rest {
            Cow::Borrowed(b) => (Cow::Borrowed(&b[..whole]), Cow::Borrowed(&b[whole..])),
            Cow::Owned(mut v) => {
                let tail = v.split_off(whole);
                (Cow::Owned(v), Cow::Owned(tail))
            }
        };
        if !lines.is_empty() {
            send(&mut index, lines);
        }
        drop(to_workers);
        let (mut acc, mut p) = match merge.join() {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if !tail.is_empty() {
            p.cut(&String::from_utf8_lossy(&tail));
        }
        if let Some(b) = p.finish() {
            add(&mut acc, b);
        }
        Ok(acc)
    })
}

/// The size of a memory page.
fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p.max(1) as usize)
}

/// Drops the pages (of `page` bytes) of `map` from `from` to the last whole
/// page of `read` (a part of it read to its end) out of the process;
/// returns where the next release starts.
fn release(map: &memmap2::Mmap, page: usize, from: usize, read: &[u8]) -> usize {
    let end = read.as_ptr() as usize + read.len() - map.as_ptr() as usize;
    let upto = end / page * page;
    if upto > from {
        // SAFETY: the map is of a file, private and never written, so
        // MADV_DONTNEED only unmaps clean pages: a later read of them (a
        // chunk's first line, the last line's tail) faults the file's same
        // bytes back in, and no reference into the map changes meaning.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, upto - from)
        };
    }
    upto.max(from)
}

/// Where to end a chunk of `buf`: before the last line that holds a report
/// header, else after the last whole line (the merge then reads on).
/// `None` when `buf` has no whole line to give.
fn chunk_end(buf: &[u8]) -> Option<usize> {
    let last = memchr::memrchr(b'\n', buf)?;
    let header = memchr::memmem::rfind(&buf[..last], b"unreferenced object")
        .map(|at| memchr::memrchr(b'\n', &buf[..at]).map_or(0, |nl| nl + 1))
        .filter(|&start| start > 0);
    // A chunk ends with its last line's newline, which the worker drops.
    Some(header.unwrap_or(last + 1))
}

/// A chunk's lines without the newline that ends the last.
fn without_newline(chunk: &[u8]) -> &[u8] {
    chunk.strip_suffix(b"\n").unwrap_or(chunk)
}

/// A line without the `\r` of a CRLF ending.
fn without_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// Calls `each` with every line of `bytes` (split at `\n`, a `\r` before it
/// dropped), read as UTF-8 with invalid bytes replaced.
fn for_lines(bytes: &[u8], mut each: impl FnMut(&str)) {
    let whole = without_cr;
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', bytes) {
                each(whole(&text[start..end]));
                start = end + 1;
            }
            each(whole(&text[start..]));
        }
        Err(_) => {
            for line in bytes.split(|&b| b == b'\n') {
                each(whole(&String::from_utf8_lossy(line)));
            }
        }
    }
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

    /// `text` read by [`parse_parallel`] in chunks of `chunk` bytes,
    /// Read as a mapped file and as a stream, which must agree.
    fn parallel(text: &[u8], chunk: usize, threads: usize) -> Vec<Report> {
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
        let in_memory = run(Input::Bytes(text));
        assert_eq!(run(Input::Read(Box::new(text))), in_memory, "streamed");
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
        assert_eq!(run(Input::Mapped(&map)), in_memory, "mapped");
        in_memory
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

    /// Property: reports written in any of the shapes, with or without a
    /// log prefix, with other messages and garbage between and inside them,
    /// come back exactly, in order, by every reader and at every chunk size.
    #[test]
    fn whole_reports_always_come_back() {
        let mut x: u64 = 0x2545f4914f6cdd1d;
        let mut next = move |n: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545f4914f6cdd1d) % n.max(1)
        };
        let prefixes = [
            "",
            "[   18.123456] ",
            "<4>[    0.5] [  T42] ",
            "4,1203,18123456,-;",
            "Nov 22 05:00:01 rock5b kernel: ",
        ];
        let noise = [
            "random: crng init done",
            "virtio_blk virtio0: [vda] 8 512-byte logical blocks",
            "kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "unreferenced objects are fine to talk about",
        ];
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
}
