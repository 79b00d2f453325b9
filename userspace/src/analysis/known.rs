// SPDX-License-Identifier: GPL-2.0
//! Allocations a sweep sees outlive a module that are the kernel's own
//! state, not the module's bug: each told by the calls on its backtrace,
//! with why it is not held against the module. A sweep lists them apart
//! (a module with nothing else is clean); each entry is checked against
//! the kernel's source, and its reason says what keeps the memory.

/// One kind of kernel-wide allocation.
pub struct KernelWide {
    /// Functions on the backtrace, innermost first, in this order.
    pub calls: &'static [&'static str],
    /// Why it outlives the module and is not the module's.
    pub reason: &'static str,
}

/// The kinds known (Debian 12's 6.12 and 6.1 kernels).
pub const KERNEL_WIDE: &[KernelWide] = &[KernelWide {
    calls: &["net_alloc_generic", "register_pernet_operations"],
    reason: "the network namespace's generic-pointer array (net->gen) grows when a module registers a pernet id past its length; the namespace keeps the larger array after the module goes (net/core/net_namespace.c, net_assign_generic: the old array is freed, the new one is the namespace's), once per boot, not per load",
}];

/// The function a symbolized frame names (`f+0x1d [m] at file:line` is `f`).
fn function(frame: &str) -> &str {
    let name = frame.split([' ', '+']).next().unwrap_or(frame);
    // A compiler's clone (`f.isra.0`, `f.constprop.0`) is `f`.
    name.split('.').next().unwrap_or(name)
}

/// Why the allocation with backtrace `frames` is the kernel's own state,
/// if it is one of [`KERNEL_WIDE`].
pub fn kernel_wide(frames: &[String]) -> Option<&'static str> {
    KERNEL_WIDE
        .iter()
        .find(|k| {
            let mut calls = k.calls.iter().peekable();
            for f in frames {
                if calls.peek().is_some_and(|c| **c == function(f)) {
                    calls.next();
                }
            }
            calls.peek().is_none()
        })
        .map(|k| k.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    /// The backtrace a sweep of Debian 6.12 gave for `nfs`.
    #[test]
    fn the_pernet_array_is_the_namespaces() {
        let nfs = frames(&[
            "__kmalloc_noprof+0x22c",
            "net_alloc_generic+0x1d",
            "ops_init+0xc1",
            "register_pernet_operations+0x128",
            "register_pernet_subsys+0x28",
            "init_nfs_fs+0x35 [nfs] at fs/nfs/inode.c:2642",
            "do_one_initcall+0x5b",
        ]);
        assert!(kernel_wide(&nfs).is_some_and(|r| r.contains("net->gen")));
    }

    /// The calls must all be there, in order: a module's own allocation
    /// in its pernet init is its own.
    #[test]
    fn a_modules_own_allocation_is_not_the_kernels() {
        let vrf = frames(&[
            "kmemdup_noprof+0x20",
            "vrf_netns_init+0x82 [vrf]",
            "ops_init+0x6b",
            "register_pernet_operations+0x128",
        ]);
        assert_eq!(kernel_wide(&vrf), None);
        let reversed = frames(&["register_pernet_operations+0x1", "net_alloc_generic+0x1"]);
        assert_eq!(kernel_wide(&reversed), None);
        assert_eq!(function("f.isra.0+0x1 [m] at a.c:1"), "f");
    }
}
