//! The tracefs instance's own files: the events it enables with their
//! filters and triggers, what its buffers lost, and its removal.

use std::{
    fs::{self, File},
    io::{ErrorKind, Read},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{event::Decoder, vmalloc};
use crate::kernel::{
    setting::Changed,
    tracefs::{self, write},
};

/// Whether normal RCU grace periods are expedited (1) or not (0).
pub(super) const RCU_EXPEDITED: &str = "/sys/kernel/rcu_expedited";

/// `common_flags` of an event in hard or soft interrupt or NMI context
/// (`TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI`,
/// include/linux/trace_events.h).
const IN_INTERRUPT: u32 = 0x08 | 0x10 | 0x40;

/// The filter of every event: not the reader's own, unless in interrupt
/// context (hard, soft: RCU callbacks; NMI), where an event carries
/// whichever task was running, the reader too.
pub(super) fn reader_filter(reader: i32) -> String {
    format!("common_pid != {reader} || common_flags & {IN_INTERRUPT:#x}")
}

/// Where kmemleak runs: its cache of metadata objects, in sysfs (SLUB) or
/// beside its debugfs file.
const KMEMLEAK_CACHE: [&str; 2] = [
    "/sys/kernel/slab/kmemleak_object",
    "/sys/kernel/debug/kmemleak",
];

/// kmemleak's own metadata, left out of the trace in the kernel (events,
/// filters): an object for every allocation, which doubles what is traced
/// and unwound. By event, the exclusions in the order tried (a refused
/// one costs a grace period when the next replaces it): the allocation's
/// caller is the function that allocates kmemleak's objects
/// (`mem_pool_alloc()`, inlined into `__alloc_object()` in the 6.12 builds
/// here, both static in mm/kmemleak.c; debugobjects' `__alloc_object()`,
/// should the name resolve to it, takes objects from a list and never
/// calls the slab); a free, by its cache's name. A kernel that refuses
/// both keeps them, and they are told apart by their frames
/// ([`super::internal`]).
const KMEMLEAK_OWN: [(&str, &str); 3] = [
    (
        "kmem/kmem_cache_alloc",
        "call_site.function != mem_pool_alloc",
    ),
    (
        "kmem/kmem_cache_alloc",
        "call_site.function != __alloc_object",
    ),
    ("kmem/kmem_cache_free", "name != \"kmemleak_object\""),
];

/// A file that must be read in one call (tracefs's `header_page` answers
/// a read past its start with nothing).
pub(super) fn read_at_once(path: &Path) -> Result<String> {
    let mut buf = vec![0u8; 1 << 16];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Enables the events, each with filter `not_reader` (and, where
/// kmemleak runs, without its own metadata: [`KMEMLEAK_OWN`]).
pub(super) fn configure(
    d: &Path,
    probes: Option<&vmalloc::Probes>,
    not_reader: &str,
) -> Result<()> {
    let kmemleak = KMEMLEAK_CACHE.iter().any(|p| Path::new(p).exists());
    // Each event's format was read by the reader's decoder.
    for e in Decoder::allocation_events().chain(Decoder::free_events()) {
        let event = d.join("events").join(e);
        let own = KMEMLEAK_OWN.iter().filter(|(on, _)| kmemleak && *on == e);
        // The first exclusion the kernel takes (a function it does not
        // know is refused), else none.
        let filter = own
            .map(|(_, not)| format!("({not_reader}) && {not}"))
            .find(|f| fs::write(event.join("filter"), f).is_ok());
        let filter = match filter {
            Some(f) => f,
            None => {
                write(&event.join("filter"), not_reader)?;
                not_reader.to_string()
            }
        };
        if Decoder::allocation_events().any(|a| a == e) {
            // A filter of its own: an unfiltered trigger fires before
            // the event's filter is tested.
            write(&event.join("trigger"), &format!("stacktrace if {filter}"))?;
        }
        write(&event.join("enable"), "1")?;
    }
    for (e, stack) in probes.into_iter().flat_map(vmalloc::Probes::events) {
        let event = d.join("events").join(e);
        write(&event.join("filter"), not_reader)?;
        if stack {
            write(
                &event.join("trigger"),
                &format!("stacktrace if {not_reader}"),
            )?;
        }
        write(&event.join("enable"), "1")?;
    }
    write(&d.join("tracing_on"), "1")
}

/// Events overwritten (`overrun:`) or dropped (`dropped events:`) in
/// any CPU's buffer.
pub(super) fn overruns(dir: &Path) -> u64 {
    let Ok(cpus) = fs::read_dir(dir.join("per_cpu")) else {
        return 0;
    };
    cpus.flatten()
        .filter_map(|c| fs::read_to_string(c.path().join("stats")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    matches!(k.trim(), "overrun" | "dropped events")
                        .then(|| v.trim().parse::<u64>().ok())?
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Disables the instance's events and removes it (retrying while a reader
/// still holds its pipe), takes its vmalloc probes away, then unmounts
/// tracefs if this run mounted it.
pub(super) fn remove(
    dir: &Path,
    probes: Option<&vmalloc::Probes>,
    mounted: Option<&Path>,
) -> Result<()> {
    let _ = write(&dir.join("tracing_on"), "0");
    let _ = write(&dir.join("events").join("enable"), "0");
    // The removal waits for a grace period per trigger and per filter (ten
    // or so): expedited, they take a tenth of the time (0.03 s against
    // 0.15 s on one TCG vCPU). The setting is put back after.
    let _expedited = Changed::to(RCU_EXPEDITED, "1");
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) if Instant::now() < until && e.raw_os_error() == Some(nix::libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "removing the tracefs instance {}: rmdir it by hand",
                        dir.display()
                    )
                })
            }
        }
    }
    if let Some(p) = probes {
        p.remove();
    }
    if let Some(m) = mounted {
        tracefs::unmount(m)?;
    }
    Ok(())
}
