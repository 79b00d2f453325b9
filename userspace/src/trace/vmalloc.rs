// SPDX-License-Identifier: GPL-2.0
//! vmalloc areas. Where the kernel has kprobe events, each area is traced
//! with its stack like any other allocation ([`Probes`]): a probe on the
//! function every vmalloc goes through gives the size asked for, its
//! return probe the address and the stack (a stack taken at the entry
//! probe ends in the optimized probe's trampoline on x86_64, which the
//! unwinder cannot cross; at the return it unwinds through the return
//! trampoline), probes on `vfree()` and `vfree_atomic()` the frees. The
//! same group holds the probe of `kfree_rcu()`'s frees
//! ([`DEFERRED_FREE`]): an object handed to it is freed after a grace
//! period and a batching delay of up to seconds that no RCU barrier waits
//! for, so it counts as freed when it is handed over; and the probe of
//! `kmem_cache_free_bulk()` ([`BULK_FREE`]), whose frees have no event of
//! their own (a socket buffer freed in a list). Without kprobe
//! events, `/proc/vmallocinfo` names the
//! caller of every live area: an area a module made while it was loaded,
//! still there once it is gone, leaked (its init's areas, whose caller's
//! text is freed after init, are missed then).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use super::event::{
    BULK_FREE, BULK_MAX, DEFERRED_FREE, VMALLOC_CALL, VMALLOC_FREES, VMALLOC_RETURN,
};
use crate::{
    kernel::tracefs,
    kmemleak::report::{parse_frame, Frame, Report},
};

/// The function every vmalloc goes through, by kernel: 6.10 on renamed it
/// for allocation profiling.
const ALLOCATOR: [&str; 2] = ["__vmalloc_node_range_noprof", "__vmalloc_node_range"];

/// The function `kfree_rcu()` and `kvfree_rcu()` hand an object to: its
/// second argument is the object (6.12), or, with a head, the head's
/// offset in it (6.1: `ptr = head - offset`).
const DEFERRED_FREER: &str = "kvfree_call_rcu";

/// The function every bulk free of slab objects goes through:
/// `kmem_cache_free_bulk(cache, count, objects)`.
const BULK_FREER: &str = "kmem_cache_free_bulk";

/// The vmalloc probes of a run, and the deferred frees', in a kprobe group
/// of its own.
#[derive(Debug, Clone)]
pub struct Probes {
    root: PathBuf,
    /// The group: `events/GROUP/...` in every instance.
    pub group: String,
    /// Whether the kernel took the probe of [`DEFERRED_FREER`].
    deferred: bool,
    /// Whether the kernel took the probe of [`BULK_FREER`].
    bulk: bool,
}

impl Probes {
    /// Adds the probes to the kernel at tracefs `root`; `None` where it has
    /// no kprobe events or refuses them (the areas are read from
    /// `/proc/vmallocinfo` then).
    pub fn add(root: &Path) -> Option<Self> {
        if !root.join("kprobe_events").exists() {
            return None;
        }
        let mut probes = Self {
            root: root.to_path_buf(),
            group: format!("leaklab_vm_{}", std::process::id()),
            deferred: false,
            bulk: false,
        };
        probes.remove();
        let g = &probes.group;
        let allocator = ALLOCATOR.iter().find(|f| {
            tracefs::kprobe_events(root, &format!("p:{g}/{VMALLOC_CALL} {f} size=$arg1:u64"))
                .is_ok()
        })?;
        let rest = [
            format!("r:{g}/{VMALLOC_RETURN} {allocator} addr=$retval:x64"),
            format!("p:{g}/{} vfree addr=$arg1:x64", VMALLOC_FREES[0]),
            format!("p:{g}/{} vfree_atomic addr=$arg1:x64", VMALLOC_FREES[1]),
        ];
        if rest
            .iter()
            .any(|d| tracefs::kprobe_events(root, d).is_err())
        {
            probes.remove();
            return None;
        }
        let deferred =
            format!("p:{g}/{DEFERRED_FREE} {DEFERRED_FREER} head=$arg1:x64 arg=$arg2:x64");
        probes.deferred = tracefs::kprobe_events(root, &deferred).is_ok();
        // The array's first BULK_MAX entries: the record says how many
        // of them are objects.
        let bulk = format!(
            "p:{g}/{BULK_FREE} {BULK_FREER} count=$arg2:u64 objs=+0($arg3):x64[{BULK_MAX}]"
        );
        probes.bulk = tracefs::kprobe_events(root, &bulk).is_ok();
        Some(probes)
    }

    /// The events, the call first: (name under `events/`, whether its
    /// stack is wanted: the return's).
    pub fn events(&self) -> impl Iterator<Item = (String, bool)> + '_ {
        [VMALLOC_CALL, VMALLOC_RETURN]
            .into_iter()
            .chain(VMALLOC_FREES)
            .chain(self.deferred.then_some(DEFERRED_FREE))
            .chain(self.bulk.then_some(BULK_FREE))
            .map(|e| (format!("{}/{e}", self.group), e == VMALLOC_RETURN))
    }

    /// Takes the probes away (each instance that enabled them must be gone
    /// or have them disabled).
    pub fn remove(&self) {
        for (event, _) in self.events() {
            let _ = tracefs::kprobe_events(&self.root, &format!("-:{event}"));
        }
    }
}

/// The file.
pub const VMALLOCINFO: &str = "/proc/vmallocinfo";

/// One live vmalloc area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// Its start address.
    pub start: u64,
    /// Its size as listed (with the guard page, where it has one).
    pub size: u64,
    /// The function that asked for it.
    pub caller: Frame,
    /// Whether the line says `vmalloc` (an area with pages of its own, not
    /// an ioremap or a vmap of someone else's pages).
    pub vmalloc: bool,
}

impl Area {
    /// The area as a report: its address, size and caller.
    pub fn report(&self) -> Report {
        Report {
            address: self.start,
            size: self.size,
            comm: None,
            pid: None,
            jiffies: None,
            crc: None,
            frames: vec![self.caller.clone()],
            garbled: false,
        }
    }
}

/// Parses `0xffffc900...-0xffffc900...  8192 caller+0x4c/0x2a0 [mod] pages=1 vmalloc N0=1`.
pub fn parse(text: &str) -> Vec<Area> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (start, end) = words.next()?.split_once('-')?;
            let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
            let (start, _end) = (hex(start)?, hex(end)?);
            let size = words.next()?.parse().ok()?;
            let rest: Vec<&str> = words.collect();
            // The caller, and its `[module]` tag when it has one.
            let mut caller = rest.first()?.to_string();
            if let Some(tag) = rest
                .get(1)
                .filter(|w| w.starts_with('[') && w.ends_with(']'))
            {
                caller = format!("{caller} {tag}");
            }
            Some(Area {
                start,
                size,
                caller: parse_frame(&caller),
                vmalloc: rest.contains(&"vmalloc"),
            })
        })
        .collect()
}

/// Reads the live areas (needs root: others see zero addresses).
pub fn read() -> Result<Vec<Area>> {
    let text = fs::read_to_string(VMALLOCINFO).with_context(|| format!("reading {VMALLOCINFO}"))?;
    Ok(parse(&text))
}

/// The areas of `module` in `loaded` (read while it was there) that are
/// new since `before` (read before it was loaded) and still live in
/// `after`. An older area can name the module as its caller too: its
/// caller was an earlier module's init code, whose freed addresses the
/// module's own init now occupies.
pub fn left_by(module: &str, before: &[Area], loaded: &[Area], after: &[Area]) -> Vec<Area> {
    let live =
        |list: &[Area], a: &Area| list.iter().any(|b| b.start == a.start && b.size == a.size);
    loaded
        .iter()
        .filter(|a| a.vmalloc && a.caller.module.as_deref() == Some(module))
        .filter(|a| !live(before, a))
        .filter(|a| live(after, a))
        .cloned()
        .collect()
}

/// The vmalloc areas around each load of a module: read before it is
/// loaded ([`Loads::before_load`]) and just before it is unloaded
/// ([`Loads::before_unload`]); [`Loads::left`] reads once more after the
/// last unload and keeps what the loads left.
#[derive(Debug, Default)]
pub struct Loads(Vec<(String, Vec<Area>, Vec<Area>)>);

impl Loads {
    /// The areas now, before a load.
    pub fn before_load() -> Result<Vec<Area>> {
        read()
    }

    /// Notes module `name`'s areas before its unload, with `before` (from
    /// [`Loads::before_load`]).
    pub fn before_unload(&mut self, name: &str, before: Vec<Area>) -> Result<()> {
        self.0.push((name.to_string(), before, read()?));
        Ok(())
    }

    /// The areas the loads left, as reports.
    pub fn left(&self) -> Result<Vec<Report>> {
        let after = read()?;
        Ok(self
            .0
            .iter()
            .flat_map(|(name, before, loaded)| left_by(name, before, loaded, &after))
            .map(|a| a.report())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOADED: &str = "\
0xffffc90000000000-0xffffc90000002000    8192 kmemleak_test_init+0x4c/0x2a0 [kmemleak_test] pages=1 vmalloc N0=1
0xffffc90000004000-0xffffc90000006000    8192 kmemleak_test_init+0x5c/0x2a0 [kmemleak_test] pages=1 vmalloc N0=1
0xffffc90000008000-0xffffc9000000d000   20480 execmem_vmalloc+0x1/0x2 pages=4 vmalloc N0=4
0xffffc90000010000-0xffffc90000012000    8192 pci_iomap+0x1/0x2 [other] ioremap
";

    #[test]
    fn areas_a_module_made_and_left_are_found_by_their_caller() {
        let loaded = parse(LOADED);
        assert_eq!(loaded.len(), 4);
        assert_eq!(loaded[0].caller.module.as_deref(), Some("kmemleak_test"));
        assert_eq!(loaded[2].caller.module, None);
        // After the unload: the second area was freed, the first stays, its
        // caller now a bare address.
        let after = parse(
            "0xffffc90000000000-0xffffc90000002000    8192 0xffffffffa000104c pages=1 vmalloc N0=1\n",
        );
        let left = left_by("kmemleak_test", &[], &loaded, &after);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].start, 0xffffc90000000000);
        let all = parse(LOADED);
        assert!(
            left_by("other", &[], &all, &all).is_empty(),
            "an ioremap is not a vmalloc"
        );
        assert!(
            left_by("kmemleak_test", &loaded, &loaded, &after).is_empty(),
            "an area from before the load is not the module's, whatever its caller says now"
        );
    }

    /// Lines as Debian 12's own kernels print them (captured in QEMU; the
    /// addresses hashed, as without root's kptr_restrict): one format in
    /// 6.1 and 6.12, with `vmap`, `ioremap` and `phys=` areas beside the
    /// `vmalloc` ones.
    #[test]
    fn debian_6_1_and_6_12_lines_read_alike() {
        let v6_1 = "\
0x000000007e022bc9-0x000000005db5fee6   20480 irq_init_percpu_irqstack+0xf0/0x120 vmap
0x000000005db5fee6-0x0000000066e42341    8192 acpi_os_map_iomem+0x1b6/0x1d0 phys=0x000000001ffe1000 ioremap
";
        let v6_12 = "\
0x000000004ad0f0fc-0x000000004ed3c5cc   20480 start_kernel+0x364/0x820 pages=4 vmalloc N0=4
0x000000004ed3c5cc-0x000000000247247c    8192 __ioremap_prot+0x70/0xb8 phys=0x0000000008020000 ioremap
";
        for text in [v6_1, v6_12] {
            let areas = parse(text);
            assert_eq!(areas.len(), 2, "{text}");
            assert_eq!(areas[1].size, 8192);
            assert!(!areas[1].vmalloc, "an ioremap is not a vmalloc");
            assert!(areas[0].caller.symbol.is_some());
        }
        assert!(parse(v6_12)[0].vmalloc);
        assert!(!parse(v6_1)[0].vmalloc, "a vmap is not a vmalloc");
    }

    #[test]
    fn odd_lines_are_skipped() {
        assert!(parse("garbage\n0x1-0x2 notanumber f\n\n").is_empty());
    }
}
