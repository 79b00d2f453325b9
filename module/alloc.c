// SPDX-License-Identifier: GPL-2.0
/*
 * The allocation entry points the samples call where the kernel crate has
 * none. In C, kmem_cache_alloc() and __get_free_pages() are macros that wrap
 * the allocator in alloc_hooks(), so that allocation profiling
 * (CONFIG_MEM_ALLOC_PROFILING, /proc/allocinfo) counts each call at its call
 * site, in its module; bindgen sees only the unhooked *_noprof functions
 * behind them. These are those call sites, in the module.
 */
#include <linux/gfp.h>
#include <linux/slab.h>

#include "ffi.h"

void *leaklab_kmem_cache_alloc(struct kmem_cache *cache, gfp_t flags)
{
	return kmem_cache_alloc(cache, flags);
}

unsigned long leaklab_get_free_pages(gfp_t flags, unsigned int order)
{
	return __get_free_pages(flags, order);
}
