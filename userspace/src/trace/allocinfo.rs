// SPDX-License-Identifier: GPL-2.0
//! The kernel's allocation profiling (`CONFIG_MEM_ALLOC_PROFILING`, 6.10+),
//! a further view beside the trace: `/proc/allocinfo` lists the live bytes
//! of every allocation call site, and unloading a module whose own call
//! sites still hold bytes makes the kernel warn, one line per site.
//!
//! What it can say about a module depends on where its allocations are
//! counted. A C module's `kmalloc()` is its own call site (`file:line
//! [module]`); those sites leave `/proc/allocinfo` with the module, so what
//! they held at its unload is read from the kernel's warning. A Rust
//! module's allocations are counted at the `kernel` crate's helpers
//! (`rust/helpers/*.c`), shared by all Rust code: their growth between
//! before the first load and after the last unload is what Rust code kept.
//! Allocations made through a `_noprof` binding (a Rust `kmem_cache` or
//! per-CPU allocation) or by a kernel API on the module's behalf are
//! counted elsewhere, or not at all.

use std::{fs, io::ErrorKind};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The file.
pub const ALLOCINFO: &str = "/proc/allocinfo";
/// Whether profiling counts: `1` on, `0` off, read-only when it was not
/// enabled at boot (`sysctl.vm.mem_profiling=1`).
pub const PROFILING: &str = "/proc/sys/vm/mem_profiling";
/// Where the call sites of Rust's allocation helpers are.
const RUST_HELPERS: &str = "rust/helpers/";

/// One call site's line of `/proc/allocinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Live bytes allocated there.
    pub bytes: i64,
    /// `file:line func:function`, with ` [module]` after the line for a
    /// module's own site.
    pub tag: String,
}

/// Bytes held at one call site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteBytes {
    /// `file:line func:function`.
    pub site: String,
    /// Bytes: held at unload, or the change since before the first load.
    pub bytes: i64,
}

/// What allocation profiling saw of a module's loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocInfo {
    /// The module's own call sites that still held bytes when it was
    /// unloaded (the kernel's warning at each unload), summed over the
    /// unloads by site.
    pub at_unload: Vec<SiteBytes>,
    /// The call sites of Rust's allocation helpers whose live bytes
    /// changed between before the first load and after the last unload.
    pub rust_helpers: Vec<SiteBytes>,
}

impl AllocInfo {
    /// Bytes the module's own sites held at its unloads.
    pub fn at_unload_bytes(&self) -> i64 {
        self.at_unload
            .iter()
            .fold(0, |t, s| t.saturating_add(s.bytes))
    }

    /// Bytes Rust's allocation helpers gained.
    pub fn rust_helper_bytes(&self) -> i64 {
        self.rust_helpers
            .iter()
            .fold(0, |t, s| t.saturating_add(s.bytes))
    }
}

/// Parses `/proc/allocinfo`: a header, then `<size> <calls> <tag info>`.
pub fn parse(text: &str) -> Vec<Site> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (bytes, rest) = l.split_once(char::is_whitespace)?;
            // The live allocations' count, not kept (a number all the same).
            let (calls, tag) = rest.trim_start().split_once(char::is_whitespace)?;
            calls.parse::<u64>().ok()?;
            Some(Site {
                bytes: bytes.parse().ok()?,
                tag: tag.trim().to_string(),
            })
        })
        .collect()
}

/// Whether the kernel profiles allocations, and why not when it does not.
pub fn state() -> std::result::Result<(), &'static str> {
    match fs::read_to_string(PROFILING) {
        Ok(s) if s.trim() == "1" => Ok(()),
        Ok(_) => Err("built in but off: boot with sysctl.vm.mem_profiling=1"),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err("not in this kernel (CONFIG_MEM_ALLOC_PROFILING)")
        }
        Err(_) => Err("its switch cannot be read (run as root)"),
    }
}

/// The live call sites, or `None` when the kernel does not profile
/// allocations ([`state`]).
pub fn read() -> Result<Option<Vec<Site>>> {
    if state().is_err() {
        return Ok(None);
    }
    let text = fs::read_to_string(ALLOCINFO).with_context(|| format!("reading {ALLOCINFO}"))?;
    Ok(Some(parse(&text)))
}

/// The kernel's warning at the unload of a module whose own call site
/// still holds bytes (lib/alloc_tag.c):
/// `drivers/x.c:42 module x func:probe has 256 allocated at module unload`,
/// as the module's name, `file:line func:function` and the bytes.
pub fn unload_warning(line: &str) -> Option<(&str, String, i64)> {
    let body = line.strip_suffix(" allocated at module unload")?;
    let (head, bytes) = body.rsplit_once(" has ")?;
    let (place, rest) = head.rsplit_once(" module ")?;
    let (module, func) = rest.split_once(' ')?;
    let place = place.rsplit(' ').next()?;
    Some((module, format!("{place} {func}"), bytes.parse().ok()?))
}

/// The view of module `module`'s loads: its sites' warnings among the
/// kernel log `lines`, and the change of Rust's helper sites from `before`
/// (read before the first load) to `after` (after the last unload).
pub fn view(module: &str, before: &[Site], after: &[Site], lines: &[String]) -> AllocInfo {
    let mut at_unload: Vec<SiteBytes> = Vec::new();
    for (m, site, bytes) in lines.iter().filter_map(|l| unload_warning(l)) {
        if m != module {
            continue;
        }
        match at_unload.iter_mut().find(|s| s.site == site) {
            Some(s) => s.bytes = s.bytes.saturating_add(bytes),
            None => at_unload.push(SiteBytes { site, bytes }),
        }
    }
    let held = |sites: &[Site], tag: &str| {
        sites
            .iter()
            .filter(|s| s.tag == tag)
            .fold(0i64, |t, s| t.saturating_add(s.bytes))
    };
    let mut rust_helpers: Vec<SiteBytes> = after
        .iter()
        .filter(|s| s.tag.starts_with(RUST_HELPERS))
        .map(|s| SiteBytes {
            site: s.tag.clone(),
            bytes: s.bytes.saturating_sub(held(before, &s.tag)),
        })
        .filter(|s| s.bytes != 0)
        .collect();
    rust_helpers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.site.cmp(&b.site)));
    AllocInfo {
        at_unload,
        rust_helpers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of 6.12's `/proc/allocinfo` (lib/alloc_tag.c).
    const BEFORE: &str = "\
allocinfo - version: 1.0
#     <size>  <calls> <tag info>
        4096        1 rust/helpers/page.c:8 func:rust_helper_alloc_pages 
         512        2 rust/helpers/slab.c:8 func:rust_helper_krealloc 
       16384        4 fs/dcache.c:1681 func:__d_alloc 
";
    const AFTER: &str = "\
allocinfo - version: 1.0
#     <size>  <calls> <tag info>
        4096        1 rust/helpers/page.c:8 func:rust_helper_alloc_pages 
        1536        3 rust/helpers/slab.c:8 func:rust_helper_krealloc 
         256        1 rust/helpers/vmalloc.c:8 func:rust_helper_vrealloc 
       20480        5 fs/dcache.c:1681 func:__d_alloc 
         128        1 drivers/x/x.c:42 [x] func:x_probe 
";

    #[test]
    fn lines_parse_with_and_without_a_module() {
        let sites = parse(AFTER);
        assert_eq!(sites.len(), 5, "{sites:?}");
        assert_eq!(
            sites[4],
            Site {
                bytes: 128,
                tag: "drivers/x/x.c:42 [x] func:x_probe".into()
            }
        );
        assert!(parse("garbage\n12 notanumber x\n").is_empty());
    }

    #[test]
    fn rust_helpers_count_what_they_gained_and_nothing_else() {
        let v = view("leaklab", &parse(BEFORE), &parse(AFTER), &[]);
        let got: Vec<(&str, i64)> = v
            .rust_helpers
            .iter()
            .map(|s| (s.site.as_str(), s.bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("rust/helpers/slab.c:8 func:rust_helper_krealloc", 1024),
                ("rust/helpers/vmalloc.c:8 func:rust_helper_vrealloc", 256),
            ]
        );
        assert_eq!(v.rust_helper_bytes(), 1280);
        assert!(v.at_unload.is_empty());
    }

    #[test]
    fn the_unload_warning_is_summed_by_site_for_its_module_only() {
        let log: Vec<String> = [
            "examples/leaky_driver/leaky_driver.c:91 module leaky_driver func:error_path_leaky has 256 allocated at module unload",
            "leaky_driver: memory allocation(s) from the module still alive, cannot unload cleanly",
            "examples/leaky_driver/leaky_driver.c:91 module leaky_driver func:error_path_leaky has 256 allocated at module unload",
            "other.c:3 module other func:f has 64 allocated at module unload",
            "WARNING: CPU: 0 PID: 80 at lib/alloc_tag.c:172 alloc_tag_module_unload+0x1b2/0x1d0",
        ]
        .map(String::from)
        .to_vec();
        let v = view("leaky_driver", &[], &[], &log);
        assert_eq!(
            v.at_unload,
            [SiteBytes {
                site: "examples/leaky_driver/leaky_driver.c:91 func:error_path_leaky".into(),
                bytes: 512
            }]
        );
        assert_eq!(v.at_unload_bytes(), 512);
        assert_eq!(unload_warning("has 5 allocated at module unload"), None);
    }
}
