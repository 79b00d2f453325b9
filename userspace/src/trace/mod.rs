// SPDX-License-Identifier: GPL-2.0
//! The allocation-trace detector: a second leak detector beside kmemleak
//! that needs only tracefs (on distribution and board kernels alike).
//!
//! The `kmem` and `percpu` allocation events are traced with their stacks
//! (the `stacktrace` trigger), the free events without, and read as binary
//! records from each CPU's `trace_pipe_raw`; a [`Ledger`] keeps
//! what is allocated and not freed. An allocation is a module's when its
//! stack passes through the module's text ([`Ledger::outstanding`] with the
//! caller's test), so Rust allocations, whose `call_site` is the kernel
//! crate's helper, are found too. Allocations the allocator makes for
//! itself on the module's behalf (a new slab's pages, kmemleak's own
//! metadata, a vmalloc area's bookkeeping) are told apart by their frames
//! ([`internal`]); vmalloc areas are traced through kprobe events, or
//! seen in `/proc/vmallocinfo` where the kernel has none ([`vmalloc`]). It needs no age window: what is outstanding once the
//! module is gone and deferred frees have settled is leaked.
//!
//! [`Ledger`]: ledger::Ledger
//! [`Ledger::outstanding`]: ledger::Ledger::outstanding

pub mod allocinfo;
pub mod event;
mod instance;
pub mod kallsyms;
pub mod ledger;
pub mod names;
pub mod page;
mod reader;
pub mod stacks;
pub mod tracer;
pub mod vmalloc;

pub use event::Space;

/// What the trace detector cannot see or may get wrong, said with every
/// verdict that rests on it.
pub const BLIND_SPOTS: &str = "allocation tracing sees kmalloc, kmem_cache, page, per-CPU and vmalloc allocations whose stack passes through the module (vmalloc through kprobe events; a kernel without them shows only areas whose caller is the module, read from /proc/vmallocinfo); memory the module gets from another subsystem (an skb, a DMA pool) is that subsystem's, and events the ring buffer loses make the run inconclusive";

/// Allocator-internal functions: an allocation whose stack reaches one of
/// them before the module's first frame was made by that allocator for its
/// own use, and is counted by that allocator's own event or view.
const INTERNAL: &[(&str, &str, &[Space])] = &[
    (
        "kmemleak_",
        "kmemleak's own metadata",
        &[Space::Slab, Space::Page],
    ),
    ("__create_object", "kmemleak's own metadata", &[Space::Slab]),
    ("__alloc_object", "kmemleak's own metadata", &[Space::Slab]),
    ("mem_pool_alloc", "kmemleak's own metadata", &[Space::Slab]),
    ("allocate_slab", "a new slab's pages", &[Space::Page]),
    ("new_slab", "a new slab's pages", &[Space::Page]),
    ("___slab_alloc", "a new slab's pages", &[Space::Page]),
    (
        "__kmalloc_large",
        "a large kmalloc (its kmalloc event counts)",
        &[Space::Page],
    ),
    (
        "___kmalloc_large",
        "a large kmalloc (its kmalloc event counts)",
        &[Space::Page],
    ),
    ("pcpu_", "a per-CPU chunk", &[Space::Page, Space::Slab]),
    (
        "__vmalloc",
        "a vmalloc area (seen in /proc/vmallocinfo)",
        &[Space::Page, Space::Slab],
    ),
    (
        "vmalloc",
        "a vmalloc area (seen in /proc/vmallocinfo)",
        &[Space::Page, Space::Slab],
    ),
    (
        "vzalloc",
        "a vmalloc area (seen in /proc/vmallocinfo)",
        &[Space::Page, Space::Slab],
    ),
    (
        "__get_vm_area",
        "a vmalloc area (seen in /proc/vmallocinfo)",
        &[Space::Page, Space::Slab],
    ),
    (
        "alloc_vmap_area",
        "a vmalloc area (seen in /proc/vmallocinfo)",
        &[Space::Page, Space::Slab],
    ),
    (
        "stack_depot",
        "the stack depot",
        &[Space::Slab, Space::Page],
    ),
    (
        "__kmem_cache_create",
        "a slab cache's own structures (on the kernel's cache list)",
        &[Space::Slab, Space::Page, Space::Percpu],
    ),
    (
        "do_kmem_cache_create",
        "a slab cache's own structures (on the kernel's cache list)",
        &[Space::Slab, Space::Page, Space::Percpu],
    ),
    // 6.1's names: the cache's structure and its name's copy.
    (
        "create_cache",
        "a slab cache's own structures (on the kernel's cache list)",
        &[Space::Slab, Space::Page, Space::Percpu],
    ),
    (
        "kmem_cache_create_usercopy",
        "a slab cache's own structures (on the kernel's cache list)",
        &[Space::Slab, Space::Page, Space::Percpu],
    ),
    (
        "fill_pool",
        "debugobjects' pool",
        &[Space::Slab, Space::Page],
    ),
    (
        // Debian 6.12's loop read as leaking 10 nodes (5840 bytes) in its
        // first load only: the pool stays filled for the next inserts.
        "__radix_tree_preload",
        "radix tree nodes kept in a per-CPU pool for later inserts (radix_tree_preload, idr_preload)",
        &[Space::Slab],
    ),
    (
        "alloc_slab_obj_exts",
        "a slab's allocation-profiling tags (freed with the slab)",
        &[Space::Slab, Space::Page],
    ),
];

/// The allocator that made an allocation of `space` for its own use, in
/// words, if one did: its function is among `kernel_frames`, the names of
/// the kernel image's frames before the first module frame, innermost
/// first.
pub fn internal<'a>(
    space: Space,
    kernel_frames: impl IntoIterator<Item = &'a str>,
) -> Option<&'static str> {
    kernel_frames.into_iter().find_map(|s| {
        INTERNAL
            .iter()
            .find(|(prefix, _, spaces)| s.starts_with(prefix) && spaces.contains(&space))
            .map(|(_, what, _)| *what)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmemleak::report::parse_frame;

    /// The kernel image's names of `lines` up to the first module frame
    /// (tagged with a module, or a bare address).
    fn frames(lines: &[&str]) -> Vec<String> {
        lines
            .iter()
            .map(|l| parse_frame(l))
            .take_while(|f| f.module.is_none() && f.symbol.is_some())
            .filter_map(|f| f.symbol)
            .collect()
    }

    fn internal(space: Space, names: &[String]) -> Option<&'static str> {
        super::internal(space, names.iter().map(String::as_str))
    }

    #[test]
    fn a_new_slab_s_pages_are_the_allocator_s_and_the_module_s_own_pages_are_not() {
        let slab = frames(&[
            "__alloc_pages_noprof+0x1/0x2",
            "allocate_slab+0x1/0x2",
            "___slab_alloc+0x1/0x2",
            "__kmalloc_noprof+0x1/0x2",
            "probe_leaky+0x1/0x2 [leaklab]",
        ]);
        assert_eq!(internal(Space::Page, &slab), Some("a new slab's pages"));
        let own = frames(&[
            "__alloc_pages_noprof+0x1/0x2",
            "rust_helper_alloc_pages+0x1/0x2",
            "page_leak::ring_leaky+0x1/0x2 [leaklab]",
            "allocate_slab+0x1/0x2",
        ]);
        assert_eq!(
            internal(Space::Page, &own),
            None,
            "only frames before the module's count"
        );
    }

    #[test]
    fn a_radix_tree_preload_fills_the_pool_not_the_module() {
        let preload = frames(&[
            "kmem_cache_alloc_noprof+0x22f/0x2d0",
            "__radix_tree_preload+0x69/0x100",
            "blkcg_init_disk+0xce/0x140",
            "__alloc_disk_node+0xfc/0x1c0",
            "loop_add+0x1ea/0x400 [loop]",
        ]);
        assert!(internal(Space::Slab, &preload).is_some());
        let own = frames(&[
            "kmem_cache_alloc_noprof+0x22f/0x2d0",
            "loop_add+0x1ea/0x400 [loop]",
        ]);
        assert_eq!(internal(Space::Slab, &own), None);
    }

    #[test]
    fn a_large_kmalloc_counts_once_and_a_per_cpu_allocation_is_its_own() {
        let large = frames(&["__kmalloc_large_noprof+0x1/0x2", "0xffffffffa0001000"]);
        assert!(internal(Space::Page, &large).is_some());
        assert_eq!(internal(Space::Slab, &large), None);
        let percpu = frames(&["pcpu_alloc_noprof+0x1/0x2", "init+0x1/0x2 [kmemleak_test]"]);
        assert_eq!(internal(Space::Percpu, &percpu), None);
        let meta = frames(&[
            "__create_object+0x1/0x2",
            "kmemleak_alloc+0x1/0x2",
            "f+0x1/0x2 [m]",
        ]);
        assert_eq!(
            internal(Space::Slab, &meta),
            Some("kmemleak's own metadata")
        );
    }

    /// With allocation profiling on, a slab's first tagged object makes
    /// the slab's vector of tags (seen on 6.12, x86_64).
    /// 6.1 makes a cache's structure in `create_cache()` and copies its
    /// name in `kmem_cache_create_usercopy()` (seen on Debian's 6.1).
    #[test]
    fn a_cache_s_own_structures_are_the_allocator_s_on_6_1_too() {
        for inner in ["create_cache+0x5c/0x1c0", "kstrdup_const+0x20/0x30"] {
            let made = frames(&[
                "kmem_cache_alloc+0x1f2/0x330",
                inner,
                "kmem_cache_create_usercopy+0xf0/0x2f0",
                "kmem_cache_create+0x12/0x20",
                "leaky_init+0x7e/0x2a0 [leaky_driver]",
            ]);
            assert_eq!(
                internal(Space::Slab, &made),
                Some("a slab cache's own structures (on the kernel's cache list)"),
                "{inner}"
            );
        }
    }

    #[test]
    fn a_slab_s_profiling_tags_are_the_allocator_s() {
        let tags = frames(&[
            "__kmalloc_node_noprof+0x17e/0x2f0",
            "alloc_slab_obj_exts+0x5f/0xe0",
            "alloc_tagging_slab_alloc_hook+0x61/0x120",
            "kmem_cache_alloc_noprof+0x104/0x2a0",
            "slab_cache_leaky+0x2c/0x60 [leaky_driver]",
        ]);
        assert_eq!(
            internal(Space::Slab, &tags),
            Some("a slab's allocation-profiling tags (freed with the slab)")
        );
    }
}
