// SPDX-License-Identifier: GPL-2.0
//! Typed views of the documents the tests read
//! (Documentation/schema/leaklab-1.schema.json), defined here and not taken
//! from the library, so that a test reads what was printed and not what the
//! library means to print.
//!
//! A view holds the fields the checks read, and no more (serde skips the
//! rest). Every document is valid against the schema before it is read
//! through its view (see `common::Doc`): a required field is there with its
//! type, so none is defaulted here; a field the schema lets be null is an
//! `Option`. A failure message that needs the fields a view leaves out
//! prints the whole document.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, de::IgnoredAny, Deserialize};
use serde_json::Value;

/// A kind of document, named by its `schema` field.
pub trait Document: DeserializeOwned {
    const SCHEMA: &'static str;
}

/// Objects and bytes (`count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Count {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Leaky,
    Fixed,
}

/// A kernel log line a run judged (`finding`).
#[derive(Debug, Deserialize)]
pub struct Finding {
    pub kind: String,
}

/// `leaklab cycle` and `leaklab matrix` (`cycle_run`).
#[derive(Debug, Deserialize)]
pub struct CycleRun {
    pub patterns: Vec<Pattern>,
    pub cycles: Vec<Cycle>,
    pub ok: bool,
    /// The detectors that judged (`kmemleak`, `trace`).
    pub detectors: Vec<String>,
}

impl Document for CycleRun {
    const SCHEMA: &'static str = "leaklab.cycle/1";
}

impl CycleRun {
    /// The first (for these tests: the only) cycle.
    pub fn cycle(&self) -> &Cycle {
        self.cycles.first().expect("the run has no cycle")
    }

    /// The names of the patterns the run ran, in its order.
    pub fn pattern_names(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.name.as_str())
    }
}

/// A pattern as the module states it.
#[derive(Debug, Deserialize)]
pub struct Pattern {
    pub name: String,
    /// Objects one leaky run leaks.
    pub objects: u64,
    /// Bytes one leaky run leaks.
    pub bytes: u64,
    /// Whether kmemleak can see the leak.
    pub kmemleak: bool,
    /// Whether the leak is growth while loaded.
    pub grows: bool,
}

#[derive(Debug, Deserialize)]
pub struct Cycle {
    pub verdicts: Vec<Verdict>,
    /// Reports attributed to nothing that ran: only counted here.
    pub unexpected: Vec<IgnoredAny>,
    pub kernel_log: Vec<Finding>,
    pub expected_log: Vec<Finding>,
    pub references: Vec<Reference>,
    /// The module's section layout, handed on to `leaklab parse` as it is.
    pub layout: Value,
    pub slab_delta: BTreeMap<String, i64>,
    /// The allocation trace's account, when it ran.
    pub trace: Option<TraceRecord>,
}

/// The allocation trace of one cycle.
#[derive(Debug, Deserialize)]
pub struct TraceRecord {
    pub events: u64,
    pub lost: u64,
    pub unexpected: Vec<IgnoredAny>,
}

/// What the trace found of one pattern and variant.
#[derive(Debug, Deserialize)]
pub struct TraceColumn {
    pub expected: Count,
    pub found: Count,
    pub growth: Option<Growth>,
    pub ok: bool,
    pub reason: Option<String>,
}

/// Outstanding while loaded after two batches of runs.
#[derive(Debug, Deserialize)]
pub struct Growth {
    pub runs: u64,
    pub first: Count,
    pub second: Count,
}

impl Cycle {
    /// The verdict on `pattern`'s `variant`.
    pub fn verdict(&self, pattern: &str, variant: Variant) -> &Verdict {
        self.verdicts
            .iter()
            .find(|v| v.pattern == pattern && v.variant == variant)
            .unwrap_or_else(|| panic!("no verdict for {pattern} {variant:?}"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Verdict {
    pub pattern: String,
    pub variant: Variant,
    pub runs: u64,
    pub expected: Count,
    pub found: Count,
    pub sizes: Vec<u64>,
    pub stats_leaked: Count,
    pub culprits: BTreeMap<String, u64>,
    pub example: Option<Example>,
    /// Objects lost that kmemleak did not report: only counted here.
    pub missed: Vec<IgnoredAny>,
    pub ok: bool,
    pub reason: Option<String>,
    /// Whether kmemleak judged the row.
    pub kmemleak: bool,
    /// The trace's column.
    pub trace: Option<TraceColumn>,
    /// Why one detector sees the leak and the other cannot.
    pub blind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Example {
    pub symbolized: Vec<String>,
}

/// A calibration or negative control of a matrix.
#[derive(Debug, Deserialize)]
pub struct Reference {
    pub module: String,
    pub expected: u64,
    pub found: Count,
    pub percpu_found: u64,
    pub ok: bool,
    pub reason: Option<String>,
    pub note: Option<String>,
    /// What the trace tied to it.
    pub trace_found: Option<Count>,
}

/// `leaklab soak` (`soak_run`).
#[derive(Debug, Deserialize)]
pub struct SoakRun {
    pub leak_per_cycle: u64,
    pub samples: Vec<IgnoredAny>,
    pub reported: u64,
    pub leaked: u64,
    pub problems: Vec<String>,
}

impl Document for SoakRun {
    const SCHEMA: &'static str = "leaklab.soak/1";
}

/// `leaklab sweep` (`sweep_run`).
#[derive(Debug, Deserialize)]
pub struct Sweep {
    pub kernel: String,
    pub protocol: String,
    pub detectors: Vec<String>,
    pub rows: Vec<SweepRow>,
    pub seconds: f64,
}

impl Document for Sweep {
    const SCHEMA: &'static str = "leaklab.sweep/1";
}

#[derive(Debug, Deserialize)]
pub struct SweepRow {
    pub module: String,
    pub status: String,
    pub detail: Option<String>,
    pub objects: u64,
    pub leaks: Vec<SweepLeak>,
    pub confirmed: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct SweepLeak {
    pub line: Option<String>,
}

/// `leaklab census` (`census_run`).
#[derive(Debug, Deserialize)]
pub struct Census {
    pub schema: String,
    pub kernel: String,
    pub modules: Vec<CensusModule>,
}

impl Document for Census {
    const SCHEMA: &'static str = "leaklab.census/1";
}

#[derive(Debug, Deserialize)]
pub struct CensusModule {
    pub name: Option<String>,
    pub loaded: bool,
    pub unloaded: bool,
    /// The module's files under /sys/kernel/debug/<name>.
    pub debugfs: BTreeMap<String, DebugfsFile>,
    pub leaks: Count,
}

#[derive(Debug, Deserialize)]
pub struct DebugfsFile {
    pub mode: u32,
    pub content: Option<String>,
}

/// Reports with the same symbolized backtrace (`group`).
#[derive(Debug, Deserialize)]
pub struct Group {
    pub count: u64,
    pub culprit_line: Option<String>,
    pub sample: Option<String>,
    pub frames: Vec<String>,
}

/// `leaklab parse` (`parse_run`).
#[derive(Debug, Deserialize)]
pub struct ParseRun {
    pub groups: Vec<Group>,
}

impl Document for ParseRun {
    const SCHEMA: &'static str = "leaklab.parse/1";
}

/// `leaklab scan` (`scan_run`).
#[derive(Debug, Deserialize)]
pub struct ScanRun {
    pub stable: bool,
    pub auto_scan: AutoScan,
    /// The settled reports: only counted here.
    pub reports: Vec<IgnoredAny>,
    pub groups: Vec<Group>,
}

impl Document for ScanRun {
    const SCHEMA: &'static str = "leaklab.scan/1";
}

#[derive(Debug, Deserialize)]
pub struct AutoScan {
    pub before: bool,
    pub after: bool,
}

/// `leaklab selftest` (`selftest_run`).
#[derive(Debug, Deserialize)]
pub struct Selftest {
    pub cases: Vec<Case>,
}

impl Document for Selftest {
    const SCHEMA: &'static str = "leaklab.selftest/1";
}

impl Selftest {
    /// The case `name`.
    pub fn case(&self, name: &str) -> &Case {
        self.cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("case {name} missing"))
    }
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub actual: String,
    pub ok: bool,
}

/// `leaklab doctor` (`doctor_run`).
#[derive(Debug, Deserialize)]
pub struct Diagnosis {
    pub machine: String,
    pub board: Option<String>,
    pub cpu: Option<String>,
    pub memory_mib: u64,
    pub scan_seconds: Option<f64>,
    pub checks: Vec<Check>,
    pub canary: Option<Canary>,
    pub canaries: Vec<Canary>,
    pub ok: bool,
}

impl Document for Diagnosis {
    const SCHEMA: &'static str = "leaklab.doctor/1";
}

#[derive(Debug, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Deserialize)]
pub struct Canary {
    pub detector: String,
    pub expected: u64,
    pub found_leaky: u64,
    pub found_fixed: u64,
    pub culprit_line: Option<String>,
}

/// `leaklab fuzz` (`fuzz_run`).
#[derive(Debug, Deserialize)]
pub struct FuzzRun {
    pub files: u64,
    pub writes: u64,
    pub refused: u64,
    pub reads: u64,
    pub accepted_bad: Vec<String>,
    pub failed_reads: Vec<String>,
    pub kernel_log: Vec<Finding>,
    pub outside: Vec<String>,
    pub ok: bool,
}

impl Document for FuzzRun {
    const SCHEMA: &'static str = "leaklab.fuzz/1";
}

/// `leaklab faults` (`faults_run`).
#[derive(Debug, Deserialize)]
pub struct FaultRun {
    pub memory_mib: u64,
    pub injected: Vec<Injection>,
    pub cap_bytes: u64,
    pub leaked_bytes: u64,
    pub cap_held: bool,
    pub kernel_log: Vec<Finding>,
    pub leaky_reports: u64,
    pub outside: Vec<String>,
    pub known_kernel: Vec<String>,
    pub ok: bool,
}

impl Document for FaultRun {
    const SCHEMA: &'static str = "leaklab.faults/1";
}

/// One sample under injected failures.
#[derive(Debug, Deserialize)]
pub struct Injection {
    pub pattern: String,
    pub variant: Variant,
    pub points: u64,
    pub errors: u64,
    pub errnos: Vec<String>,
    pub failed_runs: u64,
    pub complete: bool,
}

/// `leaklab check` (`check_run`).
#[derive(Debug, Deserialize)]
pub struct CheckRun {
    pub module: String,
    pub cycles: Vec<CheckCycle>,
    pub leaks: Vec<CheckLeak>,
    pub outside: Vec<CheckLeak>,
    pub stable: bool,
    pub stacks_scanned: bool,
    pub detectors: Vec<String>,
    pub trace: Option<CheckTrace>,
    pub allocinfo: Option<CheckAllocInfo>,
}

/// What allocation profiling saw of a check's module.
#[derive(Debug, Deserialize)]
pub struct CheckAllocInfo {
    pub at_unload: Vec<SiteBytes>,
    pub rust_helpers: Vec<SiteBytes>,
}

/// Bytes at one call site.
#[derive(Debug, Deserialize)]
pub struct SiteBytes {
    pub site: String,
    pub bytes: i64,
}

/// The allocation trace's findings of a check.
#[derive(Debug, Deserialize)]
pub struct CheckTrace {
    pub leaks: Vec<CheckLeak>,
    pub lost: u64,
}

impl Document for CheckRun {
    const SCHEMA: &'static str = "leaklab.check/1";
}

impl CheckRun {
    /// Objects of the module's leaks.
    pub fn objects(&self) -> u64 {
        self.leaks.iter().map(|l| l.objects).sum()
    }

    /// Objects and bytes of the trace's leaks (none when it did not judge).
    pub fn traced(&self) -> (u64, u64) {
        self.trace
            .iter()
            .flat_map(|t| &t.leaks)
            .fold((0, 0), |(o, b), l| (o + l.objects, b + l.bytes))
    }
}

#[derive(Debug, Deserialize)]
pub struct CheckCycle {
    pub cycle: u32,
    pub loaded: bool,
    pub init_error: Option<String>,
    pub exercise: Vec<i32>,
    pub unloaded: Option<bool>,
    pub unload_error: Option<String>,
    pub leaked: u64,
}

#[derive(Debug, Deserialize)]
pub struct CheckLeak {
    pub title: Option<String>,
    pub culprit_line: Option<String>,
    pub objects: u64,
    pub bytes: u64,
    pub per_cycle: BTreeMap<u32, u64>,
    pub first_cycle: Option<u32>,
    pub frames: Vec<String>,
}

/// `leaklab watch --format json` (`watch_run`).
#[derive(Debug, Deserialize)]
pub struct WatchRun {
    pub rounds: u64,
    pub new_objects: u64,
    pub leaks: Vec<WatchLeak>,
    pub stopped_by: String,
    pub errors: WatchHealth,
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct WatchHealth {
    pub kmemleak: u64,
}

impl Document for WatchRun {
    const SCHEMA: &'static str = "leaklab.watch/1";
}

#[derive(Debug, Deserialize)]
pub struct WatchLeak {
    pub culprit: Option<String>,
    pub culprit_line: Option<String>,
    pub module: Option<String>,
    pub objects: u64,
    pub bytes: u64,
}

/// A line of a watch directory's `events.jsonl` (`watch_event`): the
/// fields of the kinds the checks read.
#[derive(Debug, Deserialize)]
pub struct WatchEvent {
    pub kind: String,
    pub time: f64,
    pub address: Option<String>,
    pub jiffies: Option<u64>,
    pub allocated: Option<f64>,
    pub module: Option<String>,
    pub reason: Option<String>,
    /// `None` in a sample: kmemleak unusable (and in other kinds).
    pub reported: Option<u64>,
}

impl Document for WatchEvent {
    const SCHEMA: &'static str = "leaklab.watch-event/1";
}
