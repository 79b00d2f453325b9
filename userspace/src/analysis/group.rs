// SPDX-License-Identifier: GPL-2.0
//! Grouping reports by where they were allocated: a fingerprint of the
//! symbolized backtrace (functions and offsets, not addresses, which move
//! with every load, nor kmemleak's crc, which is of the object's contents).

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::{
    attribute::{attribute, base_name},
    symbolize::{Resolved, Symbolizer},
};
use crate::kmemleak::report::{Block, Report};

/// Reports with the same backtrace.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// 16 hex digits (FNV-1a over the symbolized frames, their functions
    /// without compiler suffixes: see [`fingerprint`]).
    pub fingerprint: String,
    /// How many reports.
    pub count: usize,
    /// Their bytes together.
    pub bytes: u64,
    /// The first frame outside the allocator wrappers (see
    /// [`super::attribute::SKIP`]), its function without compiler suffixes.
    pub culprit: Option<String>,
    /// The culprit's source line, when the module's DWARF gave one.
    pub culprit_line: Option<String>,
    /// `memory leak in <function>` of the culprit (no offset), for CI to
    /// deduplicate with; `None` when the culprit has no name.
    pub title: Option<String>,
    /// The leaklab pattern and variant, when it is one of the samples.
    pub sample: Option<String>,
    /// The module the culprit is in (`None`: the kernel).
    pub module: Option<String>,
    /// The symbolized frames of the first report, innermost first, as the
    /// kernel named them (`.isra.7` and all).
    pub frames: Vec<String>,
    /// Whether any report of the group was cut short or garbled.
    pub garbled: bool,
}

/// A frame as text: symbolized where possible, else as printed.
fn frame_text(res: Option<Resolved>, raw: &str) -> String {
    res.map_or_else(|| raw.to_string(), |r| r.display())
}

/// The fingerprint of a symbolized backtrace as [`Group::fingerprint`]
/// gives it: 16 hex digits. Frames that differ only in a compiler suffix
/// (`do_ipv6_setsockopt.isra.7+0x8c4`, `.isra.8+0x8c4`) count as the same.
pub fn fingerprint(frames: &[impl AsRef<str>]) -> String {
    format!("{:016x}", fingerprint_u64(frames))
}

/// The fingerprint of a symbolized backtrace (FNV-1a, 64 bits): stable
/// across runs, boots and tool versions.
fn fingerprint_u64(frames: &[impl AsRef<str>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in frames {
        let f = f.as_ref();
        // The source line is left out: the same stack is the same stack
        // whether or not the module's DWARF was at hand.
        let f = f.split(" at ").next().unwrap_or(f);
        // So is a compiler suffix (`.isra.7`): two builds number the clones
        // of a function apart, and its leak is the same bug. A frame
        // without one hashes as it always did.
        h = match f.rsplit_once('+') {
            Some((function, rest)) => {
                let h = fnv1a(h, base_name(function).as_bytes());
                fnv1a(fnv1a(h, b"+"), rest.as_bytes())
            }
            None => fnv1a(h, f.as_bytes()),
        };
        h = fnv1a(h, b"\n");
    }
    h
}

/// FNV-1a's hash `h` continued over `bytes`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Reports counted by allocating task and backtrace as printed, in the order
/// they first appeared. No symbolization: cheap per report, and a tally per
/// thread joins with [`Tally::append`]. What a group is depends on these two
/// only (symbols of a reused init section are told apart by the loading
/// task), so [`Tally::group`] makes the groups from one report of each.
#[derive(Debug, Default)]
pub struct Tally {
    index: FxHashMap<Option<u32>, FxHashMap<String, usize>>,
    entries: Vec<Entry>,
}

/// The reports of one task and backtrace.
#[derive(Debug)]
struct Entry {
    /// Kept as read (copied, not parsed): most entries of a tally made per
    /// chunk of input are merged into another's and dropped.
    first: Block,
    count: usize,
    bytes: u64,
    garbled: bool,
}

impl Tally {
    /// Counts the report `b`.
    pub fn add(&mut self, b: &Block) {
        let at = self.index.get(&b.pid()).and_then(|m| m.get(b.backtrace()));
        let i = match at {
            Some(&i) => i,
            None => self.insert(b.clone()),
        };
        // Sizes come from the input: a crafted report may say anything.
        self.entries[i].count += 1;
        self.entries[i].bytes = self.entries[i].bytes.saturating_add(b.size());
        self.entries[i].garbled |= b.garbled();
    }

    /// How many reports were counted.
    pub fn reports(&self) -> usize {
        self.entries.iter().map(|e| e.count).sum()
    }

    /// How many of them were cut short or garbled.
    pub fn garbled(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.garbled)
            .map(|e| e.count)
            .sum()
    }

    /// A new entry, empty, for `first`; returns its index.
    fn insert(&mut self, first: Block) -> usize {
        let i = self.entries.len();
        self.index
            .entry(first.pid())
            .or_default()
            .insert(first.backtrace().to_string(), i);
        self.entries.push(Entry {
            first,
            count: 0,
            bytes: 0,
            garbled: false,
        });
        i
    }

    /// Adds `later`, counted from input that came after this tally's.
    pub fn append(&mut self, later: Tally) {
        for e in later.entries {
            let at = self
                .index
                .get(&e.first.pid())
                .and_then(|m| m.get(e.first.backtrace()));
            let i = match at {
                Some(&i) => i,
                None => self.insert(e.first),
            };
            self.entries[i].count += e.count;
            self.entries[i].bytes = self.entries[i].bytes.saturating_add(e.bytes);
            self.entries[i].garbled |= e.garbled;
        }
    }

    /// The groups, the largest first: each symbolized with `sym` once, and
    /// described by its first report.
    pub fn group(self, sym: &Symbolizer) -> Vec<Group> {
        let mut groups: FxHashMap<u64, Group> = FxHashMap::default();
        // Symbolized text per allocating task and raw frame: frames repeat
        // from backtrace to backtrace.
        let mut frames: HashMap<(Option<u32>, &str), String> = HashMap::new();
        let firsts: Vec<Report> = self.entries.iter().map(|e| e.first.to_report()).collect();
        for (e, r) in self.entries.iter().zip(&firsts) {
            for f in &r.frames {
                frames
                    .entry((r.pid, f.raw.as_str()))
                    .or_insert_with(|| frame_text(sym.frame(f, r.pid), &f.raw));
            }
            let texts: Vec<&str> = r
                .frames
                .iter()
                .map(|f| frames[&(r.pid, f.raw.as_str())].as_str())
                .collect();
            let fp = fingerprint_u64(&texts);
            let g = groups.entry(fp).or_insert_with(|| {
                let a = attribute(r, sym);
                Group {
                    fingerprint: format!("{fp:016x}"),
                    count: 0,
                    bytes: 0,
                    culprit: a.culprit,
                    culprit_line: a.culprit_line,
                    title: a.title,
                    sample: a
                        .pattern
                        .map(|p| format!("{p} {}", a.variant.map_or("?", |v| v.name()))),
                    module: a.module,
                    frames: texts.iter().map(|t| t.to_string()).collect(),
                    garbled: false,
                }
            });
            g.count += e.count;
            g.bytes = g.bytes.saturating_add(e.bytes);
            g.garbled |= e.garbled;
        }
        let mut v: Vec<Group> = groups.into_values().collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        v
    }
}

/// Groups `reports` by backtrace, the largest group first.
pub fn group(reports: &[Report], sym: &Symbolizer) -> Vec<Group> {
    let mut t = Tally::default();
    for r in reports {
        t.add(&Block::from(r));
    }
    t.group(sym)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmemleak::report::parse;

    const TWO_SITES: &str = "unreferenced object 0xffff888001000000 (size 32):
  comm \"insmod\", pid 18, jiffies 4294892487
  backtrace (crc 1):
    __kmalloc_cache_noprof+0x1a2/0x2a0
    0xffffffffa000023a
unreferenced object 0xffff888001000100 (size 32):
  comm \"insmod\", pid 18, jiffies 4294892488
  backtrace (crc 2):
    __kmalloc_cache_noprof+0x1a2/0x2a0
    0xffffffffa000023a
unreferenced object 0xffff888001000200 (size 64):
  comm \"insmod\", pid 18, jiffies 4294892489
  backtrace (crc 1):
    __kmalloc_cache_noprof+0x1a2/0x2a0
    0xffffffffa0000300
";

    #[test]
    fn groups_by_stack_not_by_crc() {
        let g = group(&parse(TWO_SITES), &Symbolizer::default());
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].count, g[0].bytes), (2, 64));
        assert_eq!((g[1].count, g[1].bytes), (1, 64));
        assert_ne!(g[0].fingerprint, g[1].fingerprint);
        // Bare addresses of an unloaded module: culprits without a name.
        assert_eq!(g[0].culprit.as_deref(), Some("0xffffffffa000023a"));
        assert_eq!(g[0].title, None);
    }

    #[test]
    fn a_group_is_titled_by_its_culprit_function() {
        let text = TWO_SITES.replace(
            "0xffffffffa000023a",
            "[<ffffffff84e5bea0>] do_ipv6_setsockopt.isra.7+0x15d0/0x2830",
        );
        let g = group(&parse(&text), &Symbolizer::default());
        assert_eq!(g[0].count, 2);
        assert_eq!(g[0].culprit.as_deref(), Some("do_ipv6_setsockopt+0x15d0"));
        assert_eq!(
            g[0].title.as_deref(),
            Some("memory leak in do_ipv6_setsockopt")
        );
        let json = serde_json::to_value(&g[0]).unwrap();
        assert_eq!(json["title"], "memory leak in do_ipv6_setsockopt");
    }

    /// A 6.12 report whose culprit is a clone the compiler numbered.
    const SETSOCKOPT: &str = "unreferenced object 0xffff88810a4c7e00 (size 64):
  comm \"syz-executor.3\", pid 4211, jiffies 4295012345
  backtrace (crc 9a1b7c3d):
    __kmalloc_noprof+0x2d8/0x400
    sock_kmalloc+0x5d/0x90
    do_ipv6_setsockopt.isra.7+0x8c4/0x1350
    ipv6_setsockopt+0x57/0x130
";

    #[test]
    fn clones_numbered_apart_by_two_builds_are_one_group() {
        // The same kernel built twice: GCC numbered the clone 7, then 8.
        let text = format!("{SETSOCKOPT}{}", SETSOCKOPT.replace(".isra.7", ".isra.8"));
        let g = group(&parse(&text), &Symbolizer::default());
        assert_eq!(g.len(), 1, "{g:#?}");
        assert_eq!((g[0].count, g[0].bytes), (2, 128));
        // The frames shown keep the first report's name; the culprit and
        // the title have none.
        assert_eq!(g[0].frames[2], "do_ipv6_setsockopt.isra.7+0x8c4");
        assert_eq!(g[0].culprit.as_deref(), Some("do_ipv6_setsockopt+0x8c4"));
        assert_eq!(
            g[0].title.as_deref(),
            Some("memory leak in do_ipv6_setsockopt")
        );
    }

    #[test]
    fn the_fingerprint_leaves_out_compiler_suffixes_only() {
        let plain = [
            "__kmalloc_noprof+0x2d8",
            "sock_kmalloc+0x5d",
            "do_ipv6_setsockopt+0x8c4",
            "ipv6_setsockopt+0x57",
        ];
        // Stacks without suffixes keep the fingerprints they had.
        assert_eq!(fingerprint(&plain), "a342d28eb5831f9f");
        for clone in [
            ".isra.7",
            ".constprop.0",
            ".part.0",
            ".cold",
            ".constprop.0.isra.0",
            ".llvm.9311862455312094551",
        ] {
            let mut f = plain.map(str::to_string);
            f[2] = format!("do_ipv6_setsockopt{clone}+0x8c4");
            assert_eq!(fingerprint(&f), fingerprint(&plain), "{clone}");
        }
        // A module's frame with its source line, and a Rust name with a `+`.
        assert_eq!(
            fingerprint(&["probe.part.0+0x1c [mydrv] at drv.c:31"]),
            fingerprint(&["probe+0x1c [mydrv]"])
        );
        assert_eq!(
            fingerprint(&["<dyn core::any::Any + core::marker::Send>::type_id.cold+0x10 [m]"]),
            fingerprint(&["<dyn core::any::Any + core::marker::Send>::type_id+0x10 [m]"])
        );
        // Offsets, functions and sections still tell stacks apart.
        assert_ne!(fingerprint(&["foo+0x10"]), fingerprint(&["foo+0x14"]));
        assert_ne!(
            fingerprint(&["foo.isra.0+0x10"]),
            fingerprint(&["foo_bar+0x10"])
        );
        assert_ne!(
            fingerprint(&[".init.text+0x10"]),
            fingerprint(&[".text+0x10"])
        );
        assert_ne!(fingerprint(&[".init.text+0x10"]), fingerprint(&["+0x10"]));
    }
}
