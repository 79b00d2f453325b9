// SPDX-License-Identifier: GPL-2.0
//! The kernel's text symbols from `/proc/kallsyms`: names for the return
//! addresses a raw stack trace holds.

use std::{fs, io::Read};

use anyhow::{bail, Context, Result};

use crate::kmemleak::report::Frame;

/// Where the kernel lists its symbols.
pub const KALLSYMS: &str = "/proc/kallsyms";

/// A function farther than this from its symbol is not taken for it (the
/// gap after the last symbol of a section).
const MAX_FUNCTION: u64 = 1 << 20;

/// One text symbol.
#[derive(Debug)]
struct Symbol {
    address: u64,
    name: String,
    module: Option<String>,
}

/// The text symbols of the kernel and of the modules loaded when it was
/// read, by address.
#[derive(Debug, Default)]
pub struct Kallsyms {
    symbols: Vec<Symbol>,
}

impl Kallsyms {
    /// Reads `/proc/kallsyms`. Fails when the kernel hides the addresses
    /// (`kptr_restrict`) or lists none.
    ///
    /// With no module loaded (the run's own are named from their object
    /// files, loaded after this is read), only the kernel image's text is
    /// needed: reading stops at its end (`_etext`). Its data symbols follow,
    /// which are nearly half the file and of the time the kernel takes to
    /// print it (0.14 s for 40 k symbols on one x86_64 TCG vCPU).
    pub fn read() -> Result<Self> {
        let text_only = fs::read_to_string("/proc/modules").is_ok_and(|m| m.trim().is_empty());
        let text = read_until(KALLSYMS, text_only.then_some(" _etext\n"))
            .with_context(|| format!("reading {KALLSYMS}"))?;
        let k = Self::parse(&text);
        if k.symbols.is_empty() {
            bail!(
                "{KALLSYMS} shows no addresses: run as root, with /proc/sys/kernel/kptr_restrict at 0 or 1"
            );
        }
        Ok(k)
    }

    /// Parses the text of `/proc/kallsyms` (`address type name [module]`),
    /// keeping the text symbols (`t`, `T`, `w`, `W`) at non-zero addresses.
    pub fn parse(text: &str) -> Self {
        let mut symbols: Vec<Symbol> = text
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let address = u64::from_str_radix(f.next()?, 16).ok()?;
                let kind = f.next()?;
                let name = f.next()?;
                let module = f
                    .next()
                    .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'))
                    .map(str::to_string);
                (address != 0 && matches!(kind, "t" | "T" | "w" | "W")).then(|| Symbol {
                    address,
                    name: name.to_string(),
                    module,
                })
            })
            .collect();
        symbols.sort_by_key(|s| s.address);
        Self { symbols }
    }

    /// The symbol covering return address `address`, with the offset into
    /// it: `None` below every symbol or far past one (a module that is
    /// gone, or came after the symbols were read).
    pub fn lookup(&self, address: u64) -> Option<(&str, u64, Option<&str>)> {
        let i = self.symbols.partition_point(|s| s.address <= address);
        let s = &self.symbols[i.checked_sub(1)?];
        let offset = address - s.address;
        (offset < MAX_FUNCTION).then_some((s.name.as_str(), offset, s.module.as_deref()))
    }

    /// A frame for return address `address`: named `symbol+offset [module]`
    /// where [`Kallsyms::lookup`] finds it, else the bare address.
    pub fn frame(&self, address: u64) -> Frame {
        match self.lookup(address) {
            Some((name, offset, module)) => {
                let tag = module.map_or_else(String::new, |m| format!(" [{m}]"));
                Frame {
                    raw: format!("{name}+{offset:#x}{tag}"),
                    address: Some(address),
                    symbol: Some(name.to_string()),
                    offset: Some(offset),
                    module: module.map(str::to_string),
                }
            }
            None => Frame {
                raw: format!("{address:#x}"),
                address: Some(address),
                symbol: None,
                offset: None,
                module: None,
            },
        }
    }
}

/// The text of the file at `path`, up to the first line that ends in
/// `end` (all of it without `end`, or when no line does).
fn read_until(path: &str, end: Option<&str>) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        // An end that straddles two chunks is found in the second.
        let from = bytes.len().saturating_sub(end.map_or(0, str::len));
        bytes.extend_from_slice(&chunk[..n]);
        if let Some(at) =
            end.and_then(|e| find(&bytes[from..], e.as_bytes()).map(|i| from + i + e.len()))
        {
            bytes.truncate(at);
            break;
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
ffffffff81000000 T _stext
ffffffff81000100 t helper
ffffffff81002000 D some_data
ffffffffa0000000 t probe_leaky\t[leaklab]
0000000000000000 T hidden
";

    #[test]
    fn an_address_is_named_by_the_symbol_below_it_with_its_module() {
        let k = Kallsyms::parse(TEXT);
        let f = k.frame(0xffffffff81000123);
        assert_eq!(f.symbol.as_deref(), Some("helper"));
        assert_eq!(f.offset, Some(0x23));
        assert_eq!(f.module, None);
        assert_eq!(f.raw, "helper+0x23");
        let f = k.frame(0xffffffffa0000010);
        assert_eq!(f.module.as_deref(), Some("leaklab"));
        assert_eq!(f.raw, "probe_leaky+0x10 [leaklab]");
    }

    #[test]
    fn an_address_below_every_symbol_or_far_past_one_stays_bare() {
        let k = Kallsyms::parse(TEXT);
        assert_eq!(k.frame(0x1000).symbol, None);
        let f = k.frame(0xffffffffc0000000);
        assert_eq!((f.symbol, f.address), (None, Some(0xffffffffc0000000)));
    }

    #[test]
    fn reading_stops_after_the_line_that_ends_so_even_across_chunks() {
        let dir = std::env::temp_dir().join(format!("leaklab-kallsyms-{}", std::process::id()));
        let mut text = String::new();
        for i in 0..5000u64 {
            text += &format!("{:016x} t f{i}\n", 0xffffffff81000000 + i * 16);
        }
        // Past the first 64 KiB chunk, and again after the end.
        text += "ffffffff81600000 T _etext\nffffffff81600010 D data\n";
        text += &"ffffffff81700000 D more\n".repeat(5000);
        fs::write(&dir, &text).unwrap();
        let path = dir.to_str().unwrap();
        let cut = read_until(path, Some(" _etext\n")).unwrap();
        assert!(cut.len() > 1 << 16);
        assert!(cut.ends_with("T _etext\n"), "{}", &cut[cut.len() - 40..]);
        assert_eq!(read_until(path, None).unwrap(), text);
        assert_eq!(read_until(path, Some(" nowhere\n")).unwrap(), text);
        fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn hidden_addresses_and_data_symbols_are_left_out() {
        let k = Kallsyms::parse("0000000000000000 T a\n0000000000000000 t b\n");
        assert!(k.symbols.is_empty());
        let k = Kallsyms::parse(TEXT);
        assert_eq!(k.symbols.len(), 3);
    }
}
