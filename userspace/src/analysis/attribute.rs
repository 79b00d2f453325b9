// SPDX-License-Identifier: GPL-2.0
//! Which module, sample pattern and variant a report belongs to, and its
//! culprit frame: read from its symbolized backtrace.

use serde::{Deserialize, Serialize};

use super::symbolize::{Resolved, Symbolizer};
use crate::{
    kmemleak::report::{Frame, Report},
    ko::Variant,
};

/// Where a report came from, by its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The sample pattern, when a frame is in `samples::<pattern>`.
    pub pattern: Option<String>,
    /// The variant, from the `_leaky`/`_fixed` function on the stack.
    pub variant: Option<Variant>,
    /// The module the first non-allocator frame is in (`None`: the kernel).
    pub module: Option<String>,
    /// The culprit: the first frame outside the allocator wrappers
    /// ([`SKIP`]), in a module where the stack has one, as
    /// `function+0xoffset` with the function's [`base_name`] (the frames
    /// themselves keep the compiler's suffixes).
    pub culprit: Option<String>,
    /// The culprit's source line (`samples/error_path.rs:31`), from the
    /// module's DWARF.
    pub culprit_line: Option<String>,
    /// `memory leak in <function>`: the culprit's function without its
    /// offset or compiler suffix (`.isra.0`), for deduplication across runs
    /// and kernels; `None` when the culprit has no name (a bare address).
    #[serde(default)]
    pub title: Option<String>,
}

/// How a [`SKIP`] entry names the functions it takes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// This function only.
    Exact(&'static str),
    /// Every function whose name begins so.
    Prefix(&'static str),
}

/// One entry of the skip list: frames of a function that allocates on its
/// caller's behalf, so that a leak of what it returns is the caller's.
#[derive(Debug, Clone, Copy)]
pub struct Skip {
    /// The function (or family of functions), as its name reads without
    /// compiler suffixes (`.isra.0`, `.constprop.0`) and without the
    /// `_noprof` of kernels since 6.10.
    pub name: Name,
    /// Whether the frames it called go too (those before it in the
    /// backtrace): set for constructors that call hooks of other code
    /// (an LSM's blob, a file system's inode), whose allocations belong to
    /// the object the constructor makes.
    pub callees: bool,
    /// Why it is not the culprit (for the reader of the table, and checked
    /// by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub why: &'static str,
}

const fn exact(name: &'static str, why: &'static str) -> Skip {
    Skip {
        name: Name::Exact(name),
        callees: false,
        why,
    }
}

const fn prefix(name: &'static str, why: &'static str) -> Skip {
    Skip {
        name: Name::Prefix(name),
        callees: false,
        why,
    }
}

impl Skip {
    /// The same entry, taking out the frames the function called as well.
    const fn with_callees(self) -> Self {
        Self {
            callees: true,
            ..self
        }
    }

    /// Whether the entry names `function` (a name as [`base_name`] gives it,
    /// `_noprof` removed).
    fn names(&self, function: &str) -> bool {
        match self.name {
            Name::Exact(n) => function == n,
            Name::Prefix(p) => function.starts_with(p),
        }
    }
}

/// Frames that are never the culprit: allocator entry points and their
/// internals, and helpers that allocate for their caller. The culprit is the
/// first frame after them, as a kernel reviewer names a leak ("memory leak
/// in do_ipv6_setsockopt", not in `sock_kmalloc`). Entries match a whole
/// function name or a prefix that only that family of functions has, never
/// a substring: `alloc_extent_map` or `ftgmac100_alloc_rx_buf` stay
/// culprits.
///
/// The list follows syzkaller's titling of kmemleak reports
/// (`pkg/report/linux.go` in google/syzkaller: the `skip` list of its
/// "BUG: memory leak" format, `kmemleak`, `kmem`, `slab`, `create_object`,
/// `idr_get`, `list_lru_init`, `kasprintf`, `kvasprintf`, `pcpu_create`,
/// `strdup`, `strndup`, `memdup`, and the allocator patterns of
/// `linuxStackParams.skipPatterns`, `k?v?(?:m|z|c)alloc`, `krealloc`,
/// `kmem_cache`, `allocate_slab`, `slab_`, `kobject_`, `alloc_page`,
/// `__alloc_frozen_pages`, `folio_alloc`, `filemap_alloc_folio` and the
/// page cache's lookups that allocate), kept to what can stand in a
/// kmemleak or allocation-trace backtrace, and spelled out as names where
/// syzkaller matches substrings. Two of its patterns are left out: a bare
/// `alloc` would skip `htab_map_alloc` or `atusb_alloc_urbs`, and `mmap`
/// would skip `mmap_region`, callers that own what they leak. Beyond it:
/// the networking, file-system and other subsystems' constructors below,
/// each allocating on its caller's behalf, and the Rust allocators.
#[rustfmt::skip]
pub const SKIP: &[Skip] = &[
    // kmemleak's own frames.
    prefix("kmemleak_alloc", "kmemleak's hooks (kmemleak_alloc, _recursive, _percpu, _phys): where kmemleak records the object"),
    exact("kmemleak_vmalloc", "kmemleak's hook for vmalloc areas"),
    exact("create_object", "kmemleak's bookkeeping: the first frame of traces on older kernels"),
    exact("__create_object", "kmemleak's bookkeeping"),
    // The slab allocator: entry points and internals.
    prefix("kmalloc", "kmalloc and its variants (kmalloc_trace, _node_trace, _large, _array, _order, skbuff's kmalloc_reserve)"),
    prefix("__kmalloc", "kmalloc's bodies (__kmalloc, _node, _track_caller, _cache, _large_node)"),
    exact("__do_kmalloc_node", "kmalloc's common body in mm/slab_common.c"),
    prefix("kmem_cache_alloc", "slab cache allocation and its _trace, _node, _lru and _bulk variants"),
    prefix("__kmem_cache_alloc", "slab internals (__kmem_cache_alloc_node, _lru, _bulk)"),
    exact("kmem_cache_zalloc", "kmem_cache_alloc with __GFP_ZERO"),
    exact("leaklab_kmem_cache_alloc", "leaklab.ko's kmem_cache_alloc for its Rust samples (module/alloc.c: C's macro, hooked for allocation profiling)"),
    prefix("slab_alloc", "SLUB/SLAB internals (slab_alloc, slab_alloc_node)"),
    prefix("__slab_alloc", "SLUB's slow path"),
    exact("___slab_alloc", "SLUB's slow path"),
    exact("slab_post_alloc_hook", "SLUB's hook that calls kmemleak"),
    exact("allocate_slab", "SLUB: a new slab for the cache"),
    exact("new_slab", "SLUB: a new slab for the cache"),
    prefix("kzalloc", "kmalloc with __GFP_ZERO (kzalloc, kzalloc_node)"),
    prefix("kcalloc", "kmalloc of an array, zeroed"),
    prefix("krealloc", "resizes the caller's buffer (krealloc, krealloc_array)"),
    exact("__do_krealloc", "krealloc's body"),
    prefix("kvmalloc", "kmalloc or vmalloc (kvmalloc, kvmalloc_node, kvmalloc_array)"),
    prefix("__kvmalloc", "kvmalloc's body"),
    prefix("kvzalloc", "kvmalloc, zeroed"),
    prefix("kvcalloc", "kvmalloc of an array, zeroed"),
    prefix("kvrealloc", "resizes the caller's kvmalloc buffer"),
    prefix("kmemdup", "copies a buffer for the caller (kmemdup, kmemdup_nul, kmemdup_array)"),
    prefix("kvmemdup", "copies a buffer for the caller, with kvmalloc (kvmemdup, kvmemdup_bpfptr)"),
    prefix("memdup_", "copies user memory for the caller (memdup_user, _user_nul, _array_user, memdup_sockptr, _sockptr_nul)"),
    prefix("vmemdup_", "copies user memory for the caller, with kvmalloc (vmemdup_user, vmemdup_array_user)"),
    prefix("kmem_alloc", "XFS's kmalloc wrappers before 6.5 (kmem_alloc, kmem_alloc_large)"),
    exact("kmem_zalloc", "XFS's kzalloc wrapper before 6.5"),
    prefix("devm_k", "device-managed kmalloc, kzalloc, kstrdup, kasprintf, kmemdup: freed with the device"),
    // Strings and names.
    prefix("kstrdup", "copies a string for the caller (kstrdup, kstrdup_const)"),
    exact("kstrndup", "copies a string for the caller"),
    exact("strndup_user", "copies a user string for the caller"),
    prefix("kvasprintf", "formats a string for the caller (kvasprintf, kvasprintf_const)"),
    exact("kasprintf", "formats a string for the caller"),
    prefix("kobject_", "the kobject core (kobject_set_name_vargs, kobject_add, kobject_init_and_add, kobject_create_and_add): a leaked kobject, its name or its sysfs directory is its owner's"),
    exact("kset_create_and_add", "allocates a kset for its caller"),
    exact("dev_set_name", "names a device's kobject for the driver"),
    // vmalloc.
    prefix("vmalloc", "vmalloc and its variants (vmalloc_node, vmalloc_user, vmalloc_huge)"),
    prefix("vzalloc", "vmalloc, zeroed"),
    exact("vcalloc", "vmalloc of an array, zeroed"),
    prefix("__vmalloc", "vmalloc internals (__vmalloc, __vmalloc_node, __vmalloc_node_range, __vmalloc_area_node)"),
    // percpu.
    prefix("__alloc_percpu", "the percpu allocator's entry points (__alloc_percpu, __alloc_percpu_gfp)"),
    exact("pcpu_alloc", "the percpu allocator"),
    exact("pcpu_mem_zalloc", "percpu internals: a chunk's metadata"),
    exact("pcpu_create_chunk", "percpu internals: a new chunk"),
    exact("pcpu_alloc_chunk", "percpu internals: a new chunk"),
    // The page allocator (kmemleak does not track pages; allocation traces
    // do) and the page cache's lookups that allocate a folio for the caller.
    prefix("alloc_page", "the page allocator's entry points (alloc_pages, _node, _mpol, _exact, _bulk; alloc_page_vma, _interleave)"),
    prefix("__alloc_pages", "the page allocator's body (__alloc_pages, _node, _slowpath, _bulk)"),
    prefix("alloc_frozen_pages", "the page allocator's entry point for frozen pages (6.14)"),
    prefix("__alloc_frozen_pages", "the page allocator's body since 6.14"),
    exact("__get_free_pages", "pages for the caller, by address"),
    exact("leaklab_get_free_pages", "leaklab.ko's __get_free_pages for its Rust samples (module/alloc.c: C's macro, hooked for allocation profiling)"),
    exact("get_zeroed_page", "a zeroed page for the caller"),
    prefix("folio_alloc", "a folio for the caller (folio_alloc, _mpol)"),
    prefix("__folio_alloc", "a folio for the caller (__folio_alloc, _node)"),
    exact("vma_alloc_folio", "a folio for an anonymous fault (alloc_page_vma's successor)"),
    exact("filemap_alloc_folio", "a page cache folio for the file system"),
    exact("__filemap_get_folio", "finds or adds a page cache folio for the caller"),
    exact("pagecache_get_page", "finds or adds a page cache page for the caller"),
    exact("find_or_create_page", "finds or adds a page cache page for the caller"),
    exact("grab_cache_page_write_begin", "finds or adds a page cache page for a write"),
    prefix("read_cache_page", "reads a page cache page for the caller (read_cache_page, _gfp)"),
    prefix("read_cache_folio", "reads a page cache folio for the caller"),
    exact("do_read_cache_folio", "read_cache_folio's body"),
    exact("do_read_cache_page", "read_cache_page's body"),
    // Early boot and pools.
    prefix("memblock_alloc", "the boot-time allocator"),
    prefix("memblock_phys_alloc", "the boot-time allocator"),
    prefix("mempool_alloc", "takes an element from a mempool (or allocates one) for the caller"),
    exact("mempool_kmalloc", "a mempool's kmalloc callback"),
    prefix("mempool_create", "allocates a mempool for its caller"),
    prefix("mempool_init", "fills a mempool for its caller"),
    prefix("kmem_cache_create", "allocates a slab cache for its caller"),
    prefix("__kmem_cache_create", "allocates a slab cache for its caller"),
    // IDR, radix tree and XArray nodes.
    exact("radix_tree_node_alloc", "radix tree (IDR) node for the caller's entry"),
    prefix("idr_get_free", "IDR internals"),
    prefix("idr_alloc", "allocates an ID (and tree nodes) for the caller (idr_alloc, _u32, _cyclic)"),
    prefix("ida_alloc", "allocates an ID for the caller"),
    exact("ida_simple_get", "allocates an ID for the caller"),
    exact("idr_pre_get", "preallocates IDR nodes for the caller (kernels before 3.9)"),
    prefix("xas_", "XArray internals (xas_alloc, xas_create, xas_expand, xas_store, xas_nomem)"),
    exact("__xa_alloc", "allocates an XArray entry for the caller"),
    exact("__xa_alloc_cyclic", "allocates an XArray entry for the caller"),
    exact("__xa_store", "stores in an XArray for the caller"),
    exact("xa_store", "stores in an XArray for the caller"),
    exact("__xa_insert", "stores in an XArray for the caller"),
    exact("xa_store_range", "stores in an XArray for the caller"),
    // list_lru and rhashtable.
    prefix("__list_lru_init", "initializes the caller's list_lru"),
    prefix("list_lru_init", "initializes the caller's list_lru"),
    prefix("memcg_init_list_lru", "list_lru's per-memcg lists"),
    exact("memcg_list_lru_alloc", "list_lru's per-memcg lists"),
    exact("bucket_table_alloc", "rhashtable internals: a bucket table"),
    exact("nested_table_alloc", "rhashtable internals: a nested table"),
    prefix("rhashtable_init", "initializes the caller's rhashtable"),
    prefix("rhltable_init", "initializes the caller's rhltable"),
    exact("rhashtable_rehash_alloc", "rhashtable internals: a resized table"),
    exact("rhashtable_insert_slow", "rhashtable internals: an insert that grows the table"),
    exact("rhashtable_try_insert", "rhashtable internals: an insert that grows the table"),
    // Networking.
    exact("sock_kmalloc", "socket-accounted kmalloc for the protocol"),
    exact("sock_kmemdup", "socket-accounted kmemdup for the protocol"),
    exact("sk_prot_alloc", "a new sock, with its LSM blob: the protocol's create function owns it").with_callees(),
    exact("sk_alloc", "a new sock for the protocol's create function"),
    exact("__alloc_skb", "a new sk_buff for the caller"),
    prefix("alloc_skb", "a new sk_buff for the caller (alloc_skb, _with_frags, _fclone)"),
    exact("__netdev_alloc_skb", "a new sk_buff for the driver"),
    exact("netdev_alloc_skb", "a new sk_buff for the driver"),
    exact("__napi_alloc_skb", "a new sk_buff for the driver"),
    exact("napi_alloc_skb", "a new sk_buff for the driver"),
    exact("dev_alloc_skb", "a new sk_buff for the driver"),
    exact("napi_skb_cache_get", "skbuff's per-CPU cache of sk_buffs"),
    prefix("__build_skb", "an sk_buff around the driver's buffer"),
    prefix("build_skb", "an sk_buff around the driver's buffer"),
    prefix("__napi_build_skb", "an sk_buff around the driver's buffer"),
    prefix("napi_build_skb", "an sk_buff around the driver's buffer"),
    exact("skb_clone", "a clone for the caller"),
    exact("skb_copy", "a copy for the caller"),
    exact("skb_copy_expand", "a copy for the caller"),
    exact("__pskb_copy_fclone", "a copy for the caller"),
    exact("pskb_expand_head", "a new head for the caller's sk_buff"),
    prefix("sock_alloc_send_", "an sk_buff for the protocol's sendmsg"),
    exact("sock_wmalloc", "a send buffer for the protocol"),
    exact("sock_rmalloc", "a receive buffer for the protocol"),
    exact("sock_omalloc", "a buffer for the protocol"),
    exact("netlink_alloc_large_skb", "the sk_buff of a netlink message for its sender"),
    // File systems, memory maps and credentials.
    exact("alloc_inode", "a new inode from the file system's ->alloc_inode and its LSM blob: its caller's").with_callees(),
    exact("__alloc_file", "a new struct file and its LSM blob, for the caller").with_callees(),
    prefix("alloc_empty_file", "a new struct file and its LSM blob, for the caller").with_callees(),
    prefix("alloc_file", "a new struct file for the caller (alloc_file, _pseudo, _clone)"),
    exact("__d_alloc", "a new dentry for the caller"),
    prefix("d_alloc", "a new dentry for the caller (d_alloc, _parallel, _name, _pseudo)"),
    prefix("getname", "a path name copied for the caller (getname, getname_flags, getname_kernel)"),
    exact("vm_area_alloc", "a new VMA for the caller"),
    exact("vm_area_dup", "a copy of a VMA for the caller"),
    exact("prepare_creds", "new credentials that the caller commits or drops"),
    exact("prepare_kernel_cred", "new credentials for the caller"),
    // LSM hooks: the blob belongs to the object the caller makes.
    exact("security_sk_alloc", "LSM blob of a new sock").with_callees(),
    exact("security_inode_alloc", "LSM blob of a new inode").with_callees(),
    exact("security_file_alloc", "LSM blob of a new file").with_callees(),
    exact("security_cred_alloc_blank", "LSM blob of new credentials").with_callees(),
    exact("security_prepare_creds", "LSM blob of new credentials").with_callees(),
    exact("security_task_alloc", "LSM blob of a new task").with_callees(),
    exact("security_sb_alloc", "LSM blob of a new superblock").with_callees(),
    exact("security_msg_msg_alloc", "LSM blob of a new IPC message").with_callees(),
    exact("security_msg_queue_alloc", "LSM blob of a new IPC queue").with_callees(),
    exact("security_shm_alloc", "LSM blob of a new shared memory segment").with_callees(),
    exact("security_sem_alloc", "LSM blob of a new semaphore set").with_callees(),
    exact("security_xfrm_policy_alloc", "LSM blob of a new xfrm policy").with_callees(),
    exact("security_key_alloc", "LSM blob of a new key").with_callees(),
    // Other subsystems' allocators.
    exact("usb_alloc_urb", "a new URB for the USB driver"),
    exact("cdev_alloc", "a new cdev for the driver"),
    prefix("alloc_workqueue", "a new workqueue for the caller"),
    prefix("__alloc_workqueue", "a new workqueue for the caller"),
    prefix("sgl_alloc", "a scatterlist for the caller"),
    prefix("sg_alloc_table", "a scatterlist table for the caller"),
    exact("__sg_alloc_table", "a scatterlist table for the caller"),
    exact("sg_kmalloc", "a scatterlist table for the caller"),
    // Rust: the kernel crate's allocation and initialization machinery.
    prefix("<kernel::alloc::", "Rust allocators (Box, Vec, KVec and their Allocator impls)"),
    prefix("kernel::alloc::", "Rust allocators"),
    prefix("<kernel::sync::arc::", "Rust Arc: allocates for its owner"),
    prefix("<kernel::init::", "Rust pin-init machinery"),
    prefix("kernel::init::", "Rust pin-init machinery"),
    prefix("<pin_init::", "Rust pin-init machinery (its own crate since 6.15)"),
    prefix("pin_init::", "Rust pin-init machinery (its own crate since 6.15)"),
    prefix("<alloc::", "Rust's alloc crate (Box, Vec)"),
    prefix("alloc::", "Rust's alloc crate"),
    exact("<kernel::str::CString>::try_from_fmt", "formats a string for the caller (Rust's kasprintf)"),
];

/// A function's name without what the compiler appends to the copies it
/// makes of it: `.isra.0`, `.constprop.0`, `.part.0`, `.cold`,
/// `.llvm.<hash>`, `.__uniq.<hash>` and their combinations
/// (`.constprop.0.isra.0`). Two builds number a clone differently; a
/// reviewer names the function.
///
/// As syzkaller reads a frame's function (`{{FUNC}}` in
/// `pkg/report/report.go` of google/syzkaller: `[a-zA-Z0-9_]+` up to a `.`
/// or the `+`), a C name ends at its first dot. A demangled Rust name keeps
/// such a suffix after its path (`<Box<T>>::new.cold`): the name ends at the
/// first dot of the `[A-Za-z0-9_.]` run that closes it. A name that starts
/// with a dot (a section without symbols, `.init.text`) stays whole.
pub fn base_name(function: &str) -> &str {
    let suffix_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.';
    let last_part = function
        .bytes()
        .rposition(|b| !suffix_byte(b))
        .map_or(0, |i| i + 1);
    match function[last_part..].find('.') {
        Some(dot) if last_part + dot > 0 => &function[..last_part + dot],
        _ => function,
    }
}

/// The skip-list entry for `function`, if any.
pub fn skip_entry(function: &str) -> Option<&'static Skip> {
    let name = base_name(function);
    let name = name.strip_suffix("_noprof").unwrap_or(name);
    SKIP.iter().find(|s| s.names(name))
}

/// The title of a leak whose culprit is in `function`:
/// `memory leak in <function>`, as syzkaller titles a kmemleak report.
/// `None` for a section without symbols (`.init.text`).
pub fn title(function: &str) -> Option<String> {
    let name = base_name(function);
    (!name.is_empty() && !name.starts_with('.')).then(|| format!("memory leak in {name}"))
}

/// Whether the frame only ends the backtrace: old kernels close it with
/// `ULONG_MAX` (`0xffffffffffffffff`, `0xffffffff` on 32 bits).
fn end_marker(f: &Frame) -> bool {
    f.symbol.is_none() && matches!(f.address, Some(a) if a == u64::MAX || a == u64::from(u32::MAX))
}

/// Ties a report to a module, a sample pattern and a variant.
pub fn attribute(r: &Report, sym: &Symbolizer) -> Attribution {
    let frames: Vec<Option<Resolved>> =
        r.frames.iter().map(|f| sym.frame_named(f, r.pid)).collect();
    let mut a = Attribution {
        pattern: None,
        variant: None,
        module: None,
        culprit: None,
        culprit_line: None,
        title: None,
    };
    let entry = |res: &Option<Resolved>| res.as_ref().and_then(|r| skip_entry(&r.function));
    // Frames up to the outermost constructor that owns its callees belong
    // to the object it makes.
    let start = frames
        .iter()
        .rposition(|res| entry(res).is_some_and(|s| s.callees))
        .map_or(0, |i| i + 1);
    // The culprit: the first frame outside the skip list that lies in a
    // module (the driver's own code, not the driver core it called); for a
    // leak with no module frame, the first frame outside the skip list.
    let outside: Vec<(&Option<Resolved>, &Frame)> = frames
        .iter()
        .zip(&r.frames)
        .skip(start)
        .filter(|(res, raw)| entry(res).is_none() && !end_marker(raw))
        .collect();
    let culprit = outside
        .iter()
        .find(|(res, _)| res.as_ref().is_some_and(|r| r.module.is_some()))
        .or_else(|| outside.first());
    if let Some((res, raw)) = culprit {
        a.culprit = Some(match res {
            Some(res) => format!(
                "{}+{:#x}",
                base_name(&res.function),
                res.offset.unwrap_or(0)
            ),
            None => raw.raw.clone(),
        });
        a.culprit_line = res.as_ref().and_then(|_| sym.frame(raw, r.pid)?.location);
        a.title = res.as_ref().and_then(|r| title(&r.function));
    }
    // Generic allocator frames (`<Box<T>>::new`) may carry another sample's
    // type: identical instantiations are merged. Only the caller's frames count.
    for res in outside.iter().filter_map(|(res, _)| res.as_ref()) {
        if a.module.is_none() && res.module.is_some() {
            a.module = res.module.clone();
        }
        if let Some(rest) = base_name(&res.function).split("::samples::").nth(1) {
            if a.pattern.is_none() {
                a.pattern = rest.split("::").next().map(str::to_string);
            }
            let fname = rest.rsplit("::").next().unwrap_or("");
            if a.variant.is_none() {
                a.variant = if fname.ends_with("_leaky") {
                    Some(Variant::Leaky)
                } else if fname.ends_with("_fixed") {
                    Some(Variant::Fixed)
                } else {
                    None
                };
            }
        }
    }
    a
}

/// One report's backtrace, raw and symbolized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    /// Object size.
    pub size: u64,
    /// The frames as kmemleak printed them (bare addresses after unload).
    pub raw: Vec<String>,
    /// The same frames as `function+offset [module]`.
    pub symbolized: Vec<String>,
}

impl Example {
    /// Whether this example comes before `other` when a row keeps one of
    /// several: by its symbolized frames, then its size (the same choice
    /// whatever order kmemleak listed the reports in).
    pub fn comes_before(&self, other: &Self) -> bool {
        (&self.symbolized, self.size) < (&other.symbolized, other.size)
    }

    /// `r` with its frames symbolized.
    pub fn of(r: &Report, sym: &Symbolizer) -> Self {
        Self {
            size: r.size,
            raw: r.frames.iter().map(|f| f.raw.clone()).collect(),
            symbolized: r
                .frames
                .iter()
                .map(|f| {
                    sym.frame(f, r.pid)
                        .map_or_else(|| f.raw.clone(), |x| x.display())
                })
                .collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
