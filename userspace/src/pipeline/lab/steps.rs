// SPDX-License-Identifier: GPL-2.0
//! One cycle as named steps: [`load`] leaklab.ko in a fresh kmemleak
//! window, [`drive`] its samples, load and unload the reference modules,
//! [`harvest`] what kmemleak reports once the module is gone, and [`judge`]
//! every pattern, variant and reference against it.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::plan::{Plan, Reference};
use crate::{
    analysis::symbolize::Symbolizer,
    analysis::{
        attribute::{attribute, Attribution, Example},
        findings::{self, explains, Finding},
    },
    kernel::{
        interrupt,
        kmsg::KmsgWatch,
        module::Ko,
        procfs::{self, MemInfo, SlabCounts},
        thread::in_fresh_thread,
    },
    kmemleak::{report::Report, Kmemleak},
    ko::{Control, PatternInfo, StatRecord, Variant},
    pipeline::{
        detectors::Detectors,
        harvest::TraceHarvest,
        session::{Harvest, Session},
    },
    report::cycle::{
        rules::{self, Object},
        verdict::{
            judge, judge_reference, new_verdict, Count, Culprit, CycleRecord, Missed,
            ReferenceVerdict, TraceRecord, Unexpected, Verdict,
        },
    },
    trace::{tracer::Tracer, Space},
};

/// Runs in each of the two batches that measure a growing pattern's slope:
/// more than the bound of a bounded cache, so that a bound shows as a flat
/// line.
pub const GROWTH_RUNS: u32 = 8;

/// The module loaded, its catalogue read, the patterns chosen.
pub struct Loaded<'k> {
    session: Session<'k>,
    control: Control,
    /// The catalogue as the module describes it.
    pub catalogue: Vec<PatternInfo>,
    /// The patterns the plan drives, by index into the catalogue.
    selected: Vec<usize>,
    /// Memory figures from before the load.
    before: Before,
}

/// What the samples did, by the module's own account.
pub struct Driven {
    /// The objects each leaky pattern lost.
    lost: BTreeMap<String, Vec<Object>>,
    /// Growth while loaded of the growing patterns, by pattern and variant:
    /// outstanding after one batch of runs and after a second.
    growth: BTreeMap<(String, Variant), (Count, Count)>,
    /// The module's counters after the runs.
    stats: Vec<StatRecord>,
}

/// Memory figures before the cycle.
pub struct Before {
    mem: MemInfo,
    slab: SlabCounts,
}

impl Before {
    fn read() -> Result<Self> {
        Ok(Self {
            mem: MemInfo::read()?,
            slab: procfs::read_slabinfo().unwrap_or_default(),
        })
    }
}

/// Step 1: opens a window (what happened before is not counted), notes the
/// memory figures, and loads `ko`; picks the plan's patterns from its
/// catalogue.
pub fn load<'k>(plan: &Plan, ko: &Ko, detectors: &'k Detectors) -> Result<Loaded<'k>> {
    let (session, before) = Session::open_with(detectors, ko, Before::read)?;
    let control = Control::open()?;
    let catalogue = control.patterns()?;
    let selected = if plan.patterns.is_empty() {
        (0..catalogue.len()).collect()
    } else {
        plan.patterns
            .iter()
            .map(|p| {
                catalogue
                    .iter()
                    .position(|c| &c.name == p)
                    .with_context(|| {
                        format!("no pattern named {p:?}: 'leaklab patterns' lists them")
                    })
            })
            .collect::<Result<_>>()?
    };
    Ok(Loaded {
        session,
        control,
        catalogue,
        selected,
        before,
    })
}

impl Loaded<'_> {
    fn selected(&self) -> impl Iterator<Item = &PatternInfo> {
        self.selected.iter().map(|&i| &self.catalogue[i])
    }
}

/// Step 2: runs every selected variant of every selected pattern.
///
/// The samples run in a thread that ends before the scans: stale copies of
/// the pointers they dropped, left on its kernel stack, go with it. All
/// leaky runs first: slab freelists are LIFO, so an object a fixed run frees
/// is the next one of its size to be allocated, and any stale pointer to it
/// that the kernel keeps would hide a leak placed there.
pub fn drive(plan: &Plan, l: &Loaded) -> Result<Driven> {
    let (control, selected): (&Control, Vec<&PatternInfo>) = (&l.control, l.selected().collect());
    let lost = in_fresh_thread(|| {
        for &v in &plan.variants {
            for p in &selected {
                interrupt::check()?;
                control.trigger(&p.name, v, plan.runs)?;
            }
        }
        let mut lost = BTreeMap::new();
        if plan.variants.contains(&Variant::Leaky) {
            for p in &selected {
                let objects = control.leaked(&p.name)?;
                let objects = objects
                    .into_iter()
                    .map(|(address, size)| Object { address, size });
                lost.insert(p.name.clone(), objects.collect());
            }
        }
        Ok(lost)
    })?;
    let mut growth = BTreeMap::new();
    if let Some(tracer) = l.session.tracer() {
        for p in selected.iter().filter(|p| p.grows) {
            for &v in &plan.variants {
                growth.insert(
                    (p.name.clone(), v),
                    measure_growth(control, tracer, l, p, v)?,
                );
            }
        }
    }
    Ok(Driven {
        lost,
        growth,
        stats: l.control.stats()?,
    })
}

/// Runs `v` of the growing pattern `p` [`GROWTH_RUNS`] times twice, and
/// counts what the trace finds outstanding of it after each batch, of what
/// was allocated since the first began: only those allocations are named
/// and attributed.
fn measure_growth(
    control: &Control,
    tracer: &Tracer,
    l: &Loaded,
    p: &PatternInfo,
    v: Variant,
) -> Result<(Count, Count)> {
    tracer.sync()?;
    let since = tracer.seq();
    let batch = || -> Result<Count> {
        in_fresh_thread(|| control.trigger(&p.name, v, GROWTH_RUNS))?;
        tracer.sync()?;
        let mut c = Count::default();
        let sym = l.session.sym();
        for h in l.session.module_allocations(tracer, since)? {
            let r = h.report;
            let at = attribute(&r, sym);
            if at.pattern.as_deref() == Some(&p.name) && at.variant == Some(v) {
                c.add(r.size);
            }
        }
        Ok(c)
    };
    let first = batch()?;
    Ok((first, batch()?))
}

/// Step 3: loads and unloads each reference module while leaklab.ko is
/// still there (so that no two of the modules ever share addresses: a bare
/// frame names one module), unloads leaklab.ko (the exit-time leak happens
/// here) and lets kmemleak settle.
pub fn harvest(
    l: Loaded,
    references: &[(Ko, Reference)],
    progress: &mut dyn FnMut(&str),
) -> Result<Gathered> {
    let Loaded {
        mut session,
        control,
        before,
        ..
    } = l;
    drop(control);
    let mut verdicts = Vec::new();
    for (ko, r) in references {
        progress(&format!("loading {}", ko.path().display()));
        verdicts.push(ReferenceVerdict {
            module: session.load_and_unload(ko)?,
            expected: r.leaks,
            found: Count::default(),
            percpu_expected: r.percpu,
            percpu_found: 0,
            trace_found: None,
            ok: false,
            reason: None,
            note: None,
        });
    }
    Ok(Gathered {
        harvest: session.harvest(progress)?,
        references: verdicts,
        before,
    })
}

/// What a cycle gathered once leaklab.ko was gone: the harvest, the
/// reference modules' rows (not judged yet) and the memory before.
pub struct Gathered {
    harvest: Harvest,
    references: Vec<ReferenceVerdict>,
    before: Before,
}

/// Runs one cycle of `plan` with leaklab.ko `ko` and the `references`.
pub fn one_cycle(
    plan: &Plan,
    ko: &Ko,
    references: &[(Ko, Reference)],
    detectors: &Detectors,
    cycle: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<(CycleRecord, Vec<PatternInfo>)> {
    let of = plan.cycles;
    let mut progress = |m: &str| progress(&format!("cycle {cycle}/{of}: {m}"));
    progress(&format!("loading {}", ko.path().display()));
    let loaded = load(plan, ko, detectors)?;
    let driven = drive(plan, &loaded)?;
    let selected: Vec<PatternInfo> = loaded.selected().cloned().collect();
    let catalogue = loaded.catalogue.clone();
    let gathered = harvest(loaded, references, &mut progress)?;
    let record = judge_cycle(plan, cycle, &selected, driven, gathered, detectors)?;
    Ok((record, catalogue))
}

/// Step 4: ties every report to a pattern and variant or a reference module
/// and judges each against what was stated.
fn judge_cycle(
    plan: &Plan,
    cycle: u32,
    selected: &[PatternInfo],
    driven: Driven,
    gathered: Gathered,
    detectors: &Detectors,
) -> Result<CycleRecord> {
    let Gathered {
        mut harvest,
        mut references,
        before,
    } = gathered;
    let mem_after = MemInfo::read()?;
    let slab_after = procfs::read_slabinfo().unwrap_or_default();
    let judging = (detectors.kmemleak.is_some(), harvest.traced.is_some());
    let mut verdicts = rows(plan, selected, &driven, judging);
    let reports = std::mem::take(&mut harvest.settled.reports);
    let reported: Vec<(u64, u64)> = reports.iter().map(|r| (r.address, r.size)).collect();
    let unexpected = tie_reports(reports, &harvest.sym, &mut verdicts, &mut references);
    let trace = harvest
        .traced
        .as_ref()
        .map(|t| judge_trace(t, &harvest.sym, &mut verdicts, &mut references));
    for v in &mut verdicts {
        judge(v);
        if let Some(kmemleak) = &detectors.kmemleak {
            explain_row_missed(v, &driven, &reported, kmemleak, &mut harvest.kmsg);
        }
    }
    let (expected_log, findings): (Vec<Finding>, Vec<Finding>) =
        findings::findings(&harvest.log).into_iter().partition(|f| {
            verdicts
                .iter()
                .any(|v| v.runs > 0 && explains(&v.pattern, v.variant, f))
        });
    for x in &mut references {
        judge_reference(x, detectors.kmemleak.is_some());
    }
    let ok = rules::cycle(verdicts.len() + references.len()).is_none()
        && verdicts.iter().all(|v| v.ok)
        && references.iter().all(|x| x.ok)
        && unexpected.is_empty()
        && trace.as_ref().is_none_or(|t| t.unexpected.is_empty())
        && findings.is_empty();
    Ok(CycleRecord {
        cycle,
        verdicts,
        unexpected,
        kernel_log: findings,
        expected_log,
        references,
        layout: harvest.layout,
        scans: harvest.settled.scans,
        stable: harvest.settled.stable,
        meminfo_delta: before.mem.delta(&mem_after),
        slab_delta: procfs::slab_delta(&before.slab, &slab_after),
        trace,
        ok,
    })
}

/// A row per selected pattern and variant, with what the module stated
/// it ran and lost (and, for a growing pattern, its two batches);
/// `judging`: whether kmemleak and the trace judge.
fn rows(
    plan: &Plan,
    selected: &[PatternInfo],
    driven: &Driven,
    judging: (bool, bool),
) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for p in selected {
        for &v in &plan.variants {
            let st = driven
                .stats
                .iter()
                .find(|s| s.pattern == p.name && s.variant == v)
                .cloned()
                .unwrap_or_else(|| StatRecord::new(p.name.clone(), v));
            let lost = driven.lost.get(&p.name).map_or(&[][..], Vec::as_slice);
            let mut row = new_verdict(p, v, plan.runs, &st, lost, judging);
            if let (Some(t), Some(&(first, second))) =
                (&mut row.trace, driven.growth.get(&(p.name.clone(), v)))
            {
                if let Some(g) = &mut t.growth {
                    (g.runs, g.first, g.second) = (GROWTH_RUNS, first, second);
                }
            }
            verdicts.push(row);
        }
    }
    verdicts
}

/// Ties each kmemleak report to a reference module or a row; returns
/// those tied to neither.
fn tie_reports(
    reports: Vec<Report>,
    sym: &Symbolizer,
    verdicts: &mut [Verdict],
    references: &mut [ReferenceVerdict],
) -> Vec<Unexpected> {
    let mut unexpected = Vec::new();
    for r in reports {
        let a = attribute(&r, sym);
        let reference = sym
            .owner_of(&r)
            .and_then(|m| references.iter_mut().find(|x| x.module == m));
        if let Some(x) = reference {
            x.found.add(r.size);
            if rules::small_percpu_pointer(r.address) {
                x.percpu_found += 1;
            }
            continue;
        }
        let slot = verdicts
            .iter_mut()
            .find(|x| Some(&x.pattern) == a.pattern.as_ref() && Some(x.variant) == a.variant);
        match slot {
            Some(v) => {
                v.count(Object {
                    address: r.address,
                    size: r.size,
                });
                name_culprit(v, &a, &r, sym);
            }
            None => unexpected.push(Unexpected {
                report: r,
                attribution: a,
            }),
        }
    }
    unexpected
}

/// For a leaky row kmemleak found short: why each lost object it did not
/// report was missed. The module states object starts: a reported object
/// holds the lost address when it starts there.
fn explain_row_missed(
    v: &mut Verdict,
    driven: &Driven,
    reported: &[(u64, u64)],
    kmemleak: &Kmemleak,
    kmsg: &mut KmsgWatch,
) {
    if v.variant != Variant::Leaky || v.found.objects >= v.expected.objects {
        return;
    }
    let missed: Vec<u64> = driven
        .lost
        .get(&v.pattern)
        .into_iter()
        .flatten()
        .map(|o| o.address)
        .filter(|a| !reported.iter().any(|&(start, _)| start == *a))
        .collect();
    v.missed = explain_missed(kmemleak, kmsg, &missed);
}

/// Counts the culprit frame of report `r` (attributed as `a`) in row `v`,
/// and keeps as the row's example the report that comes first by its
/// symbolized frames, then its size: the same one from run to run, whatever
/// order kmemleak listed them in.
fn name_culprit(v: &mut Verdict, a: &Attribution, r: &Report, sym: &Symbolizer) {
    if let Some(c) = &a.culprit {
        let key = Culprit {
            function: c.clone(),
            line: a.culprit_line.clone(),
        };
        *v.culprits.entry(key).or_default() += 1;
    }
    let example = Example::of(r, sym);
    if v.example
        .as_ref()
        .is_none_or(|kept| example.comes_before(kept))
    {
        v.example = Some(example);
    }
}

/// Ties each allocation the trace found outstanding to a reference module
/// or a pattern and variant, as kmemleak's reports are tied.
fn judge_trace(
    t: &TraceHarvest,
    sym: &Symbolizer,
    verdicts: &mut [Verdict],
    references: &mut [ReferenceVerdict],
) -> TraceRecord {
    let mut record = TraceRecord {
        events: t.events,
        lost: t.lost,
        internal: t.internal,
        vmalloc_areas: (t.vmalloc.len()
            + t.reports
                .iter()
                .filter(|h| h.space == Space::Vmalloc)
                .count()) as u64,
        unexpected: Vec::new(),
    };
    for r in t.leaks() {
        if let Some(x) = sym
            .owner_of(r)
            .and_then(|m| references.iter_mut().find(|x| x.module == m))
        {
            x.trace_found.get_or_insert_with(Count::default).add(r.size);
            continue;
        }
        let a = attribute(r, sym);
        let slot = verdicts
            .iter_mut()
            .find(|x| Some(&x.pattern) == a.pattern.as_ref() && Some(x.variant) == a.variant);
        match slot {
            Some(v) if v.trace.is_some() => {
                v.count_traced(Object {
                    address: r.address,
                    size: r.size,
                });
                // Where kmemleak did not judge, or cannot see this leak,
                // the trace's stacks name the culprit.
                if !v.kmemleak || v.blind.is_some() {
                    name_culprit(v, &a, r, sym);
                }
            }
            _ => record.unexpected.push(Unexpected {
                report: r.clone(),
                attribution: a,
            }),
        }
    }
    for x in references.iter_mut() {
        x.trace_found.get_or_insert_with(Count::default);
    }
    record
}

/// Asks kmemleak (`dump=`) about each of `objects` and reads its answers
/// from the kernel log.
fn explain_missed(kmemleak: &Kmemleak, kmsg: &mut KmsgWatch, objects: &[u64]) -> Vec<Missed> {
    for o in objects {
        let _ = kmemleak.command(&format!("dump={o:#x}"));
    }
    let log = kmsg.drain();
    objects
        .iter()
        .map(|&o| {
            let mut m = Missed {
                address: format!("{o:#x}"),
                ..Missed::default()
            };
            let head = format!("kmemleak: Object {o:#010x} ");
            if let Some(i) = log.iter().position(|l| l.starts_with(&head)) {
                for l in log[i + 1..].iter().take(6) {
                    let l = l.trim_start_matches("kmemleak:").trim();
                    if let Some(v) = l.strip_prefix("count = ") {
                        m.count = v.trim().parse().ok();
                    } else if let Some(v) = l.strip_prefix("flags = ") {
                        m.flags = Some(v.trim().to_string());
                    } else if let Some(v) = l.strip_prefix("checksum = ") {
                        m.checksum = v.trim().parse().ok();
                    }
                }
            }
            m
        })
        .collect()
}
