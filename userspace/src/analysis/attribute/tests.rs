// SPDX-License-Identifier: GPL-2.0
//! Unit tests of [`super`], and what other modules' tests build on.

use super::*;
use crate::kmemleak::report::parse;

/// Real reports of several kernel versions (tests/data/kmemleak-reports/).
const REPORTS: &[(&str, &str)] = &[
    (
        "linux-old.txt",
        include_str!("../../../tests/data/kmemleak-reports/linux-old.txt"),
    ),
    (
        "linux-4.x.txt",
        include_str!("../../../tests/data/kmemleak-reports/linux-4.x.txt"),
    ),
    (
        "linux-5.x.txt",
        include_str!("../../../tests/data/kmemleak-reports/linux-5.x.txt"),
    ),
    (
        "linux-6.x.txt",
        include_str!("../../../tests/data/kmemleak-reports/linux-6.x.txt"),
    ),
    (
        "linux-6.x-syzbot.txt",
        include_str!("../../../tests/data/kmemleak-reports/linux-6.x-syzbot.txt"),
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
    let text = include_str!("../../../tests/data/kmemleak-reports/linux-4.x.txt");
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
    crate::analysis::symbolize::testing::add_layout(
        &mut sym,
        crate::kernel::module::ModuleLayout {
            name: "mydrv".into(),
            sections: vec![crate::kernel::module::Section {
                name: ".text".into(),
                address: 0xffffffffa0000000,
                size: 0x1000,
            }],
            loader: None,
        },
    );
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
fn the_labs_own_allocation_entry_point_is_not_the_culprit() {
    // With allocation profiling on, module/alloc.c's call of the hooked
    // kmem_cache_alloc is not a tail call: its frame is the module's first.
    let a = one("unreferenced object 0xffff888003a8e000 (size 96):
  comm \"sh\", pid 77, jiffies 4294892487
  backtrace (crc 1):
    kmem_cache_alloc_noprof+0x1a2/0x2a0
    leaklab_kmem_cache_alloc+0x3c/0x70 [leaklab]
    _RNvNtNtCs1EKtwoKEMO2_7leaklab7samples10slab_cache18probe_remove_leaky+0x4e/0x160 [leaklab]
");
    assert_eq!(
        a.culprit.as_deref(),
        Some("leaklab::samples::slab_cache::probe_remove_leaky+0x4e")
    );
    assert_eq!(a.pattern.as_deref(), Some("slab_cache"));
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

#[test]
fn a_row_keeps_the_example_first_by_its_frames_then_its_size() {
    let example = |size, frames: &[&str]| Example {
        size,
        raw: Vec::new(),
        symbolized: frames.iter().map(|f| f.to_string()).collect(),
    };
    let connect = example(64, &["krealloc_noprof+0x6f", "connect+0x22 [leaklab]"]);
    let later_line = example(64, &["krealloc_noprof+0x6f", "connect+0x56 [leaklab]"]);
    assert!(connect.comes_before(&later_line));
    assert!(!later_line.comes_before(&connect));
    let bigger = example(128, &["krealloc_noprof+0x6f", "connect+0x22 [leaklab]"]);
    assert!(connect.comes_before(&bigger));
    assert!(!connect.comes_before(&connect), "a tie keeps the one kept");
}
