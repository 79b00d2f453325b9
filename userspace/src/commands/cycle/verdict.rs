//! The verdict model of a cycle: what was expected, what kmemleak found,
//! and the rules that compare them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rules::{self, Object, Stated};
use crate::{
    analysis::{
        attribute::{Attribution, Example},
        findings::Finding,
    },
    kernel::{module::ModuleLayout, procfs::MemInfo},
    kmemleak::report::Report,
    ko::{PatternInfo, StatRecord, Variant},
};

/// What kmemleak found of a reference module.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReferenceVerdict {
    /// Its name.
    pub module: String,
    /// Objects it is known to leak.
    pub expected: u64,
    /// Reports attributed to it (a frame in its recorded sections).
    pub found: Count,
    /// How many of the expected objects are per-CPU objects.
    #[serde(default)]
    pub percpu_expected: u64,
    /// Reports of it at a per-CPU pointer that is a small number (x86_64).
    #[serde(default)]
    pub percpu_found: u64,
    /// Expected and found agree.
    pub ok: bool,
    /// Why not.
    pub reason: Option<String>,
    /// What an ok row has to say: the per-CPU objects kmemleak could not
    /// tell from a number ([`rules::reference_note`]).
    #[serde(default)]
    pub note: Option<String>,
}

/// A count of objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Count {
    /// Counts one more object of `size` bytes (saturating: sizes come from
    /// the kernel's text).
    pub fn add(&mut self, size: u64) {
        self.objects = self.objects.saturating_add(1);
        self.bytes = self.bytes.saturating_add(size);
    }
}

/// The verdict on one pattern and variant in one cycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Pattern name.
    pub pattern: String,
    /// Variant.
    pub variant: Variant,
    /// Runs asked for.
    pub runs: u32,
    /// What kmemleak should report.
    pub expected: Count,
    /// What it reported, attributed to this pattern and variant.
    pub found: Count,
    /// Sizes of the reported objects, sorted.
    pub sizes: Vec<u64>,
    /// Addresses of the reported objects.
    pub addresses: Vec<String>,
    /// What the module's stats say it leaked.
    pub stats_leaked: Count,
    /// Culprit frames of the reports, with counts.
    pub culprits: BTreeMap<String, u64>,
    /// One of the reports, as kmemleak printed it and as symbolized.
    pub example: Option<Example>,
    /// Objects the module lost that kmemleak did not report, with what
    /// kmemleak knows of each (`dump=`): `count` > 0 means it found a
    /// reference to the object somewhere.
    pub missed: Vec<Missed>,
    /// Whether everything matched.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// What the module states (not saved: its figures are above).
    #[serde(skip)]
    pub(super) stated: Stated,
    /// The reported objects (not saved: `addresses` and `sizes` above).
    #[serde(skip)]
    pub(super) objects: Vec<Object>,
}

/// A leaked object kmemleak did not report, and kmemleak's view of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Missed {
    /// The object's address.
    pub address: String,
    /// References kmemleak counted in its last scan.
    pub count: Option<i64>,
    /// kmemleak's object flags.
    pub flags: Option<String>,
    /// Checksum of the contents at the last scan.
    pub checksum: Option<u64>,
}

/// A report nobody asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unexpected {
    /// The report.
    pub report: Report,
    /// Where its frames point.
    pub attribution: Attribution,
}

/// One load/drive/unload cycle.
#[derive(Debug, Serialize, Deserialize)]
pub struct CycleRecord {
    /// 1-based.
    pub cycle: u32,
    /// One per pattern and variant driven.
    pub verdicts: Vec<Verdict>,
    /// Reports not explained by a driven pattern and variant.
    pub unexpected: Vec<Unexpected>,
    /// Notable kernel log lines, with those a pattern explains removed.
    pub kernel_log: Vec<Finding>,
    /// Kernel log lines a driven pattern explains (e.g. slab_cache's warning).
    pub expected_log: Vec<Finding>,
    /// The reference modules (calibration, negative control), when run.
    #[serde(default)]
    pub references: Vec<ReferenceVerdict>,
    /// Where the module's sections were loaded in this cycle, for
    /// `leaklab parse --ko --sections` later.
    pub layout: ModuleLayout,
    /// Scans run after the unload.
    pub scans: usize,
    /// Whether two scans in a row agreed (else the scan limit was reached
    /// with the set still changing, and the verdict is inconclusive).
    #[serde(default = "settled")]
    pub stable: bool,
    /// /proc/meminfo change over the cycle (KiB).
    pub meminfo_delta: MemInfo,
    /// /proc/slabinfo active-object changes over the cycle.
    pub slab_delta: BTreeMap<String, i64>,
    /// Whether this cycle went as expected.
    pub ok: bool,
}

impl CycleRecord {
    /// Why nothing could be judged in this cycle, if so.
    pub fn nothing_judged(&self) -> Option<String> {
        rules::cycle(self.verdicts.len() + self.references.len())
    }
}

/// A result saved before `stable` was recorded had settled: it was not
/// judged otherwise.
fn settled() -> bool {
    true
}

/// The whole run.
#[derive(Debug, Serialize, Deserialize)]
pub struct CycleRun {
    /// Schema name and version.
    pub schema: String,
    /// The running kernel.
    pub kernel: String,
    /// The catalogue as the module described it.
    pub patterns: Vec<PatternInfo>,
    /// Per cycle.
    pub cycles: Vec<CycleRecord>,
    /// Whether every cycle went as expected.
    pub ok: bool,
}

impl CycleRun {
    /// Reads a run saved with `--format json`.
    pub fn load(file: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a leaklab cycle or matrix result (--format json)",
                file.display()
            )
        })
    }

    /// The first cycle whose reports did not settle.
    pub fn unsettled(&self) -> Option<&CycleRecord> {
        self.cycles.iter().find(|c| !c.stable)
    }

    /// The run of `cycles` on this kernel, with the catalogue the module gave.
    pub(super) fn new(patterns: Vec<PatternInfo>, cycles: Vec<CycleRecord>) -> Self {
        Self {
            schema: "leaklab.cycle/1".into(),
            kernel: crate::kernel::procfs::kernel_release(),
            ok: !cycles.is_empty() && cycles.iter().all(|c| c.ok && c.stable),
            patterns,
            cycles,
        }
    }
}

/// The row of pattern `p`'s variant `v`, run `runs` times, before any
/// report is counted: `lost` names the objects its leaky runs lost and `st`
/// holds its stats.
pub(super) fn new_verdict(
    p: &PatternInfo,
    v: Variant,
    runs: u32,
    st: &StatRecord,
    lost: &[Object],
) -> Verdict {
    let expected = match v {
        Variant::Leaky => Count {
            objects: p.objects.saturating_mul(u64::from(runs)),
            bytes: p.bytes.saturating_mul(u64::from(runs)),
        },
        Variant::Fixed => Count::default(),
    };
    let stats_leaked = Count {
        objects: st.leaked,
        bytes: st.leaked_bytes,
    };
    Verdict {
        pattern: p.name.clone(),
        variant: v,
        runs,
        expected,
        found: Count::default(),
        sizes: Vec::new(),
        addresses: Vec::new(),
        stats_leaked,
        culprits: BTreeMap::new(),
        example: None,
        missed: Vec::new(),
        ok: false,
        reason: None,
        stated: Stated {
            expected,
            objects: match v {
                Variant::Leaky => lost.to_vec(),
                Variant::Fixed => Vec::new(),
            },
            stats: stats_leaked,
        },
        objects: Vec::new(),
    }
}

impl Verdict {
    /// Counts a report of `object` against this row.
    pub(super) fn count(&mut self, object: Object) {
        self.found.add(object.size);
        self.sizes.push(object.size);
        self.addresses.push(format!("{:#x}", object.address));
        self.objects.push(object);
    }
}

/// Judges one pattern and variant by the rules ([`rules::row`]).
pub(super) fn judge(v: &mut Verdict) {
    v.sizes.sort_unstable();
    v.reason = rules::row(v.variant, v.runs, &v.stated, &v.objects);
    v.ok = v.reason.is_none();
}

/// Judges a reference module ([`rules::reference`]).
pub(super) fn judge_reference(x: &mut ReferenceVerdict) {
    let expected = (x.expected, x.percpu_expected);
    let found = (x.found.objects, x.percpu_found);
    let small = rules::SMALL_PERCPU_POINTERS;
    x.reason = rules::reference(&x.module, expected, found, small);
    x.ok = x.reason.is_none();
    x.note =
        x.ok.then(|| rules::reference_note(expected, found, small))
            .flatten();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Outcome, Verdict as RunVerdict};

    fn pattern() -> PatternInfo {
        PatternInfo {
            name: "error_path".into(),
            description: String::new(),
            objects: 1,
            bytes: 256,
            after_unload: false,
            kmemleak: true,
            grows: false,
        }
    }

    fn record(verdicts: Vec<Verdict>, stable: bool) -> CycleRecord {
        let ok = rules::cycle(verdicts.len()).is_none() && verdicts.iter().all(|v| v.ok);
        CycleRecord {
            cycle: 1,
            verdicts,
            unexpected: Vec::new(),
            kernel_log: Vec::new(),
            expected_log: Vec::new(),
            references: Vec::new(),
            layout: ModuleLayout {
                name: "leaklab".into(),
                sections: Vec::new(),
                loader: None,
            },
            scans: 6,
            stable,
            meminfo_delta: MemInfo::default(),
            slab_delta: BTreeMap::new(),
            ok,
        }
    }

    /// The row of error_path leaky, one run, its object at 0x1000, judged
    /// on what kmemleak `found`.
    fn judged(found: &[Object]) -> Verdict {
        let lost = Object {
            address: 0x1000,
            size: 256,
        };
        let mut st = StatRecord::new("error_path".into(), Variant::Leaky);
        (st.leaked, st.leaked_bytes) = (1, 256);
        let mut v = new_verdict(&pattern(), Variant::Leaky, 1, &st, &[lost]);
        for o in found {
            v.count(*o);
        }
        judge(&mut v);
        v
    }

    #[test]
    fn a_row_and_its_run_follow_the_rules() {
        let lost = Object {
            address: 0x1000,
            size: 256,
        };
        let good = judged(&[lost]);
        assert!(good.ok, "{:?}", good.reason);
        let run = CycleRun::new(vec![pattern()], vec![record(vec![good], true)]);
        assert_eq!((run.ok, run.verdict()), (true, RunVerdict::Passed));
        assert_eq!(run.summary(), "as expected");

        // Another object of the same size is not the one the module lost.
        let other = judged(&[Object {
            address: 0x2000,
            size: 256,
        }]);
        assert!(!other.ok);
        assert!(other.reason.as_deref().unwrap().contains("0x2000"));
        let run = CycleRun::new(vec![pattern()], vec![record(vec![other], true)]);
        assert_eq!((run.ok, run.verdict()), (false, RunVerdict::Failed));
        // Nothing reported.
        assert!(!judged(&[]).ok);
    }

    #[test]
    fn an_empty_run_is_not_as_expected() {
        let run = CycleRun::new(Vec::new(), vec![record(Vec::new(), true)]);
        assert_eq!(run.verdict(), RunVerdict::Failed);
        assert!(
            run.summary().contains("nothing was judged"),
            "{}",
            run.summary()
        );
        let none = CycleRun::new(Vec::new(), Vec::new());
        assert_eq!(none.verdict(), RunVerdict::Failed);
    }

    #[test]
    fn a_window_that_did_not_settle_is_inconclusive() {
        let lost = Object {
            address: 0x1000,
            size: 256,
        };
        let run = CycleRun::new(vec![pattern()], vec![record(vec![judged(&[lost])], false)]);
        assert_eq!(run.verdict(), RunVerdict::Inconclusive);
        assert_eq!(RunVerdict::Inconclusive.exit_status(), 3);
        assert!(
            run.summary().starts_with("INCONCLUSIVE"),
            "{}",
            run.summary()
        );
        assert!(run.ktap().unwrap().contains("not ok 3 cycle1.settled"));
    }
}
