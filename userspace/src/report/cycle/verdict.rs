// SPDX-License-Identifier: GPL-2.0
//! The verdict model of a cycle: what was expected, what kmemleak found,
//! and the rules that compare them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::rules::Count;
use super::rules::{self, Object, Stated};
use crate::{
    analysis::detector::Detector,
    analysis::{
        attribute::{Attribution, Example},
        findings::Finding,
    },
    kernel::{module::ModuleLayout, procfs::MemInfo},
    kmemleak::report::Report,
    ko::{PatternInfo, StatRecord, Variant},
    output::schema::Schema,
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
    /// What the allocation trace found of it, when it ran: allocations and
    /// vmalloc areas its stack or caller tie to it.
    #[serde(default)]
    pub trace_found: Option<Count>,
    /// Expected and found agree.
    pub ok: bool,
    /// Why not.
    pub reason: Option<String>,
    /// What an ok row has to say: the per-CPU objects kmemleak could not
    /// tell from a number ([`rules::reference_note`]).
    #[serde(default)]
    pub note: Option<String>,
}

/// The culprit of a row's reports: the function that allocated them and,
/// where its frame resolved, the source line. It reads, and is keyed in
/// the JSON document as, `function at file.c:LINE`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Culprit {
    /// The function (`error_path::probe_leaky+0x2c/0x90 [leaklab]`).
    pub function: String,
    /// Its source line, when known.
    pub line: Option<String>,
}

impl std::fmt::Display for Culprit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.line {
            Some(line) => write!(f, "{} at {line}", self.function),
            None => f.write_str(&self.function),
        }
    }
}

impl Serialize for Culprit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Culprit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.split_once(" at ") {
            Some((function, line)) => Self {
                function: function.into(),
                line: Some(line.into()),
            },
            None => Self {
                function: text,
                line: None,
            },
        })
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
    pub culprits: BTreeMap<Culprit, u64>,
    /// One of the reports, as kmemleak printed it and as symbolized.
    pub example: Option<Example>,
    /// Objects the module lost that kmemleak did not report, with what
    /// kmemleak knows of each (`dump=`): `count` > 0 means it found a
    /// reference to the object somewhere.
    pub missed: Vec<Missed>,
    /// Whether everything matched, by every detector that ran.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Whether kmemleak judged this row (the fields above are its column).
    #[serde(default = "judged_by_kmemleak")]
    pub kmemleak: bool,
    /// The allocation trace's column, when it ran.
    #[serde(default)]
    pub trace: Option<TraceColumn>,
    /// Why one detector sees this leak and the other cannot, when so.
    #[serde(default)]
    pub blind: Option<String>,
    /// What the module states for kmemleak (not saved: its figures are above).
    #[serde(skip)]
    pub(crate) stated: Stated,
    /// What the trace should find after the unload (not saved).
    #[serde(skip)]
    pub(crate) trace_stated: Stated,
    /// The reported objects (not saved: `addresses` and `sizes` above).
    #[serde(skip)]
    pub(crate) objects: Vec<Object>,
}

/// The allocation trace of one cycle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Events read.
    pub events: u64,
    /// Events lost to a full ring buffer: the cycle is inconclusive then.
    pub lost: u64,
    /// Allocations an allocator made for itself on a module's behalf (a new
    /// slab, kmemleak's metadata, a leaked cache's own structures): not
    /// counted.
    pub internal: u64,
    /// vmalloc areas a module left.
    pub vmalloc_areas: u64,
    /// Outstanding allocations of a module that no driven pattern and
    /// variant explains.
    pub unexpected: Vec<Unexpected>,
}

/// A result saved before the trace detector was judged by kmemleak.
fn judged_by_kmemleak() -> bool {
    true
}

/// What the allocation trace found of one pattern and variant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TraceColumn {
    /// What it should find outstanding after the unload.
    pub expected: Count,
    /// What it found.
    pub found: Count,
    /// Sizes of the allocations found, sorted.
    pub sizes: Vec<u64>,
    /// Growth while loaded, for a pattern whose leak stays referenced.
    pub growth: Option<Growth>,
    /// Whether it matched.
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// The allocations found (not saved: `sizes` above).
    #[serde(skip)]
    pub(crate) objects: Vec<Object>,
}

/// A pattern's outstanding allocations while the module is loaded, after
/// one batch of runs and after a second batch as long: the slope is what
/// each run adds and never gives back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Growth {
    /// Runs in each batch.
    pub runs: u32,
    /// What the module says one run keeps for good (0 for a bounded cache).
    pub stated_per_run: Count,
    /// Outstanding after the first batch.
    pub first: Count,
    /// Outstanding after the second.
    pub second: Count,
}

impl Growth {
    /// Objects and bytes each run of the second batch added.
    pub fn per_run(&self) -> (f64, f64) {
        let runs = f64::from(self.runs.max(1));
        (
            (self.second.objects as f64 - self.first.objects as f64) / runs,
            (self.second.bytes as f64 - self.first.bytes as f64) / runs,
        )
    }

    /// Why the growth is not what the module states, if it is not.
    pub fn reason(&self) -> Option<String> {
        let (objects, bytes) = self.per_run();
        let want = self.stated_per_run;
        (objects != want.objects as f64 || bytes != want.bytes as f64).then(|| {
            format!(
                "grew by {objects} objects / {bytes} bytes a run while loaded ({} -> {} objects over {} runs), the module states {} / {}",
                self.first.objects, self.second.objects, self.runs, want.objects, want.bytes
            )
        })
    }
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
    /// The allocation trace's account of the cycle, when it ran.
    #[serde(default)]
    pub trace: Option<TraceRecord>,
    /// Whether this cycle went as expected.
    pub ok: bool,
}

impl CycleRecord {
    /// Whether the detectors' findings can be trusted: kmemleak's reports
    /// settled and the trace lost no event.
    pub fn conclusive(&self) -> bool {
        self.stable && self.trace.as_ref().is_none_or(|t| t.lost == 0)
    }

    /// Why nothing could be judged in this cycle, if so.
    pub fn nothing_judged(&self) -> Option<String> {
        rules::cycle(self.verdicts.len() + self.references.len())
    }
}

fn kmemleak_only() -> Vec<Detector> {
    vec![Detector::Kmemleak]
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
    /// The detectors that judged (a result saved before there was a
    /// choice: kmemleak).
    #[serde(default = "kmemleak_only")]
    pub detectors: Vec<Detector>,
    /// Per cycle.
    pub cycles: Vec<CycleRecord>,
    /// Whether every cycle went as expected.
    pub ok: bool,
}

impl CycleRun {
    /// The first cycle whose reports did not settle, or whose trace lost
    /// events.
    pub fn unsettled(&self) -> Option<&CycleRecord> {
        self.cycles.iter().find(|c| !c.conclusive())
    }

    /// The run of `cycles` on this kernel, with the catalogue the module gave.
    pub(crate) fn new(
        patterns: Vec<PatternInfo>,
        cycles: Vec<CycleRecord>,
        detectors: Vec<Detector>,
    ) -> Self {
        Self {
            schema: Schema::Cycle.name().into(),
            detectors,
            kernel: crate::kernel::procfs::kernel_release(),
            ok: !cycles.is_empty() && cycles.iter().all(|c| c.ok && c.conclusive()),
            patterns,
            cycles,
        }
    }
}

/// The row of pattern `p`'s variant `v`, run `runs` times, before any
/// report is counted: `lost` names the objects its leaky runs lost and `st`
/// holds its stats. `detectors` says which detectors judge it (kmemleak,
/// trace).
pub(crate) fn new_verdict(
    p: &PatternInfo,
    v: Variant,
    runs: u32,
    st: &StatRecord,
    lost: &[Object],
    detectors: (bool, bool),
) -> Verdict {
    let leak = match v {
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
    let stated = Stated {
        expected: leak,
        objects: match v {
            Variant::Leaky => lost.to_vec(),
            Variant::Fixed => Vec::new(),
        },
        stats: stats_leaked,
    };
    // What is left after the unload: nothing of a leak that stays
    // referenced (it is freed at unload); pages are found by the trace
    // alone, by count and bytes (it names them by physical address).
    let (at_unload, blind) = if p.grows {
        (
            Stated::default(),
            (v == Variant::Leaky).then(|| {
                "referenced: the objects stay reachable while the module is loaded, so kmemleak never reports them; the trace sees them grow".to_string()
            }),
        )
    } else if !p.kmemleak {
        (
            Stated {
                objects: Vec::new(),
                ..stated.clone()
            },
            (v == Variant::Leaky).then(|| {
                "pages: kmemleak does not track the page allocator; only the trace sees this leak".to_string()
            }),
        )
    } else {
        (stated.clone(), None)
    };
    let kmemleak_stated = if p.kmemleak && !p.grows {
        stated
    } else {
        Stated::default()
    };
    Verdict {
        pattern: p.name.clone(),
        variant: v,
        runs,
        expected: kmemleak_stated.expected,
        found: Count::default(),
        sizes: Vec::new(),
        addresses: Vec::new(),
        stats_leaked,
        culprits: BTreeMap::new(),
        example: None,
        missed: Vec::new(),
        ok: false,
        reason: None,
        kmemleak: detectors.0,
        trace: detectors.1.then(|| TraceColumn {
            expected: at_unload.expected,
            growth: p.grows.then(|| Growth {
                stated_per_run: match v {
                    Variant::Leaky => Count {
                        objects: p.objects,
                        bytes: p.bytes,
                    },
                    Variant::Fixed => Count::default(),
                },
                ..Growth::default()
            }),
            ..TraceColumn::default()
        }),
        blind,
        stated: kmemleak_stated,
        trace_stated: at_unload,
        objects: Vec::new(),
    }
}

impl Verdict {
    /// Counts a report of `object` against this row.
    pub(crate) fn count(&mut self, object: Object) {
        self.found.add(object.size);
        self.sizes.push(object.size);
        self.addresses.push(format!("{:#x}", object.address));
        self.objects.push(object);
    }

    /// Counts an allocation the trace found outstanding against this row.
    pub(crate) fn count_traced(&mut self, object: Object) {
        if let Some(t) = &mut self.trace {
            t.found.add(object.size);
            t.sizes.push(object.size);
            t.objects.push(object);
        }
    }
}

/// The variant whose rule judges what is left after the unload: a leaky
/// row that states nothing left (its leak stays referenced, or is invisible
/// to the detector) is judged as a fixed one: nothing may be left.
fn unload_rule(v: Variant, stated: &Stated) -> Variant {
    match stated.expected.objects {
        0 => Variant::Fixed,
        _ => v,
    }
}

/// Judges one pattern and variant by the rules ([`rules::row`]), by each
/// detector that ran.
pub(crate) fn judge(v: &mut Verdict) {
    v.sizes.sort_unstable();
    let mut reasons = Vec::new();
    if v.kmemleak {
        let rule = unload_rule(v.variant, &v.stated);
        reasons.extend(rules::row(rule, v.runs, &v.stated, &v.objects));
    }
    if let Some(t) = &mut v.trace {
        t.sizes.sort_unstable();
        let rule = unload_rule(v.variant, &v.trace_stated);
        // The trace has no view of the stats of a leak it cannot see at
        // unload; it checks those through the growth.
        let stated = match rule {
            Variant::Fixed => Stated::default(),
            Variant::Leaky => v.trace_stated.clone(),
        };
        t.reason = rules::row_by("the trace", rule, v.runs, &stated, &t.objects);
        if t.reason.is_none() {
            t.reason = t.growth.as_ref().and_then(Growth::reason);
        }
        t.ok = t.reason.is_none();
        reasons.extend(t.reason.iter().map(|r| format!("trace: {r}")));
    }
    v.reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    v.ok = v.reason.is_none();
}

/// Judges a reference module ([`rules::reference`]), by each detector that
/// ran (`kmemleak`: whether it did).
pub(crate) fn judge_reference(x: &mut ReferenceVerdict, kmemleak: bool) {
    let expected = (x.expected, x.percpu_expected);
    let found = (x.found.objects, x.percpu_found);
    let small = rules::SMALL_PERCPU_POINTERS;
    let mut reasons: Vec<String> = Vec::new();
    if kmemleak {
        reasons.extend(rules::reference(&x.module, expected, found, small));
    }
    // The trace sees per-CPU objects by their own event: no exception.
    if let Some(t) = x.trace_found.filter(|t| t.objects != x.expected) {
        reasons.push(format!(
            "trace: the trace found {} objects of {}, expected {}",
            t.objects, x.module, x.expected
        ));
    }
    x.reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    x.ok = x.reason.is_none();
    x.note = (x.ok && kmemleak)
        .then(|| rules::reference_note(expected, found, small))
        .flatten();
}

#[cfg(test)]
mod tests;
