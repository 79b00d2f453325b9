// SPDX-License-Identifier: GPL-2.0
//! `leaklab show`: a saved cycle, matrix, check or sweep result printed again
//! (table, KTAP or JSON), soak results plotted
//! (memory over cycles, one pair of curves per run), and a watch directory
//! rendered (memory over time, leaks marked).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{bail, Context, Result};

use crate::report::watch::view::WatchDir;
use crate::{
    output::{emit, html::Page, schema::Schema, Format, Outcome, Verdict},
    report::{soak, Document},
};

/// Reads a saved cycle, matrix, check, sweep or soak result (a document of any
/// other kind, or none, is read as a cycle's and refused as one).
fn load(file: &Path) -> Result<Document> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let not = || {
        format!(
            "{} is not a saved leaklab cycle, matrix, check, sweep or soak result (--format json)",
            file.display()
        )
    };
    let value: serde_json::Value = serde_json::from_str(&text).with_context(not)?;
    let kind = Schema::of_document(&value)
        .filter(|k| matches!(k, Schema::Soak | Schema::Check | Schema::Sweep))
        .unwrap_or(Schema::Cycle);
    Document::read(kind, value)
        .transpose()
        .with_context(not)?
        .with_context(not)
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

/// Soak results as one HTML page: each run's report and their memory
/// plotted; exits 1 when a run did not pass.
fn soak_page(soaks: &[soak::SoakRun]) -> Result<ExitCode> {
    let failed: Vec<&soak::SoakRun> = soaks
        .iter()
        .filter(|r| r.verdict() != Verdict::Passed)
        .collect();
    let (verdict, summary) = match failed.first() {
        None => (
            Verdict::Passed,
            format!("ok: {} run(s) passed", soaks.len()),
        ),
        Some(first) => (
            first.verdict(),
            format!(
                "FAIL: {} of {} run(s) did not pass",
                failed.len(),
                soaks.len()
            ),
        ),
    };
    let mut page = Page::new("leaklab soak");
    page.verdict(verdict, &summary);
    page.svg(&soak::chart(soaks).svg()?);
    for run in soaks {
        page.heading(2, &soak::name(run));
        page.pre(&run.human());
    }
    print!("{}", page.finish());
    Ok(ExitCode::from(verdict.exit_status()))
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
            Document::Cycle(run) if files.len() == 1 && svg.is_none() => {
                return emit(&*run, format)
            }
            Document::Check(check) if files.len() == 1 && svg.is_none() => {
                return emit(&*check, format)
            }
            Document::Sweep(sweep) if files.len() == 1 && svg.is_none() => {
                return emit(&*sweep, format)
            }
            Document::Cycle(_) | Document::Check(_) | Document::Doctor(_) | Document::Sweep(_) => bail!(
                "give one cycle, matrix, check or sweep result alone, without --svg (only soak results are plotted or shown together)"
            ),
            Document::Soak(run) => soaks.push(*run),
        }
    }
    if format == Format::Html {
        return soak_page(&soaks);
    }
    if format != Format::Human {
        bail!("soak results are shown as text, HTML (and --svg): their files are the JSON already");
    }
    let mut verdict = Verdict::Passed;
    for run in &soaks {
        print!("{}: {}", soak::name(run), run.human());
        if run.verdict() != Verdict::Passed && verdict == Verdict::Passed {
            verdict = run.verdict();
        }
    }
    if let Some(path) = svg {
        let chart = soak::chart(&soaks).svg()?;
        std::fs::write(path, chart).with_context(|| format!("writing {}", path.display()))?;
        println!("plot: {}", path.display());
    }
    Ok(ExitCode::from(verdict.exit_status()))
}
