// SPDX-License-Identifier: GPL-2.0
//! `leaklab refs`: where kernel memory still points to an object.
//!
//! kmemleak reports an object only when no scanned memory holds its address.
//! When a leak is not reported, some word somewhere still does: a stale copy
//! on a stack, in a per-CPU area, in an object that was never fully written.
//! This scans the kernel's memory through `/proc/kcore` (CONFIG_PROC_KCORE)
//! for the addresses given and names the symbol each hit lies in, if any.

use std::{collections::BTreeSet, fs::File, os::unix::fs::FileExt};

use anyhow::{bail, Context, Result};
use object::{
    read::elf::{ElfFile64, ProgramHeader},
    Endianness, ReadCache,
};
use serde::Serialize;

/// One place that holds one of the addresses.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// The address looked for.
    pub target: String,
    /// Where it was found (kernel virtual address).
    pub at: String,
    /// The kernel symbol `at` lies in, as `symbol+offset`, when it is static data.
    pub symbol: Option<String>,
}

/// Segments larger than this (the whole vmalloc range) are not scanned.
const MAX_SEGMENT: u64 = 4 << 30;

fn kallsyms() -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = std::fs::read_to_string("/proc/kallsyms")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let _kind = it.next()?;
            Some((addr, it.next()?.to_string()))
        })
        .filter(|(a, _)| *a != 0)
        .collect();
    v.sort();
    v
}

/// Scans kernel memory for the 8-byte words in `targets`.
pub fn find(targets: &[u64]) -> Result<Vec<Hit>> {
    let file = File::open("/proc/kcore")
        .context("opening /proc/kcore (needs root and CONFIG_PROC_KCORE)")?;
    let cache = ReadCache::new(file);
    let elf =
        ElfFile64::<Endianness, _>::parse(&cache).context("/proc/kcore is not an ELF core file")?;
    let endian = elf.endian();
    let segments: Vec<(u64, u64, u64, u64)> = elf
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(endian) == object::elf::PT_LOAD)
        .map(|p| {
            (
                p.p_vaddr(endian),
                p.p_offset(endian),
                p.p_filesz(endian),
                p.p_paddr(endian),
            )
        })
        .filter(|&(_, _, size, _)| size <= MAX_SEGMENT)
        .collect();
    if segments.is_empty() {
        bail!("/proc/kcore has no memory segments");
    }
    let file = File::open("/proc/kcore")?;
    let wanted: BTreeSet<u64> = targets.iter().copied().collect();
    let syms = kallsyms();
    // The kernel image is also mapped in the linear map: a hit there is
    // named through the image's own segment (the one holding `_text`).
    let text = syms.iter().find(|(_, n)| n == "_text").map(|(a, _)| *a);
    let image = segments
        .iter()
        .find(|(v, _, size, _)| text.is_some_and(|t| t >= *v && t - v < *size))
        .map(|&(v, _, size, p)| (v, size, p));
    let mut hits = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for &(vaddr, offset, size, paddr) in &segments {
        let mut done = 0;
        while done < size {
            let n = (size - done).min(buf.len() as u64) as usize;
            let got = match file.read_at(&mut buf[..n], offset.saturating_add(done)) {
                Ok(0) | Err(_) => break,
                Ok(g) => g,
            };
            for (i, w) in buf[..got].chunks_exact(8).enumerate() {
                let word = u64::from_ne_bytes(w.try_into().expect("8 bytes"));
                if wanted.contains(&word) {
                    let at = vaddr.wrapping_add(done).wrapping_add(i as u64 * 8);
                    let phys = paddr.wrapping_add(at - vaddr);
                    let image_va = match image {
                        Some((iv, isize, ip)) if phys >= ip && phys - ip < isize => {
                            iv.wrapping_add(phys - ip)
                        }
                        _ => at,
                    };
                    let i = syms.partition_point(|(a, _)| *a <= image_va);
                    let symbol = (i > 0 && image_va - syms[i - 1].0 < 1 << 20)
                        .then(|| format!("{}+{:#x}", syms[i - 1].1, image_va - syms[i - 1].0));
                    hits.push(Hit {
                        target: format!("{word:#x}"),
                        at: format!("{at:#x}"),
                        symbol,
                    });
                }
            }
            done += got as u64;
        }
    }
    Ok(hits)
}
