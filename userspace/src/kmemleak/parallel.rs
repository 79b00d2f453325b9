// SPDX-License-Identifier: GPL-2.0
//! Reading reports on every core: the input cut into chunks at report
//! headers, each parsed on its own, joined in input order.

use std::{
    borrow::Cow,
    io::Read,
    sync::{mpsc, Mutex},
};

use super::report::{announced_in, Block, Parser};

/// What [`parse_parallel`] read.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<A> {
    /// What `add` and `append` made of the reports.
    pub reports: A,
    /// The suspected leaks the input's kernel log lines announce
    /// (`kmemleak: N new suspected memory leaks`), all together: without
    /// `kmemleak.verbose=1` a log announces leaks but holds no reports.
    pub announced: u64,
}

/// What [`parse_parallel`] reads.
pub enum Input<'a> {
    /// A file mapped into memory: chunks are slices of it, and each part
    /// read to its end is given back (its pages leave the process's RSS).
    Mapped(&'a memmap2::Mmap),
    /// A stream, read into buffers a chunk at a time.
    Read(Box<dyn Read + 'a>),
}

/// A chunk parsed on its own by a worker.
struct Done<'d, A> {
    data: Cow<'d, [u8]>,
    tally: A,
    parser: Parser,
    announced: u64,
}

/// Parses reports from `input` on `threads` threads, exactly as
/// [`parse_blocks`] would. The input is cut into chunks of about `chunk`
/// bytes, each at the start of a report where one is near; each chunk is
/// parsed on its own into an `A` (`new`, then `add` per report) and the
/// results are joined in input order with `append`. A chunk whose parse on
/// its own could differ from reading on (it starts inside a report, or the
/// log state before it matters) is read again after the chunks before it.
/// The announcements of leaks are counted too, each line once.
pub fn parse_parallel<'a, A: Send>(
    input: Input<'a>,
    threads: usize,
    chunk: usize,
    new: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, &Block) + Sync,
    append: impl FnMut(&mut A, A) + Send,
) -> std::io::Result<Parsed<A>> {
    let chunk = chunk.max(1);
    let map = match &input {
        Input::Mapped(map) => Some(*map),
        _ => None,
    };
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
                if to_merge.send((i, parse_chunk(data, new, add))).is_err() {
                    break;
                }
            });
        }
        drop(to_merge);
        let (new, add) = (&new, &add);
        let merge = scope.spawn(move || merge(done, new, add, append, map, give_back));
        // The reader: chunks of whole lines, cut before a report header.
        let mut index = 0;
        let mut send = |data: Cow<'a, [u8]>| {
            let sent = to_workers.send((index, data)).is_ok();
            index += 1;
            sent
        };
        let (rest, failed) = match input {
            Input::Mapped(map) => (cut_bytes(map, chunk, &mut send), None),
            Input::Read(stream) => cut_stream(stream, chunk, &spare, &mut send),
        };
        // What is left: whole lines, and perhaps a last line cut short.
        let (lines, tail) = last_line_apart(rest);
        if !lines.is_empty() {
            send(lines);
        }
        drop(to_workers);
        let (mut acc, mut p, mut announced) = match merge.join() {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if !tail.is_empty() {
            p.cut(&String::from_utf8_lossy(&tail));
            announced = announced.saturating_add(announced_in(&tail));
        }
        if let Some(b) = p.finish() {
            add(&mut acc, b);
        }
        Ok(Parsed {
            reports: acc,
            announced,
        })
    })
}

/// A worker's job: `data` parsed on its own.
fn parse_chunk<'d, A>(
    data: Cow<'d, [u8]>,
    new: impl Fn() -> A,
    add: impl Fn(&mut A, &Block),
) -> Done<'d, A> {
    let mut tally = new();
    let mut parser = Parser::new();
    for_lines(without_newline(&data), |l| {
        if let Some(b) = parser.line(l) {
            add(&mut tally, b);
        }
    });
    let announced = announced_in(&data);
    Done {
        data,
        tally,
        parser,
        announced,
    }
}

/// The merge: the workers' chunks in input order, a chunk at a time. A
/// chunk that starts where the parse before it could not join is read
/// again on from the state before it. A chunk's buffer goes back to the
/// reader (`give_back`), and a mapped chunk's pages leave the process.
/// Returns the tally, the parser's state at the end and the leaks
/// announced.
fn merge<'d, A>(
    done: mpsc::Receiver<(usize, Done<'d, A>)>,
    new: impl Fn() -> A,
    add: impl Fn(&mut A, &Block),
    mut append: impl FnMut(&mut A, A),
    map: Option<&memmap2::Mmap>,
    give_back: mpsc::Sender<Vec<u8>>,
) -> (A, Parser, u64) {
    let page = page_size();
    let mut acc = new();
    let mut p = Parser::new();
    let mut announced: u64 = 0;
    let mut waiting = std::collections::BTreeMap::new();
    let (mut next, mut released) = (0, 0);
    for (i, d) in done {
        waiting.insert(i, d);
        while let Some(d) = waiting.remove(&next) {
            next += 1;
            announced = announced.saturating_add(d.announced);
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
                (Cow::Borrowed(read), Some(map)) => released = release(map, page, released, read),
                (Cow::Borrowed(_), None) => {}
            }
        }
    }
    (acc, p, announced)
}

/// Sends `bytes` in chunks of about `chunk` bytes of whole lines
/// ([`chunk_end`]) until `send` refuses; returns what is left.
fn cut_bytes<'d>(
    bytes: &'d [u8],
    chunk: usize,
    send: &mut impl FnMut(Cow<'d, [u8]>) -> bool,
) -> Cow<'d, [u8]> {
    let mut pos = 0;
    while bytes.len() - pos > chunk {
        // A window with no whole line ends at the next newline.
        let end = pos + chunk;
        let cut = chunk_end(&bytes[pos..end])
            .or_else(|| memchr::memchr(b'\n', &bytes[end..]).map(|i| end - pos + i + 1));
        let Some(cut) = cut else { break };
        if !send(Cow::Borrowed(&bytes[pos..pos + cut])) {
            break;
        }
        pos += cut;
    }
    Cow::Borrowed(&bytes[pos..])
}

/// Reads `input` into buffers (those `spare` gives back, where it has
/// some) and sends them in chunks of about `chunk` bytes of whole lines
/// until `send` refuses; returns what is left and the error that stopped
/// the reading, if one did.
fn cut_stream<'d>(
    mut input: Box<dyn Read + 'd>,
    chunk: usize,
    spare: &mpsc::Receiver<Vec<u8>>,
    send: &mut impl FnMut(Cow<'d, [u8]>) -> bool,
) -> (Cow<'d, [u8]>, Option<std::io::Error>) {
    let mut buf: Vec<u8> = Vec::with_capacity(2 * chunk);
    let mut failed = None;
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
        if !send(Cow::Owned(std::mem::replace(&mut buf, next))) {
            break;
        }
    }
    (Cow::Owned(buf), failed)
}

/// `rest` as its whole lines and the last line cut short (empty if none).
fn last_line_apart(rest: Cow<'_, [u8]>) -> (Cow<'_, [u8]>, Cow<'_, [u8]>) {
    let whole = memchr::memrchr(b'\n', &rest).map_or(0, |i| i + 1);
    match rest {
        Cow::Borrowed(b) => (Cow::Borrowed(&b[..whole]), Cow::Borrowed(&b[whole..])),
        Cow::Owned(mut v) => {
            let tail = v.split_off(whole);
            (Cow::Owned(v), Cow::Owned(tail))
        }
    }
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
