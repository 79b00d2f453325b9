// SPDX-License-Identifier: GPL-2.0
//! `leaklab sweep` over a LAVA lab: a few of Debian 12's own 6.12 x86_64
//! modules and the planted leak (the C example driver dropped into the
//! tree) split into two shard jobs (`--lava-jobs 2`), each run with LAVA's
//! own dispatcher as `make lava` runs a job, their logs merged into one
//! sweep (`--lava-results`): the plant leaked at its line, not confirmed
//! alone; the other rows a result; and LAVA's own cases, read with LAVA's
//! YAML loader, one a module with the plant's failed.

use std::{fs, path::Path};

use crate::{
    check::first_statement,
    common::{build_dir, leaklab, Doc},
    lava::{lava_py, read_log, text},
    sweep::planted_tree,
    views::Sweep,
};

/// The modules, one shard each of the first two and the last two.
const MODULES: [&str; 4] = ["md4", "dummy", "xen_blkfront", "leaky_driver"];

#[test]
#[ignore = "boots QEMU: run through 'make test'"]
fn a_sweep_sharded_over_lava_jobs_merges_into_one_table() {
    let debian = build_dir().join("debian-6.12-x86_64");
    let tree = planted_tree(&debian, "sweep-tree-lava-x86_64");
    let out = build_dir().join("results").join("sweep-lava-x86_64");
    let _ = fs::remove_dir_all(&out);
    let (b, k, t, o) = (
        build_dir().display().to_string(),
        debian.join("kernel-image").display().to_string(),
        tree.display().to_string(),
        out.display().to_string(),
    );
    let mut args = vec![
        "sweep",
        "--in-guests",
        "--arch",
        "x86_64",
        "--build-dir",
        &b,
        "--kernel",
        &k,
        "--modules-dir",
        &t,
        "--out",
        &o,
        "--param",
        "leaky_driver:bug=error_path",
        "--lava-jobs",
        "2",
    ];
    args.extend(MODULES);
    let wrote = leaklab(&args);
    assert!(wrote.status.success(), "{}", text(&wrote));
    let jobs: Vec<String> = String::from_utf8(wrote.stdout.clone())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(jobs.len(), 2, "{}", text(&wrote));

    // LAVA's validator takes them.
    let valid = lava_py(
        &[
            &["validate"],
            &jobs.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ]
        .concat(),
    );
    assert!(valid.status.success(), "{}", text(&valid));

    // Each shard's job run by LAVA's lava-run, its log saved beside it.
    let mut shards = Vec::new();
    for job in &jobs {
        let dir = Path::new(job).parent().unwrap();
        let run = dir.join("run");
        let ran = lava_py(&["run", job, run.to_str().unwrap()]);
        eprintln!("{job}: {}", text(&ran));
        fs::copy(run.join("lava.log"), dir.join("lava.log")).expect("lava-run left no log");
        let listed = fs::read_to_string(dir.join("modules.list")).unwrap();
        shards.push((listed, read_log(&dir.join("lava.log"))));
    }
    let listed: Vec<&str> = shards.iter().flat_map(|(l, _)| l.lines()).collect();
    assert_eq!(listed.len(), MODULES.len(), "{listed:?}");

    // LAVA's own cases: one a module, each as the sweep judged it, and
    // leaklab's exit status.
    for (list, log) in &shards {
        assert_eq!(log.job, "pass", "{list}");
        let mut plant = false;
        for m in list.lines() {
            let case = (String::from("leaklab-sweep"), format!("leak_{m}"));
            let want = if m == "leaky_driver" { "fail" } else { "pass" };
            assert_eq!(
                log.cases.get(&case).map(String::as_str),
                Some(want),
                "{m}: {:?}",
                log.cases
            );
            plant |= m == "leaky_driver";
        }
        let exit = log.cases.get(&("leaklab".into(), "exit".into()));
        assert_eq!(
            exit.map(String::as_str),
            Some(if plant { "fail" } else { "pass" }),
            "{list}"
        );
    }

    // The merge: one table of every module, the plant's leak at its line,
    // not confirmed alone; exit 1 because of it.
    let merged = leaklab(&["sweep", "--lava-results", &o, "--format", "json"]);
    let doc: Doc<Sweep> = Doc::from_output(&merged);
    assert_eq!(merged.status.code(), Some(1), "{doc:#}");
    assert!(doc.kernel.ends_with("+deb12-amd64"), "{doc:#}");
    let names: Vec<&str> = doc.rows.iter().map(|r| r.module.as_str()).collect();
    assert_eq!(names, listed, "the tree's order: {doc:#}");
    for r in &doc.rows {
        match r.module.as_str() {
            "leaky_driver" => {
                assert_eq!(r.status, "leaked", "{doc:#}");
                assert_eq!(r.confirmed, None, "{doc:#}");
                assert_eq!(r.objects, 2, "two cycles: {doc:#}");
                let at = first_statement("error_path_leaky");
                assert_eq!(r.leaks[0].line.as_deref(), Some(at.as_str()), "{doc:#}");
            }
            "xen_blkfront" => assert_eq!(r.status, "did_not_load", "{doc:#}"),
            _ => assert_eq!(r.status, "clean", "{doc:#}"),
        }
    }
    let said = String::from_utf8_lossy(&merged.stderr);
    assert!(said.contains("not confirmed alone"), "{said}");
    for m in MODULES {
        assert!(out.join("rows").join(format!("{m}.json")).is_file(), "{m}");
    }
    let ktap = leaklab(&["sweep", "--lava-results", &o, "--format", "ktap"]);
    let ktap = String::from_utf8_lossy(&ktap.stdout);
    assert!(
        ktap.contains("not ok 4 leak_leaky_driver # LEAKED"),
        "{ktap}"
    );
}
