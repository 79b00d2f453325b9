/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What leaklab.ko calls that the kernel crate's bindings (6.12) do not
 * declare, for bindgen: Kbuild makes module/ffi_generated.rs from this file
 * with the flags the tree's own bindings were made with, and module/ffi.rs
 * includes it, with the kernel crate's types.
 */
#include <linux/debugfs.h>
#include <linux/gfp_types.h>

struct kmem_cache;

/* The module's allocation entry points (module/alloc.c). */
void *leaklab_kmem_cache_alloc(struct kmem_cache *cache, gfp_t flags);
unsigned long leaklab_get_free_pages(gfp_t flags, unsigned int order);
