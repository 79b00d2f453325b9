//! Grouping reports by where they were allocated: a fingerprint of the
//! symbolized backtrace (functions and offsets, not addresses, which move
//! with every load, nor kmemleak's crc, which is of the object's contents).

use std::collections::HashMap;

use serde::Serialize;

use crate::{
    cycle::attribute,
    report::Report,
    symbolize::{Resolved, Symbolizer},
};

/// Reports with the same backtrace.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// 16 hex digits (FNV-1a over the symbolized frames).
    pub fingerprint: String,
    /// How many reports.
    pub count: usize,
    /// Their bytes together.
    pub bytes: u64,
    /// The first frame outside the allocator wrappers (see `cycle::SKIP`).
    pub culprit: Option<String>,
    /// The culprit's source line, when the module's DWARF gave one.
    pub culprit_line: Option<String>,
    /// The leaklab pattern and variant, when it is one of the samples.
    pub sample: Option<String>,
    /// The module the culprit is in (`None`: the kernel).
    pub module: Option<String>,
    /// The symbolized frames, innermost first.
    pub frames: Vec<String>,
    /// Whether any report of the group was cut short or garbled.
    pub garbled: bool,
}

/// A frame as text: symbolized where possible, else as printed.
fn frame_text(res: Option<Resolved>, raw: &str) -> String {
    res.map_or_else(|| raw.to_string(), |r| r.display())
}

/// The fingerprint of a symbolized backtrace (FNV-1a, 64 bits): stable
/// across runs, boots and tool versions.
pub fn fingerprint(frames: &[impl AsRef<str>]) -> String {
    format!("{:016x}", fingerprint_u64(frames))
}

fn fingerprint_u64(frames: &[impl AsRef<str>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in frames {
        let f = f.as_ref();
        // The source line is left out: the same stack is the same stack
        // whether or not the module's DWARF was at hand.
        let f = f.split(" at ").next().unwrap_or(f);
        for b in f.bytes().chain([b'\n']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Groups reports by backtrace as they stream in: memory grows with the
/// number of distinct backtraces and frames, not of reports.
pub struct Grouper<'s> {
    sym: &'s Symbolizer,
    groups: HashMap<u64, Group>,
    /// Symbolized text per allocating task and raw frame: frames repeat
    /// from report to report.
    frames: HashMap<Option<u32>, HashMap<String, String>>,
}

impl<'s> Grouper<'s> {
    /// An empty grouping that symbolizes with `sym`.
    pub fn new(sym: &'s Symbolizer) -> Self {
        Self {
            sym,
            groups: HashMap::new(),
            frames: HashMap::new(),
        }
    }

    /// Counts `r` in its group.
    pub fn add(&mut self, r: &Report) {
        let cache = self.frames.entry(r.pid).or_default();
        for f in &r.frames {
            if !cache.contains_key(f.raw.as_str()) {
                let text = frame_text(self.sym.frame(f, r.pid), &f.raw);
                cache.insert(f.raw.clone(), text);
            }
        }
        let texts: Vec<&str> = r
            .frames
            .iter()
            .map(|f| cache[f.raw.as_str()].as_str())
            .collect();
        let fp = fingerprint_u64(&texts);
        let sym = self.sym;
        let g = self.groups.entry(fp).or_insert_with(|| {
            let a = attribute(r, sym);
            Group {
                fingerprint: format!("{fp:016x}"),
                count: 0,
                bytes: 0,
                culprit: a.culprit,
                culprit_line: a.culprit_line,
                sample: a
                    .pattern
                    .map(|p| format!("{p} {}", a.variant.map_or("?", |v| v.name()))),
                module: a.module,
                frames: texts.iter().map(|t| t.to_string()).collect(),
                garbled: false,
            }
        });
        g.count += 1;
        g.bytes += r.size;
        g.garbled |= r.garbled;
    }

    /// The groups, the largest first.
    pub fn finish(self) -> Vec<Group> {
        let mut v: Vec<Group> = self.groups.into_values().collect();
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
    let mut g = Grouper::new(sym);
    for r in reports {
        g.add(r);
    }
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::parse;

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
    }
}
