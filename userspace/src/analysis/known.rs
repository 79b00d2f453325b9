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

/// Why a sound card's /proc entries outlive the card.
const SOUND_CARD_PROC: &str = "a sound card's /proc/asound entries: snd_info_card_disconnect() clears card->proc_root before snd_info_card_free() would free it with the entries under it (sound/core/info.c, 6.12), so they stay under the sound core's root until the snd module goes (snd_info_done): the sound core's leak, held by a module this one needs";

/// The kinds known (Debian 12's 6.12 and 6.1 kernels), each read in the
/// source of the kernel the sweep ran (Debian's 6.12.118); the sweep of all
/// of Debian 6.12's x86_64 modules met every one.
pub const KERNEL_WIDE: &[KernelWide] = &[
    KernelWide {
        calls: &["net_alloc_generic", "register_pernet_operations"],
        reason: "the network namespace's generic-pointer array (net->gen) grows when a module registers a pernet id past its length; the namespace keeps the larger array after the module goes (net/core/net_namespace.c, net_assign_generic: the old array is freed, the new one is the namespace's), once per boot, not per load",
    },
    KernelWide {
        calls: &["alloc_workqueue", "ipmi_init_msghandler"],
        reason: "ipmi_msghandler's removal workqueue, made by its first user and destroyed in ipmi_msghandler's own exit (drivers/char/ipmi/ipmi_msghandler.c, cleanup_ipmi): held by a module this one needs, which was still loaded when the module was judged",
    },
    KernelWide {
        calls: &["init_srcu_struct_fields", "ipmi_init_msghandler"],
        reason: "ipmi_msghandler's SRCU state for its interface list, set up by its first user and cleaned up in ipmi_msghandler's own exit (drivers/char/ipmi/ipmi_msghandler.c, cleanup_ipmi): held by a module this one needs, which was still loaded when the module was judged",
    },
    KernelWide {
        calls: &["snd_info_create_entry", "snd_info_card_create"],
        reason: SOUND_CARD_PROC,
    },
    KernelWide {
        calls: &["snd_info_create_entry", "snd_card_rw_proc_new"],
        reason: SOUND_CARD_PROC,
    },
    KernelWide {
        calls: &["snd_info_create_entry", "snd_info_create_card_entry"],
        reason: SOUND_CARD_PROC,
    },
    KernelWide {
        calls: &["acpi_ut_create_internal_object_dbg", "acpi_ds_begin_method_execution"],
        reason: "the mutex ACPICA makes the first time a Serialized AML method runs (here the PCI interrupt link's _SRS) and keeps on the method's object for as long as the ACPI table is loaded (drivers/acpi/acpica/dsmethod.c, acpi_ds_create_method_mutex)",
    },
    KernelWide {
        calls: &[
            "acpi_ut_create_internal_object_dbg",
            "acpi_install_notify_handler",
            "acpi_add_pm_notifier",
        ],
        reason: "the object ACPICA attaches to a device's namespace node the first time a notify handler is installed on it (the ACPI core's power-management notifier); removing the handler frees the handler alone, the node keeps the object (drivers/acpi/acpica/evxface.c, acpi_install_notify_handler)",
    },
    KernelWide {
        calls: &["ima_queue_key"],
        reason: "a key loaded in the first five minutes after boot is queued for IMA to measure until its timer runs or a policy is loaded (security/integrity/ima/ima_queue_keys.c, ima_queue_key, ima_process_queued_keys): IMA's queue, freed on its own schedule",
    },
    KernelWide {
        calls: &["idr_get_free", "__kernfs_new_node"],
        reason: "a node of the index of sysfs and kernfs inode numbers: they are given cyclically (fs/kernfs/dir.c, __kernfs_new_node: idr_alloc_cyclic), and the radix-tree node a new range needs stays while any other file's number in its range lives (lib/radix-tree.c)",
    },
    KernelWide {
        calls: &["netdev_core_stats_inc"],
        reason: "a network device's per-CPU drop counters, made on its first dropped packet and kept until the device is freed (net/core/dev.c, netdev_core_stats_alloc; free_netdev)",
    },
    KernelWide {
        calls: &["parport_daisy_init"],
        reason: "the parallel-port core's own daisy-chain driver, registered when the first port is announced and never unregistered (drivers/parport/daisy.c, parport_daisy_init): parport's, not the port driver's",
    },
    KernelWide {
        calls: &["__pte_alloc_kernel", "vmap_range_noflush"],
        reason: "a page-table page of the kernel's vmalloc and ioremap range: kernel page tables are filled as areas are mapped and are not freed when the area is unmapped (mm/memory.c, __pte_alloc_kernel; mm/vmalloc.c)",
    },
];

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

    /// Backtraces of Debian 6.12's sweep (x86_64), each the kernel's own
    /// state or a module's it needs, by the reasons above; the swept
    /// module's own frames below them.
    const MET: &[(&[&str], &str)] = &[
        (
            &[
                "__kmalloc_cache_noprof+0x244",
                "alloc_workqueue_attrs+0x20",
                "alloc_workqueue+0x43a",
                "ipmi_init_msghandler+0x9c [ipmi_msghandler]",
                "ipmi_smi_watcher_register+0x17 [ipmi_msghandler]",
                "init_ipmi_devintf+0x80 [ipmi_devintf]",
            ],
            "cleanup_ipmi",
        ),
        (
            &[
                "pcpu_alloc_noprof+0x58d",
                "init_srcu_struct_fields+0x2e1",
                "ipmi_init_msghandler+0x46 [ipmi_msghandler]",
                "init_ipmi_devintf+0x80 [ipmi_devintf]",
            ],
            "SRCU",
        ),
        (
            &[
                "__kmalloc_node_track_caller_noprof+0x289",
                "kstrdup+0x38",
                "snd_info_create_entry+0x47 [snd]",
                "snd_info_card_create+0x5a [snd]",
                "snd_card_init+0x33b [snd]",
                "snd_dummy_probe+0x73 [snd_dummy]",
            ],
            "/proc/asound",
        ),
        (
            &[
                "__kmalloc_cache_noprof+0x244",
                "snd_info_create_entry+0x2e [snd]",
                "snd_card_rw_proc_new+0x2f [snd]",
                "loopback_probe+0x5a6 [snd_aloop]",
            ],
            "/proc/asound",
        ),
        (
            &[
                "kmem_cache_alloc_noprof+0x22f",
                "acpi_ut_allocate_object_desc_dbg+0x3d",
                "acpi_ut_create_internal_object_dbg+0x21",
                "acpi_ds_begin_method_execution+0x1a2",
                "acpi_ps_execute_method+0x3a",
                "acpi_pci_link_set+0xeb",
                "e1000_probe+0xc3 [e1000]",
            ],
            "Serialized",
        ),
        (
            &[
                "kmem_cache_alloc_noprof+0x22f",
                "acpi_ut_create_internal_object_dbg+0x21",
                "acpi_install_notify_handler+0x1eb",
                "acpi_add_pm_notifier+0x6f",
                "acpi_dev_pm_attach+0x72",
                "fw_cfg_sysfs_init+0x40 [qemu_fw_cfg]",
            ],
            "notify handler",
        ),
        (
            &[
                "__kmalloc_cache_noprof+0x244",
                "ima_queue_key+0x2e",
                "ima_post_key_create_or_update+0x49",
                "x509_load_certificate_list+0xa8",
                "regulatory_init+0xfa [cfg80211]",
            ],
            "IMA",
        ),
        (
            &[
                "kmem_cache_alloc_noprof+0x22f",
                "radix_tree_node_alloc.constprop.0+0x87",
                "idr_get_free+0x230",
                "idr_alloc_u32+0x96",
                "idr_alloc_cyclic+0x56",
                "__kernfs_new_node+0xa0",
                "kernfs_create_link+0x35",
                "ata_tlink_add+0xfb [libata]",
            ],
            "inode numbers",
        ),
        (
            &[
                "pcpu_alloc_noprof+0x58d",
                "netdev_core_stats_inc+0x45",
                "noop_enqueue+0x1f",
                "__dev_queue_xmit+0x49e",
                "tx+0x56 [aoe]",
            ],
            "drop counters",
        ),
        (
            &[
                "kstrdup+0x38",
                "kobject_set_name_vargs+0x20",
                "driver_register+0x59",
                "__parport_register_driver+0x2d [parport]",
                "parport_daisy_init+0x41b [parport]",
                "parport_announce_port+0x17 [parport]",
            ],
            "daisy-chain",
        ),
        (
            &[
                "__alloc_pages_noprof+0x228",
                "__pte_alloc_kernel+0x1e",
                "vmap_range_noflush+0x711",
                "__ioremap_caller+0x28d",
                "ttm_kmap_iter_linear_io_init+0xfa [ttm]",
            ],
            "page-table",
        ),
    ];

    #[test]
    fn the_kinds_met_by_the_full_sweep_are_known_with_their_reasons() {
        for (backtrace, says) in MET {
            let reason = kernel_wide(&frames(backtrace));
            assert!(
                reason.is_some_and(|r| r.contains(says)),
                "{backtrace:?}: {reason:?}"
            );
        }
    }

    /// A module's own kernfs node, ACPI notify handler left installed, or
    /// workqueue is its own: only the kernel's part of each chain is known.
    #[test]
    fn the_modules_own_objects_on_those_paths_stay_its_own() {
        let own: &[&[&str]] = &[
            &[
                "kmem_cache_alloc_noprof+0x22f",
                "__kernfs_new_node+0x5d",
                "kernfs_new_node+0x56",
                "device_add+0x389",
                "bochs_pci_probe+0x5b [bochs]",
            ],
            &[
                "kmem_cache_alloc_noprof+0x22f",
                "acpi_ut_create_internal_object_dbg+0x21",
                "acpi_install_notify_handler+0xd1",
                "mydrv_probe+0x40 [mydrv]",
            ],
            &[
                "__kmalloc_cache_noprof+0x244",
                "alloc_workqueue_attrs+0x20",
                "alloc_workqueue+0x43a",
                "mydrv_init+0x12 [mydrv]",
            ],
        ];
        for backtrace in own {
            assert_eq!(kernel_wide(&frames(backtrace)), None, "{backtrace:?}");
        }
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
