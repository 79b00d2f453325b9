// SPDX-License-Identifier: GPL-2.0

//! Unbounded cache: a lookup cache that keeps every entry it ever made.
//!
//! A driver caches the result of an expensive lookup (a parsed firmware
//! table entry, a route, a per-client context) keyed by an id, and nothing
//! ever purges the cache. No pointer is lost: every entry stays referenced
//! from the cache, which the module's data points to, so kmemleak, which
//! reports only unreferenced objects, never reports one. Yet memory grows
//! with use, one entry per new id, for as long as the module is loaded. The
//! verdict is that growth per run while the module is loaded, not a report.
//!
//! Fixed: the same cache with a bound, at most [`CAP`] entries; inserting one
//! more evicts the oldest, which is freed. Both caches belong to the module
//! and are freed when it unloads (the pattern's `at_unload` hook), so after
//! `rmmod` nothing is left from either variant: the bug is the growth.
//!
//! Kept per leaky run: one 1024-byte entry, still referenced, until `rmmod`.

use crate::{accounting::Tally, pattern::Pattern};
use core::{
    pin::Pin,
    ptr,
    sync::atomic::{AtomicPtr, AtomicU64, Ordering},
};
use kernel::{c_str, new_mutex, prelude::*, sync::Mutex};

/// How many entries the fixed cache keeps at most.
const CAP: usize = 4;

/// One cached lookup result, linked to the next newest: a list adds exactly
/// one object per entry (a vector's buffer would grow in steps too).
struct Entry {
    id: u64,
    next: Option<KBox<Entry>>,
    _value: [u8; 1008],
}

/// A lookup cache: its entries, newest first, and the bound on their
/// number, if any.
struct LookupCache {
    newest: Option<KBox<Entry>>,
    len: usize,
    /// At most this many entries (`None`: the bug, no bound).
    bound: Option<usize>,
}

impl LookupCache {
    /// A new entry for `id` when the cache has none (a miss), else `None`.
    fn miss(&self, id: u64) -> Result<Option<KBox<Entry>>> {
        if self.get(id).is_some() {
            return Ok(None);
        }
        let entry = Entry {
            id,
            next: None,
            _value: [0; 1008],
        };
        Ok(Some(KBox::new(entry, GFP_KERNEL)?))
    }

    fn get(&self, id: u64) -> Option<&Entry> {
        let mut e = self.newest.as_deref();
        while let Some(entry) = e {
            if entry.id == id {
                return Some(entry);
            }
            e = entry.next.as_deref();
        }
        None
    }

    /// Inserts `entry`; returns the entry it evicted to stay within the bound.
    fn insert(&mut self, mut entry: KBox<Entry>) -> Option<KBox<Entry>> {
        entry.next = self.newest.take();
        self.newest = Some(entry);
        self.len += 1;
        let cap = self.bound?;
        if self.len <= cap {
            return None;
        }
        // Over the bound: unlink the oldest, the entry after the `cap`th.
        let mut last = self.newest.as_mut()?;
        for _ in 1..cap {
            last = last.next.as_mut()?;
        }
        self.len -= 1;
        last.next.take()
    }
}

impl Drop for LookupCache {
    /// Frees the entries one by one: dropping the head alone would recurse
    /// once per entry, on a kernel stack of a few pages.
    fn drop(&mut self) {
        let mut next = self.newest.take();
        while let Some(mut entry) = next {
            next = entry.next.take();
        }
    }
}

/// A cache that lives as long as the module, behind a global pointer: made
/// by the first run, freed with all its entries at unload ([`free_caches`]).
struct Global {
    cache: AtomicPtr<Mutex<LookupCache>>,
    bound: Option<usize>,
}

impl Global {
    const fn new(bound: Option<usize>) -> Self {
        Self {
            cache: AtomicPtr::new(ptr::null_mut()),
            bound,
        }
    }

    /// The cache, made on first use.
    fn get(&self) -> Result<&Mutex<LookupCache>> {
        let mut p = self.cache.load(Ordering::Acquire);
        if p.is_null() {
            let cache = LookupCache {
                newest: None,
                len: 0,
                bound: self.bound,
            };
            let new = KBox::pin_init(new_mutex!(cache, "leaklab_lookup_cache"), GFP_KERNEL)?;
            // SAFETY: The mutex is never moved out of its box: only `free`
            // turns the pointer back into a box, to drop it in place.
            let new = KBox::into_raw(unsafe { Pin::into_inner_unchecked(new) });
            match self.cache.compare_exchange(
                ptr::null_mut(),
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => p = new,
                Err(first) => {
                    // SAFETY: `new` came from `KBox::into_raw` above and was
                    // never published: another run made the cache first.
                    drop(unsafe { KBox::from_raw(new) });
                    p = first;
                }
            }
        }
        // SAFETY: `p` is non-null and came from `KBox::into_raw`; only `free`
        // frees it, at unload, when no run is left to hold this reference.
        Ok(unsafe { &*p })
    }

    /// Frees the cache and every entry in it.
    fn free(&self) {
        let p = self.cache.swap(ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: `p` came from `KBox::into_raw` in `get`. This runs when
            // the pattern's state is dropped at unload, after every run has
            // returned, so no reference from `get` is left.
            drop(unsafe { KBox::from_raw(p) });
        }
    }
}

/// Leaky: a cache that only ever grows.
static UNBOUNDED: Global = Global::new(None);

/// Fixed: a cache of at most [`CAP`] entries.
static BOUNDED: Global = Global::new(Some(CAP));

/// The ids looked up: every run asks for a new one (a new client, a new
/// handle), so every lookup misses and inserts.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Leaky: every miss adds an entry, and nothing ever removes one.
#[inline(never)]
fn lookup_leaky(t: &mut Tally) -> Result {
    let mut cache = UNBOUNDED.get()?.lock();
    let Some(entry) = cache.miss(NEXT_ID.fetch_add(1, Ordering::Relaxed))? else {
        return Ok(());
    };
    let counted = t.allocated(&entry);
    cache.insert(entry);
    // BUG: no bound and no purge: the cache keeps this entry, referenced,
    // for as long as the module is loaded, one more for every new id.
    t.leaked(counted);
    Ok(())
}

/// Fixed: the same cache, bounded: the oldest entry is evicted and freed.
#[inline(never)]
fn lookup_fixed(t: &mut Tally) -> Result {
    let mut cache = BOUNDED.get()?.lock();
    let Some(entry) = cache.miss(NEXT_ID.fetch_add(1, Ordering::Relaxed))? else {
        return Ok(());
    };
    t.allocated(&entry);
    // A full cache evicts its oldest entry, freed here.
    drop(cache.insert(entry));
    Ok(())
}

/// Frees both caches with their entries when the module's state is dropped
/// at unload: the leaky cache's bug is its growth while loaded, not a lost
/// pointer.
fn free_caches() {
    UNBOUNDED.free();
    BOUNDED.free();
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("unbounded_cache"),
    description: "A driver's lookup cache keeps a 1024-byte entry for every new id and never \
purges it: every entry stays referenced, so kmemleak never reports one, but memory grows with \
every run for as long as the module is loaded (both caches are freed at unload). The verdict is \
the growth per run while loaded. Fixed: the cache keeps at most 4 entries and frees the oldest \
when it inserts another.",
    leaky: lookup_leaky,
    fixed: lookup_fixed,
    after_unload: false,
    kmemleak_visible: false,
    grows: true,
    disarm: None,
    at_unload: Some(free_caches),
};
