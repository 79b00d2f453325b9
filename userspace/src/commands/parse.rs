// SPDX-License-Identifier: GPL-2.0
//! `leaklab parse`: reads reports as they stream in (in parallel chunks
//! where the input allows), then prints them grouped by backtrace
//! ([`Grouped`], as `leaklab scan` does).

use std::{fs::File, path::Path};

use anyhow::{Context, Result};

use crate::{
    analysis::{group::Tally, symbolize::Symbolizer},
    kernel::module::{Ko, ModuleLayout},
    kmemleak::parallel::{parse_parallel, Input},
    output::{schema::Schema, Format},
    report::grouped::Grouped,
};

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
    let parsed = parse_parallel(
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
    let (tally, reports) = parsed.reports;
    let (count, garbled) = (tally.reports(), tally.garbled());
    let groups = tally.group(&sym);
    Ok(Grouped::new(
        &reports,
        count,
        garbled,
        groups,
        serde_json::json!({"schema": Schema::Parse.name()}),
    )?
    .announcing(parsed.announced))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{human, Outcome, Verdict};

    /// What kmemleak prints after a scan that found `n` new leaks.
    fn announcement(n: u32) -> String {
        format!("[   12.345678] kmemleak: {n} new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n")
    }

    const REPORT: &str =
        "[   12.300000] kmemleak: unreferenced object 0xffff888003a8e000 (size 32):
[   12.300000] kmemleak:   comm \"insmod\", pid 18, jiffies 4294892816
[   12.300000] kmemleak:   backtrace (crc 1):
[   12.300000] kmemleak:     __kmalloc_cache_noprof+0x104/0x114
[   12.300000] kmemleak:     0xffffffffa000023a
";

    /// `log` parsed from a file, in `format`.
    fn parse_log(log: &str, format: Format) -> Grouped {
        let path = std::env::temp_dir().join(format!(
            "leaklab-parse-announced-{}-{:?}.log",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, log).unwrap();
        let g = run(Some(&path), None, format).unwrap();
        std::fs::remove_file(&path).unwrap();
        g
    }

    fn assert_schema(doc: &serde_json::Value) {
        let schema: serde_json::Value = serde_json::from_str(include_str!(
            "../../../Documentation/schema/leaklab-1.schema.json"
        ))
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}: {doc:#}");
    }

    #[test]
    fn a_log_that_announces_leaks_without_their_reports_is_inconclusive() {
        // A kernel booted without kmemleak.verbose=1: the announcements only.
        let log = format!(
            "[    5.100000] virtio_blk virtio0: [vda] 8 512-byte logical blocks\n{}",
            announcement(2)
        );
        let g = parse_log(&log, Format::Human);
        let text = human(&g);
        assert!(text.starts_with("0 reports in 0 groups\nnote: the log announces 2 suspected leak(s) but holds no reports: boot with kmemleak.verbose=1 or read /sys/kernel/debug/kmemleak (leaklab scan)\n"), "{text}");
        assert_eq!(g.verdict(), Verdict::Inconclusive);
        assert_eq!(g.verdict().exit_status(), 3);
        assert!(
            text.ends_with("result: INCONCLUSIVE: the log announces 2 suspected leak(s) but holds no reports: boot with kmemleak.verbose=1 or read /sys/kernel/debug/kmemleak (leaklab scan)\n"),
            "{text}"
        );
        let json = serde_json::to_value(parse_log(&log, Format::Json)).unwrap();
        assert_eq!(json["announced"], 2, "{json:#}");
        assert_schema(&json);
    }

    #[test]
    fn scan_names_the_module_whose_status_show_leaked_a_kasprintf_string() {
        // As `scan` groups what kmemleak holds (no --ko): read while the
        // module was loaded, and after it was unloaded.
        let loaded = crate::analysis::attribute::tests::KASPRINTF;
        let unloaded = loaded.replace("status_show+0x1c/0x60 [mydrv]", "0xffffffffa0000016");
        let scan = |text: &str| {
            let reports = crate::kmemleak::report::parse(text);
            let head = serde_json::json!({"schema": "leaklab.scan/1"});
            human(&Grouped::of(&reports, &Symbolizer::default(), head, true).unwrap())
        };
        let text = scan(loaded);
        assert!(
            text.contains("\n1 x, 16 bytes, mydrv: status_show+0x1c\n"),
            "{text}"
        );
        let text = scan(&unloaded);
        assert!(
            text.contains("\n1 x, 16 bytes, a module's frames without symbols (parse --ko/--sections name them): 0xffffffffa0000016\n"),
            "{text}"
        );
        assert!(!text.contains("kernel:"), "{text}");
    }

    #[test]
    fn bare_frames_are_a_modules_loaded_or_not() {
        // Read while the module is loaded, its init (freed after it ran)
        // prints bare: the group is not called "no longer loaded".
        let file: String = REPORT.lines().map(|l| format!("{}\n", &l[25..])).collect();
        let text = human(&parse_log(&file, Format::Human));
        assert!(
            text.contains("1 x, 32 bytes, a module's frames without symbols (parse --ko/--sections name them): 0xffffffffa000023a\n"),
            "{text}"
        );
        assert!(!text.contains("no longer loaded"), "{text}");
    }

    #[test]
    fn a_log_with_some_of_its_reports_fails_on_them_and_says_what_is_missing() {
        // Two scans announced 1 and 2; one report was printed.
        let log = format!("{REPORT}{}{}", announcement(1), announcement(2));
        let g = parse_log(&log, Format::Json);
        assert_eq!(g.verdict(), Verdict::Failed);
        assert!(human(&g).contains("note: the log announces 3 suspected leak(s) but holds only 1 report(s): boot with kmemleak.verbose=1"));
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["announced"], 3, "{json:#}");
        assert_schema(&json);
        // With kmemleak.verbose=1, every announced leak's report is there.
        let g = parse_log(&format!("{REPORT}{}", announcement(1)), Format::Human);
        assert_eq!(g.verdict(), Verdict::Failed);
        assert!(
            !human(&g).contains("note: the log announces"),
            "{}",
            human(&g)
        );
        // A kmemleak file announces nothing: no field.
        let file: String = REPORT.lines().map(|l| format!("{}\n", &l[25..])).collect();
        let json = serde_json::to_value(parse_log(&file, Format::Json)).unwrap();
        assert_eq!(
            json["reports"].as_array().map(Vec::len),
            Some(1),
            "{json:#}"
        );
        assert!(json.get("announced").is_none(), "{json:#}");
    }
}
