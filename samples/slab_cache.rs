// SPDX-License-Identifier: GPL-2.0

//! Slab-cache leak: an object taken from a driver's own `kmem_cache` is never
//! returned, and the cache is destroyed while the object is still live.
//!
//! The driver creates a cache at probe, allocates a descriptor from it, and
//! at remove destroys the cache but forgets `kmem_cache_free()` on the
//! descriptor. The kernel refuses to destroy a cache with live objects: it
//! prints `kmem_cache_destroy <name>: Slab cache still has objects` with a
//! WARN (and, with SLUB debugging, a `BUG <name>: Objects remaining` report),
//! gives up on the cache, and the descriptor leaks.
//!
//! Fixed: a `Cache` owns the `kmem_cache` and an `Object` borrows the cache
//! it came from. The borrow checker refuses to drop the cache while an
//! object lives, and each `Drop` runs in the right order.
//!
//! Leaks per leaky run: one 96-byte descriptor (and one kernel warning).

// `kmem_cache_alloc()`, as C drivers call it (module/alloc.c).
use crate::ffi::leaklab_kmem_cache_alloc;
use crate::{accounting::Tally, pattern::Pattern};
use core::{
    mem::MaybeUninit,
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{bindings, ffi::c_void, fmt, prelude::*, str::CString};

/// The descriptor size, a slab object size of its own (not a kmalloc bucket).
const DESCRIPTOR_SIZE: u32 = 96;

/// Creates a cache that is never merged with another one (merging would hide
/// the warning), with a name no other live cache has.
fn create_cache() -> Result<NonNull<bindings::kmem_cache>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Leaked caches stay registered under their names: use fresh names.
    // SAFETY: Reading `jiffies` is always allowed.
    let epoch = unsafe { core::ptr::read_volatile(&raw const bindings::jiffies) };
    let name = CString::try_from_fmt(fmt!(
        "leaklab_slab_{}_{}",
        epoch,
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))?;
    // SAFETY: All-zero arguments are the defaults (no constructor, no usercopy region).
    let mut args: bindings::kmem_cache_args = unsafe { MaybeUninit::zeroed().assume_init() };
    let no_merge = 1 << bindings::_slab_flag_bits__SLAB_NO_MERGE;
    // SAFETY: `name` is NUL-terminated (the cache keeps its own copy) and
    // `args` is valid for the call.
    let cache = unsafe {
        bindings::__kmem_cache_create_args(name.as_char_ptr(), DESCRIPTOR_SIZE, &mut args, no_merge)
    };
    NonNull::new(cache).ok_or(ENOMEM)
}

/// Leaky: the C shape, with the free missing from the remove path.
#[inline(never)]
fn probe_remove_leaky(t: &mut Tally) -> Result {
    let cache = create_cache()?;
    // SAFETY: `cache` is a live cache.
    let desc = unsafe { leaklab_kmem_cache_alloc(cache.as_ptr(), bindings::GFP_KERNEL) };
    if desc.is_null() {
        // SAFETY: `cache` is live and empty.
        unsafe { bindings::kmem_cache_destroy(cache.as_ptr()) };
        return Err(ENOMEM);
    }
    // SAFETY: `desc` is what `kmem_cache_alloc` just returned: the start of a
    // live object of `cache`.
    let counted = unsafe { t.allocated_at(desc) };
    // BUG: remove() destroys the cache without kmem_cache_free(desc) first.
    t.leaked(counted);
    // SAFETY: `cache` is live; destroying a cache with objects is allowed
    // (the kernel warns and gives up on the cache without freeing it).
    unsafe { bindings::kmem_cache_destroy(cache.as_ptr()) };
    Ok(())
}

/// A `kmem_cache`, destroyed on drop.
///
/// # Invariants
///
/// `0` is a live cache created by [`create_cache`].
struct Cache(NonNull<bindings::kmem_cache>);

/// An object of a [`Cache`], freed on drop; it cannot outlive its cache.
///
/// # Invariants
///
/// `ptr` was allocated from `cache` and is not freed yet.
struct Object<'a> {
    cache: &'a Cache,
    ptr: NonNull<c_void>,
}

impl Cache {
    fn new() -> Result<Self> {
        // INVARIANT: `create_cache` returns a live cache.
        Ok(Self(create_cache()?))
    }

    fn alloc(&self) -> Result<Object<'_>> {
        // SAFETY: The cache is live (type invariant).
        let p = unsafe { leaklab_kmem_cache_alloc(self.0.as_ptr(), bindings::GFP_KERNEL) };
        // INVARIANT: `p` was just allocated from this cache.
        Ok(Object {
            cache: self,
            ptr: NonNull::new(p).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        // SAFETY: The cache is live (type invariant) and no `Object`
        // borrows it any more (the borrow checker sees to that), so nothing
        // allocates from it or frees to it while it is destroyed. An
        // `Object` given to `mem::forget` (safe) would leave it not empty:
        // the kernel then warns and keeps the cache, which is a leak, not
        // unsafety; no sample here forgets one.
        unsafe { bindings::kmem_cache_destroy(self.0.as_ptr()) };
    }
}

impl Drop for Object<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `cache`, which is still live (it is borrowed).
        unsafe { bindings::kmem_cache_free(self.cache.0.as_ptr(), self.ptr.as_ptr()) };
    }
}

/// Fixed: ownership frees the object, then destroys the cache.
#[inline(never)]
fn probe_remove_fixed(t: &mut Tally) -> Result {
    let cache = Cache::new()?;
    let desc = cache.alloc()?;
    // SAFETY: `desc.ptr` is what `kmem_cache_alloc` returned, the start of an
    // object of `cache`, live until `desc` is dropped (type invariant).
    unsafe { t.allocated_at(desc.ptr.as_ptr()) };
    // `drop(cache)` here would not compile: `desc` still borrows it.
    drop(desc);
    drop(cache);
    Ok(())
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: kernel::c_str!("slab_cache"),
    description:
        "A driver allocates a 96-byte descriptor from its own kmem_cache and destroys the \
cache at remove without freeing the descriptor: the kernel warns 'Slab cache still has objects' \
and the descriptor leaks. Fixed: an RAII cache and object handle; the object \
borrows the cache, so it is freed before the cache is destroyed.",
    leaky: probe_remove_leaky,
    fixed: probe_remove_fixed,
    after_unload: false,
    kmemleak_visible: true,
    grows: false,
    disarm: None,
    at_unload: None,
};
