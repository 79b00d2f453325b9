// SPDX-License-Identifier: GPL-2.0
//! How the kernel's memory moves while a run goes on, and what the running
//! kernel is: `/proc/meminfo`, `/proc/slabinfo`, the release, the CPUs.

use std::{collections::BTreeMap, fs};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The running kernel's release, e.g. `6.12.117` (empty if unknown).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The running kernel's configuration (`/proc/config.gz`, else
/// `/boot/config-<release>`): its text and where it came from.
pub fn kernel_config() -> Option<(String, String)> {
    use std::io::Read;
    if let Ok(file) = fs::File::open("/proc/config.gz") {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .is_ok()
        {
            return Some((text, "/proc/config.gz".into()));
        }
    }
    let path = format!("/boot/config-{}", kernel_release());
    let text = fs::read_to_string(&path).ok()?;
    Some((text, path))
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
            mem_available: after.mem_available.saturating_sub(self.mem_available),
            slab: after.slab.saturating_sub(self.slab),
            sunreclaim: after.sunreclaim.saturating_sub(self.sunreclaim),
            kernel_stack: after.kernel_stack.saturating_sub(self.kernel_stack),
        }
    }
}

/// One slab cache's line of `/proc/slabinfo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlabCache {
    /// Active objects.
    pub active: i64,
    /// Bytes of one object.
    pub object_size: u64,
}

/// The slab caches by name, from `/proc/slabinfo`.
pub type SlabCounts = BTreeMap<String, SlabCache>;

/// Parses `/proc/slabinfo` text (`name active total size ...`).
pub fn parse_slabinfo(text: &str) -> SlabCounts {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("slabinfo"))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            let active = it.next()?.parse().ok()?;
            let object_size = it.nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            Some((
                name,
                SlabCache {
                    active,
                    object_size,
                },
            ))
        })
        .collect()
}

/// What a cache's `shrink` file is written: `1`, padded to a page. The
/// kernel copies a sysfs write into a buffer of its length plus one, so a
/// one-byte write takes that buffer from kmalloc-8 and, once kmalloc-8 is
/// shrunk, the writes to the caches after it re-arm its per-CPU slab, whose
/// objects SLUB counts as in use: its count then moves by up to a slab (512
/// objects) with nothing allocated. A page's write takes the buffer from
/// the largest kmalloc cache, a few objects a slab. `shrink` reads only the
/// first byte.
const SHRINK: [u8; 4096] = {
    let mut b = [b' '; 4096];
    b[0] = b'1';
    b
};

/// Reads the running kernel's slab caches (needs CONFIG_SLUB_DEBUG), after
/// shrinking every cache: SLUB counts the objects of per-CPU slabs as active,
/// so without a flush the counts move by whole slabs.
pub fn read_slabinfo() -> Result<SlabCounts> {
    if let Ok(dir) = fs::read_dir("/sys/kernel/slab") {
        for e in dir.flatten() {
            let _ = fs::write(e.path().join("shrink"), SHRINK);
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
            let active = |c: &SlabCounts| c.get(n).map_or(0, |c| c.active);
            let d = active(after).saturating_sub(active(before));
            (d != 0).then(|| (n.clone(), d))
        })
        .collect()
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-3`).
pub fn possible_cpus() -> u64 {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .map(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
                    Some(b.checked_sub(a)? + 1)
                })
                .sum()
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_slabinfo_parse() {
        let m = MemInfo::parse("MemTotal: 1 kB\nMemAvailable:   480000 kB\nSlab: 9000 kB\nSUnreclaim: 5000 kB\nKernelStack: 400 kB\n");
        assert_eq!(
            (m.mem_available, m.slab, m.sunreclaim, m.kernel_stack),
            (480000, 9000, 5000, 400)
        );
        let before = parse_slabinfo("slabinfo - version: 2.1\n# name <active_objs> ...\nkmalloc-256  10 16 256 16 1 : tunables 0 0 0\nfoo 1 1 8 1 1\n");
        assert_eq!(
            before.get("kmalloc-256"),
            Some(&SlabCache {
                active: 10,
                object_size: 256
            })
        );
        let after = parse_slabinfo("kmalloc-256  13 16 256 16 1\nbar 2 2 8 1 1\n");
        let d = slab_delta(&before, &after);
        assert_eq!(d.get("kmalloc-256"), Some(&3));
        assert_eq!(d.get("foo"), Some(&-1));
        assert_eq!(d.get("bar"), Some(&2));
    }
}
