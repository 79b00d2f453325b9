// SPDX-License-Identifier: GPL-2.0
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

/// The condition of every `stacktrace` trigger: not the reader's own
/// events, unless in interrupt context (hard, soft: RCU callbacks; NMI),
/// where an event carries whichever task was running, the reader too. The
/// events themselves are not filtered by it (a filtered event is written
/// twice, to a scratch buffer and then to the ring, which cost the lab's
/// loop a tenth more): the reader drops its own ([`super::reader`]), which
/// come without stacks. A condition also makes the trigger run after its
/// event is written, so that the stack follows it.
pub(super) fn reader_filter(reader: i32) -> String {
    format!("common_pid != {reader} || common_flags & {IN_INTERRUPT:#x}")
}

/// The event whose filter [`super::tracer::Tracer`]'s RCU barrier writes
/// again: one the trace never enables, so that its filter costs no traced
/// event anything.
pub(super) const BARRIER_EVENT: &str = "kmem/mm_page_pcpu_drain";

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

/// Enables the events, the allocations with a stack unless `not_reader`
/// says they are the reader's own; where kmemleak runs, without its own
/// metadata ([`KMEMLEAK_OWN`]). Sets [`BARRIER_EVENT`]'s filter to
/// `not_reader`, for the barrier to write again.
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
        let own = own
            .map(|(_, not)| *not)
            .find(|not| fs::write(event.join("filter"), not).is_ok());
        if Decoder::allocation_events().any(|a| a == e) {
            // With a condition of its own: the event's filter does not
            // hold for its trigger.
            let condition = match own {
                Some(not) => format!("({not_reader}) && {not}"),
                None => not_reader.to_string(),
            };
            write(
                &event.join("trigger"),
                &format!("stacktrace if {condition}"),
            )?;
        }
        write(&event.join("enable"), "1")?;
    }
    for (e, stack) in probes.into_iter().flat_map(vmalloc::Probes::events) {
        let event = d.join("events").join(e);
        if stack {
            write(
                &event.join("trigger"),
                &format!("stacktrace if {not_reader}"),
            )?;
        }
        write(&event.join("enable"), "1")?;
    }
    // A kernel without the event has no barrier ([`super::tracer::QUIET`]).
    let _ = fs::write(
        d.join("events").join(BARRIER_EVENT).join("filter"),
        not_reader,
    );
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
