// SPDX-License-Identifier: GPL-2.0
//! `leaklab cycle`: every pattern leaky and fixed, caught exactly; the fixed
//! variants a hundred times, leaving nothing behind.

use crate::{
    common::{assert_whole_catalogue, Guest},
    views::{CycleRun, Variant},
};

/// Sizes each sample's documentation states for one leaky run, where they do
/// not depend on the architecture (device_ref and arc_cycle do).
fn stated_sizes(pattern: &str) -> Option<Vec<u64>> {
    Some(match pattern {
        "error_path" => vec![256],
        "module_exit" => vec![512],
        "conditional_free" => vec![128],
        "slab_cache" => vec![96],
        "rust_forget" => vec![64, 128],
        _ => return None,
    })
}

fn check_leaky_and_fixed(arch: &str) {
    const RUNS: u64 = 5;
    let (status, run) = Guest::new(arch, "cycle").json::<CycleRun>(&["cycle", "-n", "5"]);
    // Every leak caught exactly, nothing else: verdict ok, exit 0.
    assert!(run.ok, "{run:#}");
    assert_eq!(status, Some(0), "{run:#}");
    // Every pattern ran (the run's list is the catalogue in samples/), and
    // the one the kernel warns about below is among them.
    assert_whole_catalogue(run.pattern_names());
    assert!(run.pattern_names().any(|p| p == "slab_cache"), "{run}");
    let cycle = run.cycle();
    assert_eq!(cycle.unexpected.len(), 0, "{run:#}");
    assert_eq!(cycle.kernel_log.len(), 0, "{run:#}");
    for p in &run.patterns {
        let name = p.name.as_str();
        let per_run = p.objects;
        assert!(per_run > 0, "{name} states no leak per run");
        let leaky = cycle.verdict(name, Variant::Leaky);
        if p.grows {
            // Growth while loaded, judged by the trace (crate::trace): its
            // runs are more than these, and nothing is left at unload.
            let t = leaky
                .trace
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: {leaky:#?}"));
            assert!(t.ok && t.growth.is_some(), "{name}: {leaky:#?}");
            assert_eq!(
                (leaky.found.objects, t.found.objects),
                (0, 0),
                "{name}: {leaky:#?}"
            );
            continue;
        }
        // The module's own accounting: exactly the stated leak per run.
        assert_eq!(
            leaky.stats_leaked.objects,
            per_run * RUNS,
            "{name}: {leaky:#?}"
        );
        assert_eq!(
            leaky.stats_leaked.bytes,
            p.bytes * RUNS,
            "{name}: {leaky:#?}"
        );
        // kmemleak reported exactly what the module leaked, object for
        // object (the addresses the module recorded as lost), where it can
        // see it; the trace found it too, and alone where kmemleak cannot.
        let traced = leaky.trace.as_ref().map(|t| t.found);
        assert_eq!(traced, Some(leaky.stats_leaked), "{name}: {leaky:#?}");
        if p.kmemleak {
            assert_eq!(leaky.found, leaky.stats_leaked, "{name}: {leaky:#?}");
        } else {
            assert_eq!(leaky.found.objects, 0, "{name}: {leaky:#?}");
        }
        assert_eq!(leaky.missed.len(), 0, "{name}: {leaky:#?}");
        if let Some(stated) = stated_sizes(name) {
            assert!(
                leaky.sizes.iter().all(|s| stated.contains(s)),
                "{name}: sizes {:?}, stated {stated:?}",
                leaky.sizes
            );
        }
        // Every culprit frame is in this pattern's sample code, named with
        // its line in samples/<pattern>.rs (the module is unloaded by then).
        assert!(!leaky.culprits.is_empty(), "{name}: no culprit frames");
        for c in leaky.culprits.keys() {
            assert!(
                c.contains(&format!("leaklab::samples::{name}::")),
                "{name}: culprit {c}"
            );
            assert!(
                c.contains(&format!(" at samples/{name}.rs:")),
                "{name}: culprit {c}"
            );
        }
        let example = leaky
            .example
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no example report: {leaky:#?}"));
        for f in &example.symbolized {
            if f.contains("[leaklab]") {
                assert!(f.contains(" at "), "{name}: no source line in {f}");
            }
        }
        let fixed = cycle.verdict(name, Variant::Fixed);
        assert_eq!(fixed.found.objects, 0, "{name}: {fixed:#?}");
        assert_eq!(fixed.stats_leaked.objects, 0, "{name}: {fixed:#?}");
    }
    // The slab_cache leak is the one that makes the kernel warn, once a run.
    let warned = cycle
        .expected_log
        .iter()
        .filter(|f| f.kind == "slab_still_has_objects")
        .count();
    assert_eq!(warned as u64, RUNS, "{run:#}");
}

on_both_arches!(check_leaky_and_fixed: leaky_and_fixed_x86_64, leaky_and_fixed_arm64);

fn check_fixed_hundred(arch: &str) {
    let (status, run) = Guest::new(arch, "fixed100").json::<CycleRun>(&[
        "cycle",
        "--variant",
        "fixed",
        "-n",
        "100",
    ]);
    assert_eq!(status, Some(0), "{run:#}");
    let cycle = run.cycle();
    for v in &cycle.verdicts {
        assert_eq!(v.runs, 100);
        assert_eq!(v.found.objects, 0, "{v:#?}");
    }
    assert_eq!(cycle.unexpected.len(), 0, "kmemleak not empty: {run:#}");
    // Slab counts (after a shrink of every cache) back where they were: no
    // leaklab cache survives, and no cache moved by anything near the 100
    // objects one leaked object per run would add. The tool's own process
    // (its mappings, sysfs and debugfs inodes) moves a few caches a little.
    for (cache, &delta) in &cycle.slab_delta {
        if cache == "kmemleak_object" {
            // kmemleak's own metadata, one per tracked object, freed after an
            // RCU grace period: it lags behind every free of the 100 runs.
            continue;
        }
        if [
            "anon_vma",
            "anon_vma_chain",
            "vm_area_struct",
            "vma_lock",
            "maple_node",
        ]
        .contains(&cache.as_str())
        {
            // The tool's own process mappings (and the maple tree that
            // indexes them): the allocation trace's ledger grows its heap
            // while the run goes on. No sample allocates here.
            continue;
        }
        assert!(
            !cache.contains("leaklab"),
            "cache {cache} survived the unload"
        );
        assert!(delta < 32, "{cache} grew by {delta}: {run:#}");
    }
}

on_both_arches!(check_fixed_hundred: fixed_hundred_times_x86_64, fixed_hundred_times_arm64);
