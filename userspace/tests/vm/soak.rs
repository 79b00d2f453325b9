// SPDX-License-Identifier: GPL-2.0
//! `leaklab soak`, short form (`make soak` runs 1000 cycles): the fixed
//! variants leave kmemleak empty and memory within its bound, one leaky
//! sample a cycle grows at the rate the module states, and a module whose
//! leaky sample frees after all (`make sabotaged`) fails the leaky soak.

use crate::{
    common::{build_dir, Doc, Guest},
    views::SoakRun,
};

/// Cycles of each soak.
const CYCLES: &str = "100";

/// The pattern leaked each cycle: one 256-byte object kmemleak sees a run.
const LEAKY: &str = "error_path";

/// Its runs a cycle: in 100 cycles, Slab's noise of some 10 KiB between
/// samples (and of about 100 objects in kmemleak's records) would hide a
/// leak of 256 bytes a cycle to within the soak's 25%.
const LEAKY_RUNS: &str = "20";

/// Boots one `arch` guest with the sabotaged module as /root/leaklab.ko
/// beside the real one, runs the three soaks, and returns each one's exit
/// status and document, by label.
fn soaks(arch: &str) -> Vec<(String, i32, Doc<SoakRun>)> {
    let sabotaged = build_dir().join(arch).join("sabotaged").join("leaklab.ko");
    let soak = format!("leaklab soak --cycles {CYCLES} --every 5 --format json");
    let runs = [
        ("fixed", soak.clone()),
        (
            "leaky",
            format!("{soak} --leaky {LEAKY} --leaky-runs {LEAKY_RUNS}"),
        ),
        (
            "sabotaged",
            format!("{soak} --leaky {LEAKY} --leaky-runs {LEAKY_RUNS} --module /root/leaklab.ko"),
        ),
    ];
    let mut script = String::new();
    for (label, command) in &runs {
        script += &format!(
            "{command} > /tmp/out 2> /tmp/err; st=$?\ncat /tmp/err >&2\necho \"=== {label} $st\"\ncat /tmp/out\n"
        );
    }
    let dir = build_dir()
        .join("results")
        .join(format!("soak-short-{arch}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("soak.sh");
    std::fs::write(&path, script).unwrap();
    let (stdout, stderr) = Guest::new(arch, "soak")
        .vm_args(&[
            "--file",
            path.to_str().unwrap(),
            "--file",
            sabotaged.to_str().unwrap(),
        ])
        .run_ok(&["sh", "/root/soak.sh"]);
    stdout
        .split("=== ")
        .skip(1)
        .map(|part| {
            let (head, json) = part.split_once('\n').unwrap();
            let (label, status) = head.split_once(' ').unwrap();
            let doc = Doc::<SoakRun>::parse(json, &stderr);
            (label.to_string(), status.parse().unwrap(), doc)
        })
        .collect()
}

pub fn check_soak(arch: &str) {
    let runs = soaks(arch);
    let get = |label: &str| {
        runs.iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, status, doc)| (*status, doc))
            .unwrap_or_else(|| panic!("no {label} soak"))
    };
    let (status, fixed) = get("fixed");
    assert_eq!(status, 0, "{fixed:#}");
    assert_eq!(fixed.reported, 0, "{fixed:#}");
    assert!(fixed.problems.is_empty(), "{fixed:#}");
    assert_eq!(fixed.samples.len(), 21, "{fixed:#}");

    let (status, leaky) = get("leaky");
    assert_eq!(leaky.leaked, 2000, "{leaky:#}");
    assert_eq!(leaky.leak_per_cycle, 5120, "{leaky:#}");
    // The leak's slope is within the soak's bound. kmemleak may miss one
    // object of 2000 to a stale pointer (seen once on arm64: 1999 of
    // 2000), which the soak's own bound then reports, and exits 1 for.
    assert!(
        !leaky
            .problems
            .iter()
            .any(|p| p.starts_with("the leak grew")),
        "{leaky:#}"
    );
    assert!(leaky.reported + 2 >= leaky.leaked, "{leaky:#}");
    let expected = if leaky.problems.is_empty() { 0 } else { 1 };
    assert_eq!(status, expected, "{leaky:#}");

    // The sabotaged module says it leaked; kmemleak finds nothing and the
    // slope is flat: both bounds fail.
    let (status, sabotaged) = get("sabotaged");
    assert_eq!(status, 1, "{sabotaged:#}");
    assert_eq!(sabotaged.reported, 0, "{sabotaged:#}");
    assert!(
        sabotaged
            .problems
            .iter()
            .any(|p| p == "kmemleak reported 0 of 2000 leaked objects"),
        "{sabotaged:#}"
    );
    assert!(
        sabotaged
            .problems
            .iter()
            .any(|p| p.starts_with("the leak grew")),
        "{sabotaged:#}"
    );
}
