//! `leaklab parse`: reads reports as they stream in (in parallel chunks
//! where the input allows), then prints them grouped by backtrace. The
//! grouped print ([`Grouped`]) serves `leaklab scan` too.

use std::{fs::File, path::Path};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    analysis::{
        group::{self, Group, Tally},
        symbolize::Symbolizer,
    },
    kernel::module::{Ko, ModuleLayout},
    kmemleak::{
        parallel::{parse_parallel, Input},
        report::Report,
    },
    output::{Format, Outcome, Verdict},
};

/// Reports grouped by backtrace, for people and machines.
pub struct Grouped {
    /// The JSON document: the caller's head fields, `reports` and `groups`.
    json: serde_json::Value,
    count: usize,
    garbled: usize,
    groups: Vec<Group>,
    /// kmemleak's set settled (a saved file's always counts as settled).
    settled: bool,
}

impl Serialize for Grouped {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

impl Grouped {
    /// `count` reports (of which `reports` are kept for JSON) as `groups`,
    /// with `head`'s fields first in the JSON.
    pub fn new(
        reports: &[Report],
        count: usize,
        garbled: usize,
        groups: Vec<Group>,
        mut head: serde_json::Value,
    ) -> Result<Self> {
        head["reports"] = serde_json::to_value(reports)?;
        head["groups"] = serde_json::to_value(&groups)?;
        Ok(Self {
            json: head,
            count,
            garbled,
            groups,
            settled: true,
        })
    }

    /// `reports`, from a scan whose set `settled` or not, grouped with `sym`.
    pub fn of(
        reports: &[Report],
        sym: &Symbolizer,
        head: serde_json::Value,
        settled: bool,
    ) -> Result<Self> {
        let groups = group::group(reports, sym);
        let garbled = reports.iter().filter(|r| r.garbled).count();
        let grouped = Self::new(reports, reports.len(), garbled, groups, head)?;
        Ok(Self { settled, ..grouped })
    }
}

impl Outcome for Grouped {
    /// Fails when there are reports; inconclusive when kmemleak's set was
    /// still changing (`scan`).
    fn verdict(&self) -> Verdict {
        if !self.settled {
            return Verdict::Inconclusive;
        }
        Verdict::of(self.count == 0)
    }

    fn summary(&self) -> String {
        if !self.settled {
            return "INCONCLUSIVE: kmemleak's reports were still changing when the scans ran out: run it again".into();
        }
        match self.count {
            0 => "ok: no reports".into(),
            n => format!("FAIL: {n} suspected leak(s) reported"),
        }
    }

    fn human(&self) -> String {
        let mut s = format!(
            "{} reports in {} groups{}\n",
            self.count,
            self.groups.len(),
            if self.garbled > 0 {
                format!(" ({} cut short or garbled)", self.garbled)
            } else {
                String::new()
            }
        );
        for g in &self.groups {
            let bare = g.culprit.as_deref().is_some_and(|c| c.starts_with("0x"));
            let owner = g
                .sample
                .clone()
                .or_else(|| g.module.clone())
                .unwrap_or_else(|| {
                    if bare {
                        "a module no longer loaded (--ko/--sections name it)".into()
                    } else {
                        "kernel".into()
                    }
                });
            s += &format!(
                "\n{} x, {} bytes, {owner}: {}{}\n",
                g.count,
                g.bytes,
                g.culprit.as_deref().unwrap_or("?"),
                g.culprit_line
                    .as_ref()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default()
            );
            for f in &g.frames {
                s += &format!("      {f}\n");
            }
        }
        s
    }
}

/// Parses `input` (a file, or standard input for `None` and `-`),
/// symbolizing against `module` (its `.ko` and its saved sections) when
/// given. The JSON lists every report only for `format` JSON.
pub fn run(
    input: Option<&Path>,
    module: Option<(&Path, &Path)>,
    format: Format,
) -> Result<Grouped> {
    let mut sym = Symbolizer::default();
    if let Some((ko, sections)) = module {
        let text = std::fs::read_to_string(sections)
            .with_context(|| format!("reading {}", sections.display()))?;
        let layout: ModuleLayout = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a section layout saved by `leaklab layout`",
                sections.display()
            )
        })?;
        sym.add(&layout, &Ko::open(ko)?)?;
    }
    let input = input.filter(|p| *p != Path::new("-"));
    let source = input.map_or("standard input".to_string(), |p| p.display().to_string());
    let file = input
        .map(|p| File::open(p).with_context(|| format!("opening {}", p.display())))
        .transpose()?;
    let map = file.as_ref().and_then(map_file);
    let read = match (&map, file) {
        (Some(map), _) => Input::Mapped(map),
        (None, Some(file)) => Input::Read(Box::new(file)),
        (None, None) => Input::Read(Box::new(std::io::stdin().lock())),
    };
    // Human output keeps the groups only; JSON lists every report as well.
    let keep = format == Format::Json;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (tally, reports) = parse_parallel(
        read,
        threads,
        1 << 20,
        || (Tally::default(), Vec::new()),
        |(tally, reports), b| {
            tally.add(b);
            if keep {
                reports.push(b.to_report());
            }
        },
        |(tally, reports), (later, more)| {
            tally.append(later);
            reports.extend(more);
        },
    )
    .with_context(|| format!("reading {source}"))?;
    let (count, garbled) = (tally.reports(), tally.garbled());
    let groups = tally.group(&sym);
    Grouped::new(
        &reports,
        count,
        garbled,
        groups,
        serde_json::json!({"schema": "leaklab.parse/1"}),
    )
}

/// `file` mapped into memory when it is a regular file worth it (1 MiB or
/// more): the parse then reads the page cache where it is, with no copy.
/// The kmemleak file (size 0) and `/dev/kmsg` are never mapped: they are
/// read as streams, as standard input is.
fn map_file(file: &File) -> Option<memmap2::Mmap> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() < 1 << 20 {
        return None;
    }
    // SAFETY: the map is private and read-only, and only read here. It
    // relies on no one rewriting the file's bytes while it is mapped, as
    // every reader that maps files does (ripgrep, for one): saved captures
    // are at rest, and logs are appended to (bytes past the mapped length
    // are not seen) or rotated by renaming. A file truncated under the map
    // (logrotate's copytruncate) ends the run with SIGBUS; the README says
    // to pipe a log that is being rotated.
    unsafe { memmap2::Mmap::map(file) }.ok()
}
