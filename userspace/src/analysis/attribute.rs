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
pub(crate) mod tests {
    use super::*;
    use crate::kmemleak::report::parse;

    /// Real reports of several kernel versions (tests/data/kmemleak-reports/).
    const REPORTS: &[(&str, &str)] = &[
        (
            "linux-old.txt",
            include_str!("../../tests/data/kmemleak-reports/linux-old.txt"),
        ),
        (
            "linux-4.x.txt",
            include_str!("../../tests/data/kmemleak-reports/linux-4.x.txt"),
        ),
        (
            "linux-5.x.txt",
            include_str!("../../tests/data/kmemleak-reports/linux-5.x.txt"),
        ),
        (
            "linux-6.x.txt",
            include_str!("../../tests/data/kmemleak-reports/linux-6.x.txt"),
        ),
        (
            "linux-6.x-syzbot.txt",
            include_str!("../../tests/data/kmemleak-reports/linux-6.x-syzbot.txt"),
        ),
    ];

    /// The cases of a file: the title a `# expect: ` line gives, and the
    /// reports after it.
    fn cases(text: &str) -> Vec<(String, Vec<Report>)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(title) = line.strip_prefix("# expect: ") {
                out.push((title.to_string(), String::new()));
            } else if let Some((_, body)) = out.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        out.into_iter().map(|(t, body)| (t, parse(&body))).collect()
    }

    fn one(text: &str) -> Attribution {
        attribute(&parse(text)[0], &Symbolizer::default())
    }

    #[test]
    fn names_the_caller_of_the_allocator_in_real_reports() {
        let sym = Symbolizer::default();
        let (mut reports, mut wrong) = (0, Vec::new());
        for (file, text) in REPORTS {
            let cases = cases(text);
            assert!(!cases.is_empty(), "{file}: no cases");
            for (expect, found) in cases {
                assert!(!found.is_empty(), "{file}: no report for {expect:?}");
                for r in &found {
                    reports += 1;
                    assert!(!r.garbled, "{file}: {expect:?}: garbled: {r:#?}");
                    let a = attribute(r, &sym);
                    if a.title.as_deref() != Some(expect.as_str()) {
                        wrong.push(format!(
                            "{file}: want {expect:?}, got {:?} ({:?})",
                            a.title, a.culprit
                        ));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert!(reports >= 30, "{reports} reports");
    }

    #[test]
    fn the_culprit_keeps_its_offset_and_the_title_its_function() {
        let text = include_str!("../../tests/data/kmemleak-reports/linux-4.x.txt");
        let (_, ipv6) = &cases(text)[0];
        let a = attribute(&ipv6[0], &Symbolizer::default());
        assert_eq!(a.culprit.as_deref(), Some("do_ipv6_setsockopt+0x15d0"));
        assert_eq!(
            a.title.as_deref(),
            Some("memory leak in do_ipv6_setsockopt")
        );
        assert_eq!(a.module, None);
        // A module's frame wins over the kernel's, and names the module.
        let vc4 = cases(text)
            .into_iter()
            .find(|(t, _)| t.ends_with("__drm_mode_object_add"))
            .unwrap();
        let a = attribute(&vc4.1[0], &Symbolizer::default());
        assert_eq!(a.culprit.as_deref(), Some("__drm_mode_object_add+0x5c"));
        assert_eq!(a.module.as_deref(), Some("drm"));
    }

    /// A module's `status_show` formats a string with kasprintf and loses
    /// it, read while the module is loaded (its frames carry `[mydrv]`).
    pub(crate) const KASPRINTF: &str = "unreferenced object 0xffff888004b3c2a0 (size 16):
  comm \"cat\", pid 212, jiffies 4294893012
  backtrace (crc 5e8a2b1c):
    __kmalloc_node_track_caller_noprof+0x1f3/0x3e0
    kvasprintf+0x6a/0xd0
    kasprintf+0x4e/0x70
    status_show+0x1c/0x60 [mydrv]
    seq_read_iter+0x11f/0x460
    seq_read+0xfa/0x130
    full_proxy_read+0x55/0x80
    vfs_read+0xb0/0x370
";

    /// [`KASPRINTF`] read after the module was unloaded: its frame is bare.
    fn kasprintf_unloaded() -> String {
        KASPRINTF.replace("status_show+0x1c/0x60 [mydrv]", "0xffffffffa0000016")
    }

    #[test]
    fn kasprintf_for_a_module_is_the_modules_leak() {
        // kasprintf formats a string for its caller: the culprit is the
        // module's status_show, and the leak the module's.
        let a = one(KASPRINTF);
        assert_eq!(a.module.as_deref(), Some("mydrv"));
        assert!(
            a.culprit
                .as_deref()
                .is_some_and(|c| c.starts_with("status_show")),
            "{a:?}"
        );
        assert_eq!(a.title.as_deref(), Some("memory leak in status_show"));
        // Read after unload, not symbolized: the culprit is the module's
        // bare frame, not kasprintf (which would read as the kernel's).
        let a = one(&kasprintf_unloaded());
        assert_eq!(a.culprit.as_deref(), Some("0xffffffffa0000016"), "{a:?}");
        assert_eq!((a.module, a.title), (None, None));
        // With the module's recorded sections, the bare frame is mydrv's.
        let mut sym = Symbolizer::default();
        sym.add_layout(crate::kernel::module::ModuleLayout {
            name: "mydrv".into(),
            sections: vec![crate::kernel::module::Section {
                name: ".text".into(),
                address: 0xffffffffa0000000,
                size: 0x1000,
            }],
            loader: None,
        });
        let a = attribute(&parse(&kasprintf_unloaded())[0], &sym);
        assert_eq!(a.module.as_deref(), Some("mydrv"));
        assert_eq!(a.culprit.as_deref(), Some(".text+0x16"));
    }

    #[test]
    fn a_bare_address_is_a_culprit_without_a_title() {
        // A module unloaded before the report was read, not symbolized.
        let a = one("unreferenced object 0xffff888003a8e000 (size 32):\n  backtrace (crc 1):\n    kmemleak_alloc+0x4a/0x80\n    __kmalloc_cache_noprof+0x1a2/0x2a0\n    0xffffffffa000023a\n    do_one_initcall+0x41/0x1e0\n");
        assert_eq!(a.culprit.as_deref(), Some("0xffffffffa000023a"));
        assert_eq!(a.title, None);
    }

    #[test]
    fn nothing_but_allocator_frames_names_no_culprit() {
        // Old kernels end a trace with ULONG_MAX: not a frame of anyone's.
        let a = one("unreferenced object 0xc625e000 (size 2048):\n  backtrace:\n    [<c00c89f0>] create_object+0x11c/0x200\n    [<c00c6764>] __kmalloc_track_caller+0x138/0x178\n    [<ffffffff>] 0xffffffff\n");
        assert_eq!((a.culprit, a.title), (None, None));
        // A report with no frames at all (syzkaller's "corrupted").
        let a = one("unreferenced object 0xffff880039a55260 (size 64):\n backtrace:\n");
        assert_eq!((a.culprit, a.title), (None, None));
    }

    #[test]
    fn the_skip_list_matches_names_not_substrings() {
        for f in [
            "__kmalloc_cache_noprof",
            "kmemleak_alloc_recursive.constprop.0",
            "kmalloc_reserve",
            "sock_kmalloc",
            "sk_prot_alloc",
            "kobject_set_name_vargs",
            "__list_lru_init",
            "pcpu_mem_zalloc",
            "create_object",
            "bucket_table_alloc.isra.0",
            "<kernel::alloc::kbox::Box<leaklab::samples::Node>>::new",
            // syzkaller's memdup, strdup and k?v?(m|z|c)alloc families.
            "kvmemdup",
            "memdup_array_user",
            "vmemdup_array_user",
            "memdup_sockptr_noprof",
            "vcalloc_noprof",
            "__kvmalloc_node_noprof",
            "kvmalloc_node_noprof",
            "kstrdup_and_replace",
            "kmem_alloc",
            // The page allocator, in traced page allocations' stacks.
            "__alloc_pages_noprof",
            "alloc_pages_mpol_noprof",
            "__alloc_frozen_pages_noprof",
            "folio_alloc_noprof",
            "__folio_alloc_noprof",
            "vma_alloc_folio_noprof",
            "filemap_alloc_folio_noprof",
            "__filemap_get_folio",
            "__get_free_pages_noprof",
        ] {
            assert!(skip_entry(f).is_some(), "{f} is not skipped");
        }
        for f in [
            "kmemleak_test_init",
            "alloc_extent_map",
            "ftgmac100_alloc_rx_buf.constprop.0",
            "htab_map_alloc",
            "sget_userns",
            "debug_objects_mem_init",
            "leaklab::samples::error_path::probe_leaky",
            // Callers that own what they leak (syzkaller's bare `alloc` and
            // `mmap` would skip them).
            "do_ipv6_setsockopt.isra.7",
            "mmap_region",
            "unix_dgram_sendmsg",
            "proc_sys_call_handler",
        ] {
            assert!(skip_entry(f).is_none(), "{f} is skipped");
        }
    }

    #[test]
    fn every_entry_has_a_reason_and_none_hides_another() {
        for s in SKIP {
            let name = match s.name {
                Name::Exact(n) | Name::Prefix(n) => n,
            };
            assert!(!s.why.is_empty(), "{name}: no reason");
            assert!(!name.ends_with("_noprof"), "{name}: written with _noprof");
            let others = SKIP.iter().filter(|o| !std::ptr::eq(*o, s));
            for o in others {
                assert!(!o.names(name), "{name} is already named by {:?}", o.name);
            }
        }
    }

    /// Reports of a stock kernel's own code, as `scan` and `census` show
    /// them: what the case shows, the report, its culprit and its title.
    const KERNEL_REPORTS: &[(&str, &str, &str, &str)] = &[
        (
            "6.12: sock_kmalloc allocates for the socket layer, .isra.7 is a clone's",
            "unreferenced object 0xffff88810a4c7e00 (size 64):
  comm \"syz-executor.3\", pid 4211, jiffies 4295012345
  backtrace (crc 9a1b7c3d):
    __kmalloc_noprof+0x2d8/0x400
    sock_kmalloc+0x5d/0x90
    do_ipv6_setsockopt.isra.7+0x8c4/0x1350
    ipv6_setsockopt+0x57/0x130
    do_sock_setsockopt+0xbf/0x1c0
    __sys_setsockopt+0x7d/0xd0
    __x64_sys_setsockopt+0x21/0x30
    do_syscall_64+0x82/0x190
    entry_SYSCALL_64_after_hwframe+0x76/0x7e
",
            "do_ipv6_setsockopt+0x8c4",
            "memory leak in do_ipv6_setsockopt",
        ),
        (
            "kstrdup_const and kstrdup copy the name, .constprop.0 is a clone's",
            "unreferenced object 0xffff888003f1c2a0 (size 16):
  comm \"modprobe\", pid 318, jiffies 4294895120
  backtrace (crc 3e5f0c11):
    __kmalloc_node_track_caller_noprof+0x1f3/0x3e0
    kstrdup+0x3c/0x70
    kstrdup_const+0x24/0x30
    __kernfs_new_node.constprop.0+0x3a/0x2c0
    kernfs_new_node+0x6b/0xa0
    kernfs_create_dir_ns+0x2c/0xb0
    sysfs_create_dir_ns+0x6f/0x110
",
            "__kernfs_new_node+0x3a",
            "memory leak in __kernfs_new_node",
        ),
        (
            "kmemdup copies the template, .part.0 is the outlined part",
            "unreferenced object 0xffff888104d3a000 (size 2048):
  comm \"ip\", pid 977, jiffies 4294911377
  backtrace (crc 51d2e6a0):
    __kmalloc_node_track_caller_noprof+0x2a0/0x3e0
    kmemdup_noprof+0x22/0x50
    neigh_sysctl_register.part.0+0x5b/0x270
    addrconf_sysctl_register+0x3d/0xa0
    ipv6_add_dev+0x3e7/0x5a0
    addrconf_notify+0x6e5/0x9a0
",
            "neigh_sysctl_register+0x5b",
            "memory leak in neigh_sysctl_register",
        ),
        (
            "6.10: kvmalloc_node_noprof chooses kmalloc for the caller",
            "unreferenced object 0xffff888106c2b000 (size 4096):
  comm \"sysctl\", pid 1203, jiffies 4294923001
  backtrace (crc 0be1f4a9):
    __kmalloc_node_noprof+0x2c8/0x430
    kvmalloc_node_noprof+0x52/0x120
    proc_sys_call_handler+0xd8/0x2f0
    vfs_write+0x2ab/0x540
    ksys_write+0x6b/0xe0
    do_syscall_64+0x82/0x190
",
            "proc_sys_call_handler+0xd8",
            "memory leak in proc_sys_call_handler",
        ),
        (
            "__alloc_skb and the socket's send buffer are the protocol's",
            "unreferenced object 0xffff8881093f6b40 (size 232):
  comm \"syz-executor.0\", pid 5120, jiffies 4295110222
  backtrace (crc 77a0c2de):
    kmem_cache_alloc_node_noprof+0x2a8/0x380
    __alloc_skb+0xd9/0x1f0
    alloc_skb_with_frags+0x4e/0x1f0
    sock_alloc_send_pskb+0x22c/0x260
    unix_dgram_sendmsg+0x1d4/0x9c0
    ____sys_sendmsg+0x32a/0x360
",
            "unix_dgram_sendmsg+0x1d4",
            "memory leak in unix_dgram_sendmsg",
        ),
        (
            "an error path the compiler moved to .cold",
            "unreferenced object 0xffff888005a7d800 (size 1024):
  comm \"mount\", pid 402, jiffies 4294901337
  backtrace (crc c4e1d2f0):
    kmemleak_alloc+0x8d/0xa0
    __kmalloc_noprof+0x3cd/0x4d0
    ext4_fill_super.cold+0x1c2/0x2f8
    get_tree_bdev_flags+0x13c/0x1e0
    vfs_get_tree+0x29/0xe0
    path_mount+0x4a5/0xb70
",
            "ext4_fill_super+0x1c2",
            "memory leak in ext4_fill_super",
        ),
        (
            "clang's ThinLTO promotes a static function with .llvm.<hash>",
            "unreferenced object 0xffff88800b1e4c00 (size 128):
  comm \"nft\", pid 733, jiffies 4294909876
  backtrace (crc 2f6a91b8):
    __kmalloc_cache_noprof+0x1a2/0x2a0
    nf_tables_newtable.llvm.9311862455312094551+0x2f1/0x6d0
    nfnetlink_rcv_batch+0x8a3/0xaf0
    nfnetlink_rcv+0x17d/0x1a0
",
            "nf_tables_newtable+0x2f1",
            "memory leak in nf_tables_newtable",
        ),
    ];

    #[test]
    fn kernel_reports_name_the_function_a_reviewer_names() {
        let mut wrong = Vec::new();
        for (case, text, culprit, title) in KERNEL_REPORTS {
            let a = one(text);
            if (a.culprit.as_deref(), a.title.as_deref()) != (Some(*culprit), Some(*title)) {
                wrong.push(format!(
                    "{case}: want {culprit:?} {title:?}, got {:?} {:?}",
                    a.culprit, a.title
                ));
            }
            assert_eq!(a.module, None, "{case}");
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn a_rust_frames_suffix_is_dropped_too() {
        // A module's Rust function with a cold part: v0-mangled, demangled
        // with the suffix kept (rustc-demangle drops only `.llvm.<hash>`).
        let a = one("unreferenced object 0xffff888003a8e000 (size 32):
  comm \"insmod\", pid 18, jiffies 4294892487
  backtrace (crc 1):
    __kmalloc_cache_noprof+0x1a2/0x2a0
    _RNvNtNtCs1EKtwoKEMO2_7leaklab7samples10error_path11probe_leaky.cold+0x1c/0x60 [leaklab]
    do_one_initcall+0x41/0x1e0
");
        assert_eq!(a.module.as_deref(), Some("leaklab"));
        assert_eq!(
            a.culprit.as_deref(),
            Some("leaklab::samples::error_path::probe_leaky+0x1c")
        );
        assert_eq!(
            a.title.as_deref(),
            Some("memory leak in leaklab::samples::error_path::probe_leaky")
        );
        assert_eq!(a.pattern.as_deref(), Some("error_path"));
        assert_eq!(a.variant, Some(Variant::Leaky));
    }

    #[test]
    fn titles_drop_offsets_and_compiler_suffixes() {
        for (name, base) in [
            ("do_ipv6_setsockopt.isra.7", "do_ipv6_setsockopt"),
            ("krb5_selftest.cold", "krb5_selftest"),
            ("vfs_kern_mount.part.27", "vfs_kern_mount"),
            ("xas_expand.constprop.0", "xas_expand"),
            (
                "tcp_v6_syn_recv_sock.constprop.0.isra.0",
                "tcp_v6_syn_recv_sock",
            ),
            ("sctp_sf_do_5_1D_ce.isra.56.cold.74", "sctp_sf_do_5_1D_ce"),
            (
                "nf_tables_newtable.llvm.9311862455312094551",
                "nf_tables_newtable",
            ),
            ("igc_tsn_offload_apply.__uniq.1234", "igc_tsn_offload_apply"),
            (
                "leaklab::samples::error_path::probe_leaky.cold",
                "leaklab::samples::error_path::probe_leaky",
            ),
            (
                "<kernel::alloc::kbox::Box<leaklab::samples::Node>>::new.part.0",
                "<kernel::alloc::kbox::Box<leaklab::samples::Node>>::new",
            ),
            ("kfree", "kfree"),
            (
                "<dyn core::any::Any + core::marker::Send>::type_id",
                "<dyn core::any::Any + core::marker::Send>::type_id",
            ),
            (".init.text", ".init.text"),
        ] {
            assert_eq!(base_name(name), base, "{name}");
        }
        assert_eq!(
            title("leaklab::samples::error_path::probe_leaky").as_deref(),
            Some("memory leak in leaklab::samples::error_path::probe_leaky")
        );
        assert_eq!(title(".init.text"), None);
    }
}
