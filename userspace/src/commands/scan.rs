// SPDX-License-Identifier: GPL-2.0
//! `leaklab scan`: the scan protocol around a command (or around nothing),
//! its reports printed grouped.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::{
    analysis::symbolize::Symbolizer,
    kmemleak::{
        window::{auto_scan_running, Window},
        Kmemleak, MIN_AGE,
    },
    output::schema::Schema,
    report::grouped::Grouped,
};

/// Runs the protocol around `command` (flushing earlier reports), or, with
/// none, on what kmemleak holds now.
pub fn run(command: &[String], progress: &mut dyn FnMut(&str)) -> Result<Grouped> {
    let kmemleak = Kmemleak::open()?;
    let (window, youngest) = match command.split_first() {
        None => {
            let w = Window::open_keeping_reports(&kmemleak)?;
            // Nothing was just allocated: no age to wait for.
            let long_ago = Instant::now()
                .checked_sub(MIN_AGE)
                .unwrap_or_else(Instant::now);
            (w, long_ago)
        }
        Some((program, args)) => {
            let w = Window::open(&kmemleak)?;
            // Its output goes to stderr: stdout is for leaklab's answer.
            let status = std::process::Command::new(program)
                .args(args)
                .stdout(std::io::stderr())
                .status()
                .with_context(|| format!("running {program}"))?;
            if !status.success() {
                eprintln!("leaklab: note: {program} exited with {status}");
            }
            (w, Instant::now())
        }
    };
    let before = window.auto_scan_was_running();
    let settled = window.close_with(youngest, progress)?;
    Grouped::of(
        &settled.reports,
        &Symbolizer::default(),
        serde_json::json!({
            "schema": Schema::Scan.name(),
            "scans": settled.scans,
            "stable": settled.stable,
            "auto_scan": {
                "before": before,
                "after": auto_scan_running(),
            },
        }),
        settled.stable,
    )
}
