//! The verdict model of a cycle: what was expected, what kmemleak found,
//! and the rules that compare them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Expected and found agree.
    pub ok: bool,
    /// Why not.
    pub reason: Option<String>,
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
    /// /proc/meminfo change over the cycle (KiB).
    pub meminfo_delta: MemInfo,
    /// /proc/slabinfo active-object changes over the cycle.
    pub slab_delta: BTreeMap<String, i64>,
    /// Whether this cycle went as expected.
    pub ok: bool,
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

    /// The run of `cycles` on this kernel, with the catalogue the module gave.
    pub(super) fn new(patterns: Vec<PatternInfo>, cycles: Vec<CycleRecord>) -> Self {
        Self {
            schema: "leaklab.cycle/1".into(),
            kernel: crate::kernel::procfs::kernel_release(),
            ok: cycles.iter().all(|c| c.ok),
            patterns,
            cycles,
        }
    }
}

pub(super) fn new_verdict(p: &PatternInfo, v: Variant, runs: u32, st: &StatRecord) -> Verdict {
    let expected = match v {
        Variant::Leaky => Count {
            objects: p.objects.saturating_mul(u64::from(runs)),
            bytes: p.bytes.saturating_mul(u64::from(runs)),
        },
        Variant::Fixed => Count::default(),
    };
    Verdict {
        pattern: p.name.clone(),
        variant: v,
        runs,
        expected,
        found: Count::default(),
        sizes: Vec::new(),
        addresses: Vec::new(),
        stats_leaked: Count {
            objects: st.leaked,
            bytes: st.leaked_bytes,
        },
        culprits: BTreeMap::new(),
        example: None,
        missed: Vec::new(),
        ok: false,
        reason: None,
    }
}

/// Judges one pattern and variant: kmemleak must have reported what the
/// module says it lost, and the module's stats must agree.
pub(super) fn judge(v: &mut Verdict) {
    v.reason = if v.found.objects != v.expected.objects {
        Some(format!(
            "kmemleak reported {} objects, expected {}",
            v.found.objects, v.expected.objects
        ))
    } else if v.found.bytes != v.expected.bytes {
        Some(format!(
            "kmemleak reported {} bytes, expected {}",
            v.found.bytes, v.expected.bytes
        ))
    } else if v.stats_leaked != v.found {
        Some(format!(
            "the module's stats say {} objects / {} bytes leaked, kmemleak found {} / {}",
            v.stats_leaked.objects, v.stats_leaked.bytes, v.found.objects, v.found.bytes
        ))
    } else {
        None
    };
    v.ok = v.reason.is_none();
}

/// Judges a reference module: kmemleak must report exactly the objects it
/// is known to leak.
pub(super) fn judge_reference(x: &mut ReferenceVerdict) {
    x.ok = x.found.objects == x.expected;
    x.reason = (!x.ok).then(|| {
        format!(
            "kmemleak reported {} objects of {}, expected {}",
            x.found.objects, x.module, x.expected
        )
    });
}
