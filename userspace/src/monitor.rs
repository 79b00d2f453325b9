//! What the kernel says and how its memory moves while a run goes on: the
//! kernel log (`/dev/kmsg`), `/proc/meminfo` and `/proc/slabinfo`.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    os::unix::fs::OpenOptionsExt,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The running kernel's release, e.g. `6.12.117` (empty if unknown).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Something notable in the kernel log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `warning`, `bug`, `oops`, `slab_still_has_objects` or `kmemleak`.
    pub kind: String,
    /// The log line.
    pub line: String,
}

/// Classifies one kernel log line, or `None` when it is ordinary.
pub fn classify(line: &str) -> Option<&'static str> {
    if line.contains("Slab cache still has objects") {
        Some("slab_still_has_objects")
    } else if line.starts_with("WARNING:") {
        Some("warning")
    } else if line.starts_with("Oops") || line.contains("Internal error: Oops") {
        Some("oops")
    } else if line.starts_with("BUG")
        || line.starts_with("kernel BUG")
        || line.starts_with("Kernel panic")
    {
        Some("bug")
    } else if line.starts_with("kmemleak:")
        && [
            "disabled",
            "Cannot",
            "cannot",
            "failed",
            "out of",
            "Kernel memory leak detector off",
        ]
        .iter()
        .any(|w| line.contains(w))
    {
        Some("kmemleak")
    } else {
        None
    }
}

/// Reads the kernel log from a point on.
pub struct KmsgWatch {
    file: File,
}

impl KmsgWatch {
    /// Starts watching: only records logged from now on are returned.
    pub fn start() -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("opening /dev/kmsg")?;
        file.seek(SeekFrom::End(0)).context("seeking /dev/kmsg")?;
        Ok(Self { file })
    }

    /// Reads from the oldest record the kernel still holds (the log since
    /// boot, unless it wrapped).
    pub fn from_boot() -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("opening /dev/kmsg")?;
        Ok(Self { file })
    }

    /// Returns the text of every record logged since the last call.
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    if let Some((_, text)) = rec.split_once(';') {
                        out.push(text.lines().next().unwrap_or("").to_string());
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// The notable lines among `lines`.
pub fn findings(lines: &[String]) -> Vec<Finding> {
    lines
        .iter()
        .filter_map(|l| {
            classify(l).map(|kind| Finding {
                kind: kind.to_string(),
                line: l.clone(),
            })
        })
        .collect()
}

/// The `/proc/meminfo` fields that move with kernel leaks, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemInfo {
    /// MemAvailable.
    pub mem_available: i64,
    /// Slab.
    pub slab: i64,
    /// SUnreclaim.
    pub sunreclaim: i64,
    /// KernelStack.
    pub kernel_stack: i64,
}

/// One `/proc/meminfo` field (`name` with its colon, e.g. `MemTotal:`) of
/// `text`, in KiB.
pub fn meminfo_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

impl MemInfo {
    /// Parses `/proc/meminfo` text.
    pub fn parse(text: &str) -> Self {
        let mut m = Self::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse().ok())) else {
                continue;
            };
            match k {
                "MemAvailable:" => m.mem_available = v,
                "Slab:" => m.slab = v,
                "SUnreclaim:" => m.sunreclaim = v,
                "KernelStack:" => m.kernel_stack = v,
                _ => {}
            }
        }
        m
    }

    /// Reads the running kernel's.
    pub fn read() -> Result<Self> {
        Ok(Self::parse(
            &fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?,
        ))
    }

    /// `after - self`, field by field.
    pub fn delta(&self, after: &Self) -> Self {
        Self {
            mem_available: after.mem_available - self.mem_available,
            slab: after.slab - self.slab,
            sunreclaim: after.sunreclaim - self.sunreclaim,
            kernel_stack: after.kernel_stack - self.kernel_stack,
        }
    }
}

/// Active objects per slab cache, from `/proc/slabinfo`.
pub type SlabCounts = BTreeMap<String, i64>;

/// Parses `/proc/slabinfo` text.
pub fn parse_slabinfo(text: &str) -> SlabCounts {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("slabinfo"))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Reads the running kernel's slab counts (needs CONFIG_SLUB_DEBUG), after
/// shrinking every cache: SLUB counts the objects of per-CPU slabs as active,
/// so without a flush the counts move by whole slabs.
pub fn read_slabinfo() -> Result<SlabCounts> {
    if let Ok(dir) = fs::read_dir("/sys/kernel/slab") {
        for e in dir.flatten() {
            let _ = fs::write(e.path().join("shrink"), "1");
        }
    }
    Ok(parse_slabinfo(
        &fs::read_to_string("/proc/slabinfo")
            .context("reading /proc/slabinfo (needs CONFIG_SLUB_DEBUG)")?,
    ))
}

/// Caches whose active object count changed, `after - before`.
pub fn slab_delta(before: &SlabCounts, after: &SlabCounts) -> BTreeMap<String, i64> {
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| {
            let d = after.get(n).copied().unwrap_or(0) - before.get(n).copied().unwrap_or(0);
            (d != 0).then(|| (n.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_kernel_lines() {
        assert_eq!(
            classify("kmem_cache_destroy leaklab_slab_1_0: Slab cache still has objects when called from 0xffffffffa0001234"),
            Some("slab_still_has_objects")
        );
        assert_eq!(
            classify("WARNING: CPU: 0 PID: 55 at mm/slab_common.c:548 kmem_cache_destroy+0x1/0x2"),
            Some("warning")
        );
        assert_eq!(
            classify("BUG leaklab_slab_1_0 (Tainted: G        W): Objects remaining"),
            Some("bug")
        );
        assert_eq!(
            classify("kmemleak: Kernel memory leak detector disabled"),
            Some("kmemleak")
        );
        assert_eq!(
            classify("kmemleak: 20 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"),
            None
        );
        assert_eq!(classify("leaklab 0.2.0 loaded"), None);
    }

    #[test]
    fn meminfo_and_slabinfo_parse() {
        let m = MemInfo::parse("MemTotal: 1 kB\nMemAvailable:   480000 kB\nSlab: 9000 kB\nSUnreclaim: 5000 kB\nKernelStack: 400 kB\n");
        assert_eq!(
            (m.mem_available, m.slab, m.sunreclaim, m.kernel_stack),
            (480000, 9000, 5000, 400)
        );
        let before = parse_slabinfo("slabinfo - version: 2.1\n# name <active_objs> ...\nkmalloc-256  10 16 256 16 1 : tunables 0 0 0\nfoo 1 1 8 1 1\n");
        let after = parse_slabinfo("kmalloc-256  13 16 256 16 1\nbar 2 2 8 1 1\n");
        let d = slab_delta(&before, &after);
        assert_eq!(d.get("kmalloc-256"), Some(&3));
        assert_eq!(d.get("foo"), Some(&-1));
        assert_eq!(d.get("bar"), Some(&2));
    }
}
