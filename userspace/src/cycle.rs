//! `leaklab cycle`: load leaklab.ko, drive its samples, unload it, harvest
//! kmemleak, and judge every pattern and variant against what the module said
//! it would leak.
//!
//! All triggers of a cycle run in one kmemleak window: each report is tied to
//! its pattern and variant by its symbolized frames (the sample's module path
//! and the `_leaky`/`_fixed` function that allocated), not by timing.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    control::{Control, PatternInfo, StatRecord, Variant},
    kmemleak::{in_fresh_thread, Kmemleak},
    kmod,
    layout::ModuleLayout,
    monitor::{self, Finding, KmsgWatch, MemInfo},
    report::Report,
    symbolize::{Resolved, Symbolizer},
};

/// What to run in each cycle.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The module file.
    pub module: PathBuf,
    /// Patterns to drive (empty: all).
    pub patterns: Vec<String>,
    /// Variants to drive.
    pub variants: Vec<Variant>,
    /// Runs per pattern and variant.
    pub runs: u32,
    /// Load/drive/unload cycles.
    pub cycles: u32,
    /// Other modules loaded and unloaded in the same window, each with the
    /// number of objects it is known to leak: a calibration (the kernel's
    /// kmemleak-test) and a negative control (rust_minimal, none).
    pub references: Vec<Reference>,
}

/// A module with a known leak, run beside the samples to check the harvest.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The module file.
    pub module: PathBuf,
    /// Objects it leaks from one load and unload.
    pub leaks: u64,
}

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

impl Reference {
    /// The calibration and the negative control when `dir` has them:
    /// kmemleak-test.ko (8 kmalloc, 5 vmalloc, 10 list elements, a per-CPU
    /// allocation, and a kmalloc for each possible CPU) and rust_minimal.ko
    /// (nothing).
    pub fn defaults_in(dir: &std::path::Path) -> Vec<Reference> {
        let mut v = Vec::new();
        let test = dir.join("kmemleak-test.ko");
        if test.exists() {
            v.push(Reference {
                module: test,
                leaks: 24 + possible_cpus(),
            });
        }
        let minimal = dir.join("rust_minimal.ko");
        if minimal.exists() {
            v.push(Reference {
                module: minimal,
                leaks: 0,
            });
        }
        v
    }
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-3`).
fn possible_cpus() -> u64 {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .map(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    Some(b.trim().parse::<u64>().ok()? - a.trim().parse::<u64>().ok()? + 1)
                })
                .sum()
        })
        .unwrap_or(1)
}

/// Where a report came from, by its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The sample pattern, when a frame is in `samples::<pattern>`.
    pub pattern: Option<String>,
    /// The variant, from the `_leaky`/`_fixed` function on the stack.
    pub variant: Option<Variant>,
    /// The module the first non-allocator frame is in (`None`: the kernel).
    pub module: Option<String>,
    /// The culprit: the first frame outside the allocator wrappers, in a
    /// module where the stack has one.
    pub culprit: Option<String>,
    /// The culprit's source line (`samples/error_path.rs:31`), from the
    /// module's DWARF.
    pub culprit_line: Option<String>,
}

/// Frames of allocator and library wrappers, skipped when looking for the
/// culprit (prefix match on the demangled function name).
pub const SKIP: &[&str] = &[
    "kmemleak_",
    "__kmalloc",
    "kmalloc",
    "__kmem_cache_alloc",
    "kmem_cache_alloc",
    "krealloc",
    "__vmalloc",
    "vmalloc",
    "kvmalloc",
    "kstrdup",
    "kvasprintf",
    "kzalloc",
    "pcpu_alloc",
    "__alloc_percpu",
    "slab_post_alloc_hook",
    "<kernel::alloc::",
    "kernel::alloc::",
    "<kernel::sync::arc::",
    "<kernel::init::",
    "kernel::init::",
    "<alloc::",
];

fn skipped(function: &str) -> bool {
    SKIP.iter().any(|p| function.starts_with(p))
}

/// Ties a report to a module, a sample pattern and a variant.
pub fn attribute(r: &Report, sym: &Symbolizer) -> Attribution {
    let frames: Vec<Option<Resolved>> = r.frames.iter().map(|f| sym.frame(f, r.pid)).collect();
    let mut a = Attribution {
        pattern: None,
        variant: None,
        module: None,
        culprit: None,
        culprit_line: None,
    };
    // The culprit: the first frame outside the allocator wrappers that lies
    // in a module (the driver's own code, not the driver core it called);
    // for a leak with no module frame, the first frame outside the wrappers.
    let outside = |(res, _): &(&Option<Resolved>, &crate::report::Frame)| match res {
        Some(res) => !skipped(&res.function),
        None => true,
    };
    let culprit = frames
        .iter()
        .zip(&r.frames)
        .filter(outside)
        .find(|(res, _)| res.as_ref().is_some_and(|r| r.module.is_some()))
        .or_else(|| frames.iter().zip(&r.frames).find(outside));
    if let Some((res, raw)) = culprit {
        a.culprit = Some(match res {
            Some(res) => format!("{}+{:#x}", res.function, res.offset.unwrap_or(0)),
            None => raw.raw.clone(),
        });
        a.culprit_line = res.as_ref().and_then(|r| r.location.clone());
    }
    // Generic allocator frames (`<Box<T>>::new`) may carry another sample's
    // type: identical instantiations are merged. Only the caller's frames count.
    for res in frames.iter().flatten().filter(|r| !skipped(&r.function)) {
        if a.module.is_none() && res.module.is_some() {
            a.module = res.module.clone();
        }
        if let Some(rest) = res.function.split("::samples::").nth(1) {
            if a.pattern.is_none() {
                a.pattern = rest.split("::").next().map(str::to_string);
            }
            let fname = rest.rsplit("::").next().unwrap_or("");
            if a.variant.is_none() {
                a.variant = if fname.ends_with("_leaky") {
                    Some(Variant::Leaky)
                } else if fname.ends_with("_fixed") {
                    Some(Variant::Fixed)
                } else {
                    None
                };
            }
        }
    }
    a
}

/// A count of objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
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

/// One report's backtrace, raw and symbolized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    /// Object size.
    pub size: u64,
    /// The frames as kmemleak printed them (bare addresses after unload).
    pub raw: Vec<String>,
    /// The same frames as `function+offset [module]`.
    pub symbolized: Vec<String>,
}

impl Example {
    /// `r` with its frames symbolized.
    pub fn of(r: &Report, sym: &Symbolizer) -> Self {
        Self {
            size: r.size,
            raw: r.frames.iter().map(|f| f.raw.clone()).collect(),
            symbolized: r
                .frames
                .iter()
                .map(|f| {
                    sym.frame(f, r.pid)
                        .map_or_else(|| f.raw.clone(), |x| x.display())
                })
                .collect(),
        }
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

/// The start of the kmalloc object that `addr` points into: power-of-two
/// caches align objects to their size.
fn object_start(addr: u64, size: u64) -> u64 {
    if size.is_power_of_two() {
        addr & !(size - 1)
    } else {
        addr
    }
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

/// Whether a driven pattern and variant explains a kernel log finding.
pub(crate) fn explains(pattern: &str, variant: Variant, f: &Finding) -> bool {
    match (pattern, variant) {
        // Destroying a cache with live objects: SLUB's "BUG <cache>: Objects
        // remaining" report and the "Slab cache still has objects" WARN, each
        // with its WARNING line.
        ("slab_cache", Variant::Leaky) => [
            "leaklab_slab_",
            "kmem_cache_destroy",
            "__slab_err",
            "Slab cache still has objects",
        ]
        .iter()
        .any(|w| f.line.contains(w)),
        _ => false,
    }
}

impl CycleRun {
    /// The run of `cycles` on this kernel, with the catalogue the module gave.
    fn new(patterns: Vec<PatternInfo>, cycles: Vec<CycleRecord>) -> Self {
        Self {
            schema: "leaklab.cycle/1".into(),
            kernel: monitor::kernel_release(),
            ok: cycles.iter().all(|c| c.ok),
            patterns,
            cycles,
        }
    }
}

/// Runs the plan.
pub fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> Result<CycleRun> {
    let kmemleak = Kmemleak::open()?;
    let mut cycles = Vec::new();
    let mut catalogue = Vec::new();
    for cycle in 1..=plan.cycles {
        progress(&format!("cycle {cycle}/{}", plan.cycles));
        let (record, patterns) = one_cycle(plan, &kmemleak, cycle, &mut progress)?;
        catalogue = patterns;
        cycles.push(record);
    }
    Ok(CycleRun::new(catalogue, cycles))
}

/// Runs the plan one pattern at a time, each with a kmemleak window of its
/// own (the reference modules share the last one, which flatters this
/// baseline): the per-sample protocol of public load/unload tests, kept as a
/// baseline for the one-window run.
/// Returns one record per window, numbered in order.
pub fn run_sequential(plan: &Plan, mut progress: impl FnMut(&str)) -> Result<CycleRun> {
    let kmemleak = Kmemleak::open()?;
    let names: Vec<String> = if plan.patterns.is_empty() {
        // The catalogue, from the module itself.
        let (name, _) = kmod::load_in_own_thread(&plan.module)?;
        let mut loaded = Loaded { name, loaded: true };
        let names = Control::open()?
            .patterns()?
            .into_iter()
            .map(|p| p.name)
            .collect();
        loaded.unload()?;
        names
    } else {
        plan.patterns.clone()
    };
    let mut cycles = Vec::new();
    let mut catalogue = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let one = Plan {
            patterns: vec![name.clone()],
            references: if i + 1 == names.len() {
                plan.references.clone()
            } else {
                Vec::new()
            },
            cycles: 1,
            ..plan.clone()
        };
        progress(&format!("{name}: window {}/{}", i + 1, names.len()));
        let (mut record, patterns) = one_cycle(&one, &kmemleak, 1, &mut progress)?;
        record.cycle = i as u32 + 1;
        catalogue = patterns;
        cycles.push(record);
    }
    Ok(CycleRun::new(catalogue, cycles))
}

/// Unloads the module when dropped, unless told it is gone already: a failed
/// cycle never leaves the module loaded.
struct Loaded {
    name: String,
    loaded: bool,
}

impl Loaded {
    fn unload(&mut self) -> Result<()> {
        self.loaded = false;
        kmod::unload(&self.name)
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        if self.loaded {
            let _ = kmod::unload(&self.name);
        }
    }
}

fn one_cycle(
    plan: &Plan,
    kmemleak: &Kmemleak,
    cycle: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<(CycleRecord, Vec<PatternInfo>)> {
    let of = plan.cycles;
    // Flush: what happened before this cycle is not counted.
    let window = crate::scan::Window::open(kmemleak)?;
    let mem_before = MemInfo::read()?;
    let slab_before = monitor::read_slabinfo().unwrap_or_default();
    let mut kmsg = KmsgWatch::start()?;

    progress(&format!(
        "cycle {cycle}/{of}: loading {}",
        plan.module.display()
    ));
    let (name, loader) = kmod::load_in_own_thread(&plan.module)?;
    let mut loaded = Loaded { name, loaded: true };
    let control = Control::open()?;
    let catalogue = control.patterns()?;
    let selected: Vec<&PatternInfo> = if plan.patterns.is_empty() {
        catalogue.iter().collect()
    } else {
        plan.patterns
            .iter()
            .map(|p| {
                catalogue.iter().find(|c| &c.name == p).with_context(|| {
                    format!("no pattern named {p:?}: 'leaklab patterns' lists them")
                })
            })
            .collect::<Result<_>>()?
    };
    // The samples run in a thread that ends before the scans: stale copies
    // of the pointers they dropped, left on its kernel stack, go with it.
    // All leaky runs first: slab freelists are LIFO, so an object a fixed run
    // frees is the next one of its size to be allocated, and any stale
    // pointer to it that the kernel keeps would hide a leak placed there.
    let lost = in_fresh_thread(|| {
        for &v in &plan.variants {
            for p in &selected {
                crate::interrupt::check()?;
                control.trigger(&p.name, v, plan.runs)?;
            }
        }
        let mut lost = BTreeMap::new();
        if plan.variants.contains(&Variant::Leaky) {
            for p in &selected {
                lost.insert(p.name.clone(), control.leaked(&p.name)?);
            }
        }
        Ok(lost)
    })?;
    let stats = control.stats()?;
    let mut layout = ModuleLayout::record(&loaded.name, &plan.module)?;
    layout.loader = Some(loader);
    let mut sym = Symbolizer::default();
    sym.add(&layout, &plan.module)?;
    drop(control);
    // The reference modules load while leaklab.ko is still there, so that no
    // two of the modules ever share addresses: a bare frame names one module.
    let mut references = Vec::new();
    for r in &plan.references {
        progress(&format!(
            "cycle {cycle}/{of}: loading {}",
            r.module.display()
        ));
        let (name, loader) = kmod::load_in_own_thread(&r.module)?;
        let mut held = Loaded { name, loaded: true };
        let mut layout = ModuleLayout::record(&held.name, &r.module)?;
        layout.loader = Some(loader);
        sym.add(&layout, &r.module)?;
        held.unload()?;
        references.push(ReferenceVerdict {
            module: held.name.clone(),
            expected: r.leaks,
            found: Count::default(),
            ok: false,
            reason: None,
        });
    }
    // The exit-time leak happens here.
    loaded.unload()?;
    let youngest = Instant::now();

    let settled = window.close_with(youngest, &mut |phase| {
        progress(&format!("cycle {cycle}/{of}: {phase}"))
    })?;
    let (reports, scans) = (settled.reports, settled.scans);
    let log = kmsg.drain();
    let mem_after = MemInfo::read()?;
    let slab_after = monitor::read_slabinfo().unwrap_or_default();

    let mut verdicts: Vec<Verdict> = Vec::new();
    for p in &selected {
        for &v in &plan.variants {
            let st = stats
                .iter()
                .find(|s| s.pattern == p.name && s.variant == v.name())
                .cloned()
                .unwrap_or_default();
            verdicts.push(new_verdict(p, v, plan.runs, &st));
        }
    }
    let reported: Vec<(u64, u64)> = reports.iter().map(|r| (r.address, r.size)).collect();
    let mut unexpected = Vec::new();
    for r in reports {
        let a = attribute(&r, &sym);
        let slot = verdicts
            .iter_mut()
            .find(|x| Some(&x.pattern) == a.pattern.as_ref() && Some(x.variant) == a.variant);
        let reference = sym
            .owner_of(&r)
            .and_then(|m| references.iter_mut().find(|x| x.module == m));
        if let Some(x) = reference {
            x.found.objects += 1;
            x.found.bytes += r.size;
            continue;
        }
        match slot {
            Some(v) => {
                v.found.objects += 1;
                v.found.bytes += r.size;
                v.sizes.push(r.size);
                v.addresses.push(format!("{:#x}", r.address));
                if let Some(c) = &a.culprit {
                    let key = match &a.culprit_line {
                        Some(line) => format!("{c} at {line}"),
                        None => c.clone(),
                    };
                    *v.culprits.entry(key).or_default() += 1;
                }
                if v.example.is_none() {
                    v.example = Some(Example::of(&r, &sym));
                }
            }
            None => unexpected.push(Unexpected {
                report: r,
                attribution: a,
            }),
        }
    }
    for v in &mut verdicts {
        v.sizes.sort_unstable();
        judge(v);
        if v.variant == Variant::Leaky && v.found.objects < v.expected.objects {
            let missed: Vec<u64> = lost
                .get(&v.pattern)
                .into_iter()
                .flatten()
                .filter(|&&(a, _)| {
                    !reported
                        .iter()
                        .any(|&(start, size)| a >= start && a < start + size)
                })
                .map(|&(a, size)| object_start(a, size))
                .collect();
            v.missed = explain_missed(kmemleak, &mut kmsg, &missed);
        }
    }

    let (expected_log, findings): (Vec<Finding>, Vec<Finding>) =
        monitor::findings(&log).into_iter().partition(|f| {
            verdicts
                .iter()
                .any(|v| v.runs > 0 && explains(&v.pattern, v.variant, f))
        });
    for x in &mut references {
        x.ok = x.found.objects == x.expected;
        x.reason = (!x.ok).then(|| {
            format!(
                "kmemleak reported {} objects of {}, expected {}",
                x.found.objects, x.module, x.expected
            )
        });
    }
    let ok = verdicts.iter().all(|v| v.ok)
        && references.iter().all(|x| x.ok)
        && unexpected.is_empty()
        && findings.is_empty();
    Ok((
        CycleRecord {
            cycle,
            verdicts,
            unexpected,
            kernel_log: findings,
            expected_log,
            references,
            layout,
            scans,
            meminfo_delta: mem_before.delta(&mem_after),
            slab_delta: monitor::slab_delta(&slab_before, &slab_after),
            ok,
        },
        catalogue,
    ))
}

fn new_verdict(p: &PatternInfo, v: Variant, runs: u32, st: &StatRecord) -> Verdict {
    let expected = match v {
        Variant::Leaky => Count {
            objects: p.objects * u64::from(runs),
            bytes: p.bytes * u64::from(runs),
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

fn judge(v: &mut Verdict) {
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

impl CycleRun {
    /// KTAP version 1, as kselftest prints it: one test per cycle, pattern
    /// and variant (`cycle1.error_path.leaky`), plus per cycle one for
    /// unexpected leaks and one for the kernel log.
    pub fn ktap(&self) -> String {
        let mut tests: Vec<(bool, String, Option<String>)> = Vec::new();
        for c in &self.cycles {
            for v in &c.verdicts {
                tests.push((
                    v.ok,
                    format!("cycle{}.{}.{}", c.cycle, v.pattern, v.variant.name()),
                    v.reason.clone(),
                ));
            }
            for x in &c.references {
                tests.push((
                    x.ok,
                    format!("cycle{}.reference.{}", c.cycle, x.module),
                    x.reason.clone(),
                ));
            }
            tests.push((
                c.unexpected.is_empty(),
                format!("cycle{}.unexpected_leaks", c.cycle),
                (!c.unexpected.is_empty())
                    .then(|| format!("{} reports outside the driven samples", c.unexpected.len())),
            ));
            tests.push((
                c.kernel_log.is_empty(),
                format!("cycle{}.kernel_log", c.cycle),
                c.kernel_log
                    .first()
                    .map(|f| format!("{}: {}", f.kind, f.line)),
            ));
        }
        let mut s = format!(
            "KTAP version 1\n# leaklab cycle on {}\n1..{}\n",
            self.kernel,
            tests.len()
        );
        for (i, (ok, name, why)) in tests.iter().enumerate() {
            // '#' starts the directive field: keep it out of names and reasons.
            let why = why.as_deref().map(|w| w.replace('#', "No."));
            s += &format!(
                "{}ok {} {}{}\n",
                if *ok { "" } else { "not " },
                i + 1,
                name.replace('#', "No."),
                why.map(|w| format!(" # {w}")).unwrap_or_default()
            );
        }
        let passed = tests.iter().filter(|t| t.0).count();
        s += &format!("# Totals: pass:{} fail:{}\n", passed, tests.len() - passed);
        s
    }

    /// A compact table, then what went wrong.
    pub fn human(&self) -> String {
        let mut s = String::new();
        for c in &self.cycles {
            s += &format!(
                "cycle {} ({} scans)\n{:<18} {:<6} {:>5} {:>9} {:>9}  {}\n",
                c.cycle, c.scans, "pattern", "variant", "runs", "expected", "found", "verdict"
            );
            for v in &c.verdicts {
                s += &format!(
                    "{:<18} {:<6} {:>5} {:>9} {:>9}  {}\n",
                    v.pattern,
                    v.variant.name(),
                    v.runs,
                    format!("{}/{}B", v.expected.objects, v.expected.bytes),
                    format!("{}/{}B", v.found.objects, v.found.bytes),
                    match &v.reason {
                        None => "ok".to_string(),
                        Some(r) => format!("FAIL: {r}"),
                    }
                );
            }
            for x in &c.references {
                s += &format!(
                    "{:<18} {:<6} {:>5} {:>9} {:>9}  {}\n",
                    x.module,
                    if x.expected > 0 { "calib" } else { "none" },
                    1,
                    x.expected,
                    format!("{}/{}B", x.found.objects, x.found.bytes),
                    match &x.reason {
                        None => "ok".to_string(),
                        Some(r) => format!("FAIL: {r}"),
                    }
                );
            }
            for v in c
                .verdicts
                .iter()
                .filter(|v| v.runs > 0 && (v.example.is_some() || !v.missed.is_empty()))
            {
                s += &format!("\n{} {}:\n", v.pattern, v.variant.name());
                for (culprit, n) in &v.culprits {
                    s += &format!("    {n} x {culprit}\n");
                }
                for m in &v.missed {
                    s += &format!(
                        "    not reported: {} (kmemleak: references counted {}, flags {}, checksum {})\n",
                        m.address,
                        m.count.map_or("?".into(), |c| c.to_string()),
                        m.flags.as_deref().unwrap_or("?"),
                        m.checksum.map_or("?".into(), |c| c.to_string())
                    );
                }
                if let Some(e) = &v.example {
                    s += &format!("    e.g. {} bytes, allocated at:\n", e.size);
                    for f in &e.symbolized {
                        s += &format!("      {f}\n");
                    }
                }
            }
            for u in &c.unexpected {
                s += &format!(
                    "unexpected: {} bytes at {:#x}, culprit {}\n",
                    u.report.size,
                    u.report.address,
                    u.attribution.culprit.as_deref().unwrap_or("?")
                );
            }
            for f in &c.kernel_log {
                s += &format!("kernel log ({}): {}\n", f.kind, f.line);
            }
        }
        s += if self.ok {
            "result: as expected\n"
        } else {
            "result: NOT as expected\n"
        };
        s
    }
}

/// Resolves the module path: as given, else `leaklab.ko` beside the leaklab
/// executable (an unpacked bundle), else in the guest's module directory.
pub fn default_module(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("leaklab.ko")))
            .filter(|ko| ko.is_file())
            .unwrap_or_else(|| Path::new(crate::initramfs::MODULE_DIR).join("leaklab.ko"))
    })
}
