// SPDX-License-Identifier: GPL-2.0
//! Kernel log prefixes: where a kmemleak message starts in a line of
//! `dmesg`, `/dev/kmsg`, syslog, the journal or a serial console.

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
pub(super) fn dmesg_kmemleak(line: &str) -> Option<&str> {
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
pub(super) fn printk_kmemleak(line: &str) -> Option<&str> {
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
pub(super) fn is_ascii_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `s.starts_with(char::is_whitespace)`, quicker on ASCII.
pub(super) fn starts_blank(s: &str) -> bool {
    match s.bytes().next() {
        Some(b) if b.is_ascii() => is_ascii_blank(b),
        Some(_) => s.starts_with(char::is_whitespace),
        None => false,
    }
}

/// `str::trim_start`, quicker on ASCII.
#[inline]
pub(super) fn trim_start(s: &str) -> &str {
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
pub(super) fn trim(s: &str) -> &str {
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
