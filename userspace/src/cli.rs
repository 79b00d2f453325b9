//! The command line: what each subcommand takes and does.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    census,
    control::{Control, Variant},
    cycle,
    initramfs::{self, Contents},
    selftest,
    vm::{self, Accel, Arch, VmSpec},
};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Human,
    /// For machines.
    Json,
}

/// Output format of `cycle`, which also speaks KTAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CycleFormat {
    /// For people.
    Human,
    /// For machines.
    Json,
    /// KTAP version 1 test results, as kernel CI expects them.
    Ktap,
}

/// leaklab: see kernel memory leaks happen, catch them, and prove the fix.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Boot the project's kernel in QEMU with leaklab as /init and run a
    /// leaklab command there; exits with that command's status.
    Vm(VmArgs),
    /// List the leak patterns of the loaded leaklab.ko.
    Patterns {
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Run a pattern's leaky or fixed variant N times in the loaded leaklab.ko.
    Trigger {
        /// Pattern name (see `leaklab patterns`).
        pattern: String,
        /// Which variant.
        #[arg(value_enum)]
        variant: Variant,
        /// How many runs.
        #[arg(short, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        n: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Load leaklab.ko, run samples, unload it, harvest kmemleak, and check
    /// every pattern and variant against what the module said it leaks.
    Cycle {
        /// The module (default: /lib/modules/leaklab.ko, as in the VM).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Pattern to run (repeatable; default: all).
        #[arg(long = "pattern")]
        patterns: Vec<String>,
        /// Variant to run (repeatable; default: both).
        #[arg(long = "variant", value_enum)]
        variants: Vec<Variant>,
        /// Runs per pattern and variant.
        #[arg(short, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        n: u32,
        /// Load/run/unload cycles.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        cycles: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: CycleFormat,
    },
    /// The main job: every pattern, leaky and fixed, the exit-time leak, the
    /// kernel's kmemleak-test.ko as a calibration and rust_minimal.ko as a
    /// negative control, all in one kmemleak window; one verdict table.
    /// Exits 0 only when everything is as expected.
    Matrix {
        /// The module (default: /lib/modules/leaklab.ko, as in the VM).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Pattern to run (repeatable; default: all).
        #[arg(long = "pattern")]
        patterns: Vec<String>,
        /// Runs per pattern and variant.
        #[arg(short, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        n: u32,
        /// Load/run/unload cycles.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        cycles: u32,
        /// A reference module and the objects it leaks, `KO=N` (repeatable;
        /// default: kmemleak-test.ko and rust_minimal.ko beside the module).
        #[arg(long = "reference", value_parser = parse_reference)]
        references: Vec<cycle::Reference>,
        /// Give every pattern (and every reference module) a kmemleak window
        /// of its own, one after the other, as public load/unload tests do:
        /// the baseline `make bench` measures the one-window matrix against.
        #[arg(long)]
        sequential: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: CycleFormat,
    },
    /// Print a saved `cycle`/`matrix --format json` result as the table or as
    /// KTAP; exits as the run did (0 as expected, 1 not).
    Show {
        /// The JSON file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: CycleFormat,
    },
    /// Check that this machine can show leaks: root, kernel options,
    /// debugfs, kmemleak, the module's vermagic, memory; then a live canary
    /// (one leaky sample kmemleak must report, its fixed twin it must not).
    /// Exits 0 only when every check passes.
    Doctor {
        /// The module (default: leaklab.ko beside this executable, else
        /// /lib/modules/leaklab.ko).
        #[arg(long)]
        module: Option<PathBuf>,
        /// The pattern the canary runs.
        #[arg(long, default_value = "error_path")]
        canary: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Fuzz leaklab.ko's control files (random and adversarial writes, odd
    /// reads) in one kmemleak window; exit 0 only when every write outside
    /// the contract was refused, the kernel log stayed clean and nothing
    /// leaked outside the leaky samples.
    Fuzz {
        /// The module (default: leaklab.ko beside this executable, else
        /// /lib/modules/leaklab.ko).
        #[arg(long)]
        module: Option<PathBuf>,
        /// At most this many operations.
        #[arg(long, default_value_t = 5000)]
        count: u64,
        /// At most this many seconds of fuzzing.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The generator's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Run the samples under failing allocations (each allocation of each
    /// sample in turn, by fault injection) and leaky runs up to the leak
    /// cap, in one kmemleak window: nothing may crash, warn, or leak outside
    /// the leaky samples. Meant for a small guest (vm --memory 128).
    Faults {
        /// The module (default: leaklab.ko beside this executable, else
        /// /lib/modules/leaklab.ko).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Load, run the fixed variants (and one leaky sample, with --leaky),
    /// and unload leaklab.ko CYCLES times in one kmemleak window, sampling
    /// MemAvailable and Slab; `make soak` runs it and plots the result.
    Soak {
        /// The module (default: leaklab.ko beside this executable, else
        /// /lib/modules/leaklab.ko).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Load/run/unload cycles.
        #[arg(long, default_value_t = 1000)]
        cycles: u32,
        /// Also run this pattern's leaky variant once a cycle.
        #[arg(long)]
        leaky: Option<String>,
        /// Sample memory every this many cycles.
        #[arg(long, default_value_t = 10)]
        every: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Check leaklab.ko's control interface against its contract (bad
    /// input refused without side effects, the leak cap, reads).
    Selftest {
        /// The module (default: /lib/modules/leaklab.ko, as in the VM).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Parse kmemleak reports from a saved kmemleak file or a kernel log
    /// (dmesg, journal, serial console) and print them grouped by backtrace,
    /// symbolized against a module's .ko when given. Exits 1 when there are
    /// reports.
    Parse {
        /// The input file; `-` or nothing reads standard input.
        input: Option<PathBuf>,
        /// A module's object file, to name its frames and their source lines.
        #[arg(long, requires = "sections")]
        ko: Option<PathBuf>,
        /// The module's section addresses, as `leaklab layout` saved them
        /// while it was loaded.
        #[arg(long, requires = "ko")]
        sections: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Run the scan protocol (auto-scan paused and restored, old reports
    /// flushed, the minimum age waited out from the command's end, scans
    /// until the set is stable) around COMMAND, or, with none, on what
    /// kmemleak holds now; print the reports grouped. Exits 1 when there are
    /// reports.
    Scan {
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// The work to measure, e.g. `insmod foo.ko` (after leaklab's own options).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Save a loaded module's section addresses (JSON), for `leaklab parse
    /// --sections` after the module is gone.
    Layout {
        /// The module's name, as in /sys/module.
        name: String,
        /// Its object file (for the section sizes).
        ko: PathBuf,
    },
    /// Find where kernel memory still holds the given addresses, to see why
    /// a leak is not reported. Scans all RAM through /proc/kcore: hits in free
    /// pages and user memory, which kmemleak does not scan, show up too.
    Refs {
        /// Addresses, in hex (0x...).
        #[arg(required = true)]
        addresses: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Load and unload kernel modules, scan kmemleak, and count the
    /// unreferenced objects each module left behind.
    Census {
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Harvest as public load/unload tests do, for comparison: `clear`
        /// before, `scan` twice and read right after the last unload, instead
        /// of the scan protocol.
        #[arg(long)]
        naive: bool,
        /// Module files (default: every .ko in /lib/modules).
        modules: Vec<PathBuf>,
    },
}

/// Arguments of `leaklab vm`.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Guest architecture.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    /// Directory holding the per-ARCH build outputs (`<dir>/<arch>/...`).
    #[arg(long, default_value = "build")]
    pub build_dir: PathBuf,
    /// Kernel image (default: <build-dir>/<arch>/kernel-image).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Static leaklab binary for the guest (default: <build-dir>/<arch>/leaklab).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Module to put in the guest's /lib/modules (default: every .ko in <build-dir>/<arch>/).
    #[arg(long = "module")]
    pub modules: Vec<PathBuf>,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Accelerator.
    #[arg(long, value_enum, default_value = "auto", env = "LEAKLAB_ACCEL")]
    pub accel: Accel,
    /// QEMU binary (default: qemu-system-<arch> on PATH).
    #[arg(long)]
    pub qemu: Option<PathBuf>,
    /// Console log file (default: <build-dir>/results/console-<arch>.log).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Extra kernel command line word (repeatable), e.g. kmemleak=off.
    #[arg(long = "append")]
    pub append: Vec<String>,
    /// Also show the kernel's console lines.
    #[arg(short, long)]
    pub verbose: bool,
    /// The leaklab command to run in the guest.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `leaklab parse`: reads reports as they stream in, then prints them grouped.
fn run_parse(
    input: Option<PathBuf>,
    module: Option<(PathBuf, PathBuf)>,
    format: Format,
) -> Result<ExitCode> {
    use crate::{layout::ModuleLayout, report, symbolize::Symbolizer};
    let mut sym = Symbolizer::default();
    if let Some((ko, sections)) = module {
        let text = std::fs::read_to_string(&sections)
            .with_context(|| format!("reading {}", sections.display()))?;
        let layout: ModuleLayout = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a section layout saved by `leaklab layout`",
                sections.display()
            )
        })?;
        sym.add(&layout, &ko)?;
    }
    let source = match input.as_deref() {
        None => "standard input".to_string(),
        Some(p) if p == std::path::Path::new("-") => "standard input".to_string(),
        Some(p) => p.display().to_string(),
    };
    let file = match input {
        Some(p) if p != std::path::Path::new("-") => {
            Some(std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?)
        }
        _ => None,
    };
    let map = file.as_ref().and_then(map_file);
    let read = match (&map, file) {
        (Some(map), _) => report::Input::Mapped(map),
        (None, Some(file)) => report::Input::Read(Box::new(file)),
        (None, None) => report::Input::Read(Box::new(std::io::stdin().lock())),
    };
    // Human output keeps the groups only; JSON lists every report as well.
    let keep = format == Format::Json;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (tally, reports) = report::parse_parallel(
        read,
        threads,
        1 << 20,
        || (crate::group::Tally::default(), Vec::new()),
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
    print_grouped(
        &reports,
        count,
        garbled,
        &groups,
        format,
        serde_json::json!({"schema": "leaklab.parse/1"}),
    )
}

/// `file` mapped into memory when it is a regular file worth it (1 MiB or
/// more): the parse then reads the page cache where it is, with no copy.
/// The kmemleak file (size 0) and `/dev/kmsg` are never mapped: they are
/// read as streams, as standard input is.
fn map_file(file: &std::fs::File) -> Option<memmap2::Mmap> {
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

/// Prints reports grouped by backtrace, human or JSON (`head`'s fields
/// first); exits 1 when there are any.
fn print_reports(
    reports: &[crate::report::Report],
    sym: &crate::symbolize::Symbolizer,
    format: Format,
    head: serde_json::Value,
) -> Result<ExitCode> {
    let groups = crate::group::group(reports, sym);
    let garbled = reports.iter().filter(|r| r.garbled).count();
    print_grouped(reports, reports.len(), garbled, &groups, format, head)
}

/// Prints `count` reports (of which `reports` are kept for JSON) as
/// `groups`; exits 1 when there are any.
fn print_grouped(
    reports: &[crate::report::Report],
    count: usize,
    garbled: usize,
    groups: &[crate::group::Group],
    format: Format,
    mut head: serde_json::Value,
) -> Result<ExitCode> {
    match format {
        Format::Json => {
            head["reports"] = serde_json::to_value(reports)?;
            head["groups"] = serde_json::to_value(groups)?;
            println!("{}", serde_json::to_string_pretty(&head)?);
        }
        Format::Human => {
            println!(
                "{} reports in {} groups{}",
                count,
                groups.len(),
                if garbled > 0 {
                    format!(" ({garbled} cut short or garbled)")
                } else {
                    String::new()
                }
            );
            for g in groups {
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
                println!(
                    "\n{} x, {} bytes, {owner}: {}{}",
                    g.count,
                    g.bytes,
                    g.culprit.as_deref().unwrap_or("?"),
                    g.culprit_line
                        .as_ref()
                        .map(|l| format!(" at {l}"))
                        .unwrap_or_default()
                );
                for f in &g.frames {
                    println!("      {f}");
                }
            }
        }
    }
    Ok(if count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `leaklab scan`: the scan protocol around `command` (or around nothing).
fn run_scan(command: &[String], format: Format) -> Result<ExitCode> {
    use crate::{kmemleak::Kmemleak, scan::Window, symbolize::Symbolizer};
    let kmemleak = Kmemleak::open()?;
    let (window, youngest) = match command.split_first() {
        None => {
            let w = Window::open_keeping_reports(&kmemleak)?;
            // Nothing was just allocated: no age to wait for.
            let long_ago = std::time::Instant::now()
                .checked_sub(crate::kmemleak::MIN_AGE)
                .unwrap_or_else(std::time::Instant::now);
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
            (w, std::time::Instant::now())
        }
    };
    let before = window.auto_scan_was_running();
    let spinner = progress_spinner();
    let settled = window.close_with(youngest, &mut |m| spinner.set_message(m.to_string()));
    spinner.finish_and_clear();
    let settled = settled?;
    print_reports(
        &settled.reports,
        &Symbolizer::default(),
        format,
        serde_json::json!({
            "schema": "leaklab.scan/1",
            "scans": settled.scans,
            "stable": settled.stable,
            "auto_scan": {
                "before": before,
                "after": crate::scan::auto_scan_running(),
            },
        }),
    )
}

/// A spinner with a message on stderr when it is a terminal; hidden (and
/// without its ticking thread) in logs and pipes.
fn progress_spinner() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// What a command found, for people and for machines.
pub trait Outcome: serde::Serialize {
    /// The human report, ending with its verdict.
    fn human(&self) -> String;
    /// Whether all was as required.
    fn passed(&self) -> bool;
}

/// Runs `work` with a spinner on a terminal, prints what it found as text
/// or JSON, and exits 0 when it passed, 1 when not.
fn report_outcome<T: Outcome>(
    format: Format,
    work: impl FnOnce(&mut dyn FnMut(&str)) -> Result<T>,
) -> Result<ExitCode> {
    let spinner = progress_spinner();
    let outcome = work(&mut |s| spinner.set_message(s.to_string()));
    spinner.finish_and_clear();
    let outcome = outcome?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        Format::Human => print!("{}", outcome.human()),
    }
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs a cycle plan and prints it; exit 0 only when all was as expected.
fn run_cycle(plan: &cycle::Plan, format: CycleFormat) -> Result<ExitCode> {
    let spinner = progress_spinner();
    let run = cycle::run(plan, |m| spinner.set_message(m.to_string()));
    spinner.finish_and_clear();
    print_run(&run?, format)
}

/// Prints a cycle result; exit 0 only when all was as expected.
fn print_run(run: &cycle::CycleRun, format: CycleFormat) -> Result<ExitCode> {
    match format {
        CycleFormat::Human => print!("{}", run.human()),
        CycleFormat::Json => println!("{}", serde_json::to_string_pretty(run)?),
        CycleFormat::Ktap => print!("{}", run.ktap()),
    }
    Ok(if run.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Parses `--reference KO=N`.
fn parse_reference(s: &str) -> std::result::Result<cycle::Reference, String> {
    let (ko, n) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected KO=N, e.g. kmemleak-test.ko=25"))?;
    Ok(cycle::Reference {
        module: PathBuf::from(ko),
        leaks: n
            .parse()
            .map_err(|_| format!("{n:?} is not a number of objects"))?,
    })
}

/// Refuses to go on without root: loading modules, debugfs and kmemleak all
/// need it, and a half-done run would be worse than none.
fn require_root(command: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "leaklab {command} needs root (it loads modules and reads debugfs): run it as root or with sudo"
        );
    }
    Ok(())
}

/// Runs the parsed command line and returns the process exit status.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let privileged = match &cli.command {
        Cmd::Patterns { .. } => Some("patterns"),
        Cmd::Trigger { .. } => Some("trigger"),
        Cmd::Cycle { .. } => Some("cycle"),
        Cmd::Matrix { .. } => Some("matrix"),
        Cmd::Selftest { .. } => Some("selftest"),
        Cmd::Fuzz { .. } => Some("fuzz"),
        Cmd::Faults { .. } => Some("faults"),
        Cmd::Soak { .. } => Some("soak"),
        Cmd::Census { .. } => Some("census"),
        Cmd::Refs { .. } => Some("refs"),
        Cmd::Layout { .. } => Some("layout"),
        Cmd::Scan { .. } => Some("scan"),
        _ => None,
    };
    if let Some(command) = privileged {
        require_root(command)?;
    }
    if privileged.is_some() || matches!(cli.command, Cmd::Doctor { .. }) {
        // These load modules and change kmemleak's settings: on Ctrl-C or
        // SIGTERM they undo both before they exit.
        crate::interrupt::install()?;
    }
    match cli.command {
        Cmd::Vm(args) => run_vm(args),
        Cmd::Patterns { format } => {
            let patterns = Control::open()?.patterns()?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&patterns)?),
                Format::Human => {
                    println!("{:<18} {:>7} {:>7}  leaks", "pattern", "objects", "bytes");
                    for p in &patterns {
                        println!(
                            "{:<18} {:>7} {:>7}  {}",
                            p.name,
                            p.objects,
                            p.bytes,
                            if p.after_unload {
                                "after rmmod"
                            } else {
                                "at once"
                            }
                        );
                        println!("    {}", p.description);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Trigger {
            pattern,
            variant,
            n,
            format,
        } => {
            let ctl = Control::open()?;
            ctl.trigger(&pattern, variant, n)?;
            let stats = ctl
                .stats()?
                .into_iter()
                .find(|s| s.pattern == pattern && s.variant == variant.name());
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
                Format::Human => {
                    if let Some(s) = stats {
                        println!(
                            "{pattern} {}: {n} run(s); totals: runs={} leaked={} ({} bytes)",
                            variant.name(),
                            s.runs,
                            s.leaked,
                            s.leaked_bytes
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cycle {
            module,
            patterns,
            variants,
            n,
            cycles,
            format,
        } => {
            let plan = cycle::Plan {
                module: cycle::default_module(module),
                patterns,
                variants: if variants.is_empty() {
                    vec![Variant::Leaky, Variant::Fixed]
                } else {
                    variants
                },
                runs: n,
                cycles,
                references: Vec::new(),
            };
            run_cycle(&plan, format)
        }
        Cmd::Show { file, format } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let run: cycle::CycleRun = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a leaklab cycle or matrix result (--format json)",
                    file.display()
                )
            })?;
            print_run(&run, format)
        }
        Cmd::Matrix {
            module,
            patterns,
            n,
            cycles,
            references,
            sequential,
            format,
        } => {
            let module = cycle::default_module(module);
            let references = if references.is_empty() {
                cycle::Reference::defaults_in(module.parent().unwrap_or(std::path::Path::new(".")))
            } else {
                references
            };
            let plan = cycle::Plan {
                module,
                patterns,
                variants: vec![Variant::Leaky, Variant::Fixed],
                runs: n,
                cycles,
                references,
            };
            if sequential {
                let spinner = progress_spinner();
                let run = cycle::run_sequential(&plan, |m| spinner.set_message(m.to_string()));
                spinner.finish_and_clear();
                return print_run(&run?, format);
            }
            run_cycle(&plan, format)
        }
        Cmd::Doctor {
            module,
            canary,
            format,
        } => {
            let opts = crate::doctor::Options {
                module: cycle::default_module(module),
                canary,
            };
            report_outcome(format, |p| Ok(crate::doctor::diagnose(&opts, p)))
        }
        Cmd::Fuzz {
            module,
            count,
            seconds,
            seed,
            format,
        } => {
            let plan = crate::fuzz::Plan {
                module: cycle::default_module(module),
                count,
                seconds,
                seed,
            };
            report_outcome(format, |p| crate::fuzz::run(&plan, p))
        }
        Cmd::Faults { module, format } => report_outcome(format, |p| {
            crate::faults::run(&cycle::default_module(module), p)
        }),
        Cmd::Soak {
            module,
            cycles,
            leaky,
            every,
            format,
        } => {
            let plan = crate::soak::Plan {
                module: cycle::default_module(module),
                cycles,
                leaky,
                every,
            };
            report_outcome(format, |p| crate::soak::run(&plan, p))
        }
        Cmd::Selftest { module, format } => {
            let t = selftest::run(&cycle::default_module(module))?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&t)?),
                Format::Human => {
                    for c in &t.cases {
                        println!(
                            "{} {}: expected {}, got {}",
                            if c.ok { "ok  " } else { "FAIL" },
                            c.name,
                            c.expected,
                            c.actual
                        );
                    }
                }
            }
            Ok(if t.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Parse {
            input,
            ko,
            sections,
            format,
        } => run_parse(input, ko.zip(sections), format),
        Cmd::Scan { format, command } => run_scan(&command, format),
        Cmd::Layout { name, ko } => {
            let layout = crate::layout::ModuleLayout::record(&name, &ko)?;
            println!("{}", serde_json::to_string_pretty(&layout)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Refs { addresses, format } => {
            let targets = addresses
                .iter()
                .map(|a| {
                    u64::from_str_radix(a.trim_start_matches("0x"), 16)
                        .with_context(|| format!("{a:?} is not a hex address"))
                })
                .collect::<Result<Vec<u64>>>()?;
            let hits = crate::refs::find(&targets)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&hits)?),
                Format::Human => {
                    for h in &hits {
                        println!(
                            "{} held at {} {}",
                            h.target,
                            h.at,
                            h.symbol.as_deref().unwrap_or("(heap)")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Census {
            format,
            naive,
            modules,
        } => {
            let modules = if modules.is_empty() {
                census::modules_in(std::path::Path::new(initramfs::MODULE_DIR))?
            } else {
                modules
            };
            anyhow::ensure!(
                !modules.is_empty(),
                "no modules given and none in {}",
                initramfs::MODULE_DIR
            );
            let c = census::run(&modules, naive)?;
            match format {
                Format::Human => print!("{}", c.human()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&c)?),
            }
            Ok(if c.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn run_vm(a: VmArgs) -> Result<ExitCode> {
    // The kernel ends init's arguments at a second `--`: it would be lost.
    anyhow::ensure!(
        !a.command.iter().any(|w| w == "--"),
        "the guest command cannot contain '--' (the kernel command line ends init's arguments there): give the command's words without it"
    );
    let dir = a.build_dir.join(a.arch.name());
    let modules = if a.modules.is_empty() {
        census::modules_in(&dir)
            .with_context(|| format!("no modules given and cannot list {}", dir.display()))?
    } else {
        a.modules
    };
    let spec = VmSpec {
        arch: a.arch,
        kernel: a.kernel.unwrap_or_else(|| dir.join("kernel-image")),
        contents: Contents {
            init: a.init.unwrap_or_else(|| dir.join("leaklab")),
            modules,
        },
        command: a.command,
        append: a.append,
        memory_mib: a.memory,
        cpus: a.cpus,
        timeout: Duration::from_secs(a.timeout),
        accel: a.accel,
        log: a.log.unwrap_or_else(|| {
            a.build_dir
                .join("results")
                .join(format!("console-{}.log", a.arch.name()))
        }),
        qemu: a.qemu,
        show_kernel: a.verbose,
    };
    let out = vm::run(&spec)?;
    eprintln!(
        "vm: {} under {}: init after {}, guest command exited {} after {:.1} s",
        spec.arch.name(),
        out.accel.to_uppercase(),
        out.boot_to_init
            .map_or_else(|| "?".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
        out.status,
        out.wall.as_secs_f64()
    );
    Ok(ExitCode::from(u8::try_from(out.status).unwrap_or(1)))
}
