//! `leaklab show`: a saved cycle, matrix or check result printed again
//! (table, KTAP or JSON), soak results plotted
//! (memory over cycles, one pair of curves per run), and a watch directory
//! rendered (memory over time, leaks marked).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{bail, Context, Result};

use super::{check::Check, cycle::CycleRun, soak::SoakRun, watch::view::WatchDir};
use crate::output::{
    emit,
    plot::{Chart, Series},
    schema::Schema,
    Format, Outcome, Verdict,
};

/// Colours of the runs, in order.
const COLOURS: [(u8, u8, u8); 4] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
];

/// What a saved result is, by its `schema`.
enum Saved {
    Cycle(Box<CycleRun>),
    Check(Box<Check>),
    Soak(SoakRun),
}

fn load(file: &Path) -> Result<Saved> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let not = || {
        format!(
            "{} is not a saved leaklab cycle, matrix, check or soak result (--format json)",
            file.display()
        )
    };
    let value: serde_json::Value = serde_json::from_str(&text).with_context(not)?;
    // Read once, then as the kind its schema names.
    match Schema::of_document(&value) {
        Some(Schema::Soak) => Ok(Saved::Soak(
            serde_json::from_value(value).with_context(not)?,
        )),
        Some(Schema::Check) => Ok(Saved::Check(Box::new(
            serde_json::from_value(value).with_context(not)?,
        ))),
        _ => Ok(Saved::Cycle(Box::new(
            serde_json::from_value(value).with_context(not)?,
        ))),
    }
}

/// A run's name: its leaky pattern, or "fixed".
fn name(run: &SoakRun) -> String {
    run.leaky
        .as_deref()
        .map_or("fixed".into(), |p| format!("{p} leaky"))
}

/// Slab and MemAvailable of each soak run, MiB since its first sample, over
/// cycles.
fn soak_chart(runs: &[SoakRun]) -> Chart {
    let mut series = Vec::new();
    for (run, colour) in runs.iter().zip(COLOURS.iter().cycle()) {
        let Some(first) = run.samples.first() else {
            continue;
        };
        let curve = |field: fn(&super::soak::Sample) -> i64| {
            run.samples
                .iter()
                .map(|s| {
                    let kib = field(s).saturating_sub(field(first));
                    (f64::from(s.cycle), kib as f64 / 1024.0)
                })
                .collect()
        };
        series.push(Series {
            label: format!("{}: Slab", name(run)),
            points: curve(|s| s.slab_kib),
            colour: *colour,
            dashed: false,
        });
        series.push(Series {
            label: format!("{}: MemAvailable", name(run)),
            points: curve(|s| s.mem_available_kib),
            colour: *colour,
            dashed: true,
        });
    }
    Chart {
        title: "leaklab soak: memory change over cycles".into(),
        x_label: "cycles".into(),
        y_label: "MiB since start".into(),
        series,
        marks: Vec::new(),
        marks_label: String::new(),
    }
}

/// Shows a `leaklab watch` directory: its leaks, trends and findings, and
/// its memory plotted to `svg` with the leaks marked. Exits 1 when it holds
/// leaks.
fn watch_dir(dir: &Path, svg: Option<&Path>, format: Format) -> Result<ExitCode> {
    if format != Format::Human {
        bail!("a watch directory is shown as text (and --svg): its events.jsonl and state.json are the JSON already");
    }
    let w = WatchDir::load(dir)?;
    print!("{}", w.human());
    if let Some(path) = svg {
        let chart = w
            .chart()
            .svg()
            .with_context(|| format!("{} has no memory samples to plot", dir.display()))?;
        std::fs::write(path, chart).with_context(|| format!("writing {}", path.display()))?;
        println!("plot: {}", path.display());
    }
    Ok(ExitCode::from(
        Verdict::of(w.state.leaks.is_empty()).exit_status(),
    ))
}

/// Shows `files`: one cycle, matrix or check result as its table, KTAP or JSON
/// (exits as the run did); or soak results as text, plotted to `svg` when
/// given (exits 1 when a run did not pass).
pub fn run(files: &[PathBuf], svg: Option<&Path>, format: Format) -> Result<ExitCode> {
    if let [dir] = files {
        if dir.is_dir() {
            return watch_dir(dir, svg, format);
        }
    }
    let saved = files.iter().map(|f| load(f)).collect::<Result<Vec<_>>>()?;
    let mut soaks = Vec::new();
    for s in saved {
        match s {
            Saved::Cycle(run) if files.len() == 1 && svg.is_none() => return emit(&*run, format),
            Saved::Check(check) if files.len() == 1 && svg.is_none() => {
                return emit(&*check, format)
            }
            Saved::Cycle(_) | Saved::Check(_) => bail!(
                "give one cycle, matrix or check result alone, without --svg (only soak results are plotted or shown together)"
            ),
            Saved::Soak(run) => soaks.push(run),
        }
    }
    if format != Format::Human {
        bail!("soak results are shown as text (and --svg): their files are the JSON already");
    }
    let mut verdict = Verdict::Passed;
    for run in &soaks {
        print!("{}: {}", name(run), run.human());
        if run.verdict() != Verdict::Passed && verdict == Verdict::Passed {
            verdict = run.verdict();
        }
    }
    if let Some(path) = svg {
        let chart = soak_chart(&soaks).svg()?;
        std::fs::write(path, chart).with_context(|| format!("writing {}", path.display()))?;
        println!("plot: {}", path.display());
    }
    Ok(ExitCode::from(verdict.exit_status()))
}
