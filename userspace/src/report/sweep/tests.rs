// SPDX-License-Identifier: GPL-2.0
//! The sweep document's rules and renderings, on rows made by hand and on
//! a real check.

use super::*;

fn row(module: &str, status: Status, culprit: Option<&str>) -> Row {
    let mut r = Row::without_check(module, &format!("kernel/{module}.ko"), status, "x".into());
    if let Some(c) = culprit {
        r.detail = None;
        r.objects = 2;
        r.bytes = 64;
        r.leaks.push(SweepLeak {
            title: Some(format!("memory leak in {c}")),
            culprit: Some(format!("{c}+0x10")),
            line: None,
            objects: 2,
            bytes: 64,
            frames: Vec::new(),
            reason: None,
        });
    }
    r
}

fn sweep(rows: Vec<Row>) -> Sweep {
    Sweep {
        schema: "leaklab.sweep/1".into(),
        kernel: "6.12.118+deb12-amd64".into(),
        cycles: 2,
        protocol: "leaklab".into(),
        detectors: vec![Detector::Trace],
        rows,
        jobs: 2,
        seconds: 1.0,
    }
}

#[test]
fn modules_that_cannot_load_pass_and_a_leak_fails() {
    let calm = sweep(vec![
        row("md4", Status::Clean, None),
        row("e1000e", Status::DidNotLoad, None),
        row("ext4", Status::Skipped, None),
    ]);
    assert_eq!(calm.verdict(), Verdict::Passed);
    let mut leaky = calm.clone();
    leaky
        .rows
        .push(row("leaky_driver", Status::Leaked, Some("probe_leaky")));
    assert_eq!(leaky.verdict(), Verdict::Failed);
    assert!(
        leaky.summary().starts_with("FAIL: leaky_driver ("),
        "{}",
        leaky.summary()
    );
    // Not found again alone: it does not fail the sweep.
    leaky.rows[3].confirmed = Some(false);
    assert_eq!(leaky.verdict(), Verdict::Passed);
    let mut crashed = calm.clone();
    crashed.rows.push(row("oopser", Status::Crashed, None));
    assert_eq!(crashed.verdict(), Verdict::Failed);
    let mut unsure = calm;
    unsure.rows.push(row("lossy", Status::Inconclusive, None));
    assert_eq!(unsure.verdict(), Verdict::Inconclusive);
}

#[test]
fn one_culprit_shows_once_with_every_module_that_hit_it() {
    let s = sweep(vec![
        row("a", Status::Leaked, Some("shared_helper")),
        row("b", Status::Leaked, Some("shared_helper")),
        row("c", Status::Leaked, Some("c_probe")),
        row("d", Status::Clean, None),
    ]);
    assert_eq!(
        s.by_culprit(),
        [
            (
                "memory leak in shared_helper".to_string(),
                vec!["a".to_string(), "b".to_string()]
            ),
            ("memory leak in c_probe".to_string(), vec!["c".to_string()]),
        ]
    );
}

#[test]
fn each_module_is_a_test() {
    let s = sweep(vec![
        row("md4", Status::Clean, None),
        row("e1000e", Status::DidNotLoad, None),
        row("leaky-driver", Status::Leaked, Some("probe_leaky")),
    ]);
    let k = s.ktap().unwrap();
    assert!(k.contains("ok 1 leak_md4\n"), "{k}");
    assert!(k.contains("ok 2 leak_e1000e # SKIP x\n"), "{k}");
    assert!(k.contains("not ok 3 leak_leaky-driver # LEAKED"), "{k}");
}

/// A real check of the C example driver (x86_64), its leaks given
/// `frames`.
fn check_with(frames: &[&str]) -> Check {
    let mut c: Check = serde_json::from_str(include_str!(
        "../../../tests/data/check/leaky_driver-error_path-x86_64.json"
    ))
    .unwrap();
    let frames: Vec<String> = frames.iter().map(|f| f.to_string()).collect();
    for l in c
        .leaks
        .iter_mut()
        .chain(c.trace.iter_mut().flat_map(|t| t.leaks.iter_mut()))
    {
        l.frames = frames.clone();
    }
    c
}

#[test]
fn the_kernels_own_state_is_listed_apart_and_the_module_is_clean() {
    let own = Row::of_check("extra/leaky_driver.ko", &check_with(&[]), 1.0);
    assert_eq!((own.status, own.objects), (Status::Leaked, 1));
    assert!(own.kernel_wide.is_empty());

    let pernet = check_with(&[
        "__kmalloc_noprof+0x22c",
        "net_alloc_generic+0x1d",
        "ops_init+0xc1",
        "register_pernet_operations+0x128",
        "init_nfs_fs+0x35 [nfs]",
    ]);
    let r = Row::of_check("kernel/fs/nfs/nfs.ko", &pernet, 1.0);
    assert_eq!((r.status, r.objects, r.bytes), (Status::Clean, 0, 0));
    assert!(r.leaks.is_empty());
    assert_eq!(r.kernel_wide.len(), 1);
    let s = sweep(vec![r]);
    assert_eq!(s.verdict(), Verdict::Passed);
    let human = s.human();
    assert!(
        human.contains("the kernel's own state, not held against the modules:\n  leaky_driver: the network namespace's generic-pointer array"),
        "{human}"
    );
}

/// A row kept before a kind was known (a resumed sweep, a LAVA log) reads
/// as one swept today: the known leak goes apart and the row is clean; a
/// row with a leak of its own beside it stays leaked, by that leak alone.
#[test]
fn rows_kept_before_a_kind_was_known_are_sorted_again() {
    let mut kept = row("aoe", Status::Leaked, Some("tx"));
    kept.confirmed = Some(true);
    kept.leaks[0].frames = [
        "pcpu_alloc_noprof+0x58d",
        "netdev_core_stats_inc+0x45",
        "tx+0x56 [aoe]",
    ]
    .map(String::from)
    .to_vec();
    let today = kept.clone().with_known();
    assert_eq!(
        (today.status, today.objects, today.bytes),
        (Status::Clean, 0, 0)
    );
    assert_eq!(today.confirmed, None);
    assert_eq!(today.kernel_wide.len(), 1);
    assert!(today.kernel_wide[0]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("drop counters")));
    assert!(!today.fails());

    let mut both = kept.clone();
    both.leaks
        .push(row("aoe", Status::Leaked, Some("new_skb")).leaks.remove(0));
    let today = both.with_known();
    assert_eq!(
        (today.status, today.objects, today.bytes),
        (Status::Leaked, 2, 64)
    );
    assert_eq!(today.leaks.len(), 1);
    assert_eq!(today.confirmed, Some(true));
    assert!(today.fails());
}
