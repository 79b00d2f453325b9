// SPDX-License-Identifier: GPL-2.0
//! The command line: what each subcommand takes, and which command it runs.
//! Options several commands share are defined once ([`args`]) and
//! flattened; each command's work is in `commands`, its printing in
//! `output`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    commands,
    kernel::interrupt,
    ko::Variant,
    output::{emit, progress::with_progress, Format, Outcome},
    pipeline::lab,
};

pub mod args;
mod check;
mod options;
mod sweep;
mod values;
mod vm;

use args::ModuleArg;
use args::{FormatArg, ResultFormatArg, RunsArg, SelectArgs, ShowFormatArg};
use values::VariantName;

/// leaklab: see kernel memory leaks happen, catch them, and prove the fix.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// `leaklab lava`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum LavaCmd {
    /// Write a LAVA job (job.yaml, the kernel, leaklab's initramfs, a
    /// board's DTB) into --out DIR and print its path. The initramfs runs
    /// the matrix (or `check KO`) with leaklab as /init; the job's monitors
    /// turn each KTAP line into a test case, and leaklab's exit status into
    /// the case `exit`.
    Job(options::LavaJobArgs),
    /// Read a LAVA job's log (the one lava-run writes, or `lavacli jobs logs
    /// --raw ID`): list its test cases and exit 0 only when the job
    /// completed, every case passed, every KTAP line on the console is a
    /// case with the same result, and leaklab's exit status is one. Exits 1
    /// when a case failed, 3 when LAVA's job itself failed.
    Results {
        /// The log file.
        log: PathBuf,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Print a leaklab result as LAVA test cases, `NAME RESULT [MEASUREMENT
    /// UNITS]` a line, for `lava-test-case` (the project's test definition,
    /// lava/leaklab.yaml, runs it): doctor, matrix, cycle or check JSON (leaks
    /// measured in objects), or KTAP.
    Cases {
        /// The result file (--format json, or KTAP).
        file: PathBuf,
    },
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Boot the project's kernel in QEMU with leaklab as /init and run a
    /// command there (a leaklab command, or any program of the guest's
    /// busybox: `-- sh -c '...'`); exits with that command's status.
    Vm(vm::VmCli),
    /// List the leak patterns of the loaded leaklab.ko.
    Patterns(FormatArg),
    /// Run a pattern's leaky or fixed variant N times in the loaded leaklab.ko.
    Trigger {
        /// Pattern name (see `leaklab patterns`).
        pattern: String,
        /// Which variant.
        #[arg(value_enum)]
        variant: VariantName,
        #[command(flatten)]
        runs: RunsArg,
        /// Run under the allocation trace, as `--detector trace` does (what
        /// that costs: `make bench`).
        #[arg(long)]
        trace: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Load leaklab.ko, run samples, unload it, harvest kmemleak, and check
    /// every pattern and variant against what the module said it leaks.
    Cycle {
        #[command(flatten)]
        select: SelectArgs,
        /// Variant to run (repeatable; default: both).
        #[arg(long = "variant", value_enum)]
        variants: Vec<VariantName>,
        #[command(flatten)]
        format: ResultFormatArg,
    },
    /// The main job: every pattern, leaky and fixed, the exit-time leak, the
    /// kernel's kmemleak-test.ko as a calibration and rust_minimal.ko as a
    /// negative control, all in one kmemleak window; one verdict table.
    /// Exits 0 only when everything is as expected.
    Matrix {
        #[command(flatten)]
        select: SelectArgs,
        /// A reference module and the objects it leaks, `KO=N` (repeatable;
        /// default: kmemleak-test.ko and rust_minimal.ko beside the module).
        #[arg(long = "reference", value_parser = lab::Reference::parse)]
        references: Vec<lab::Reference>,
        /// Give every pattern (and every reference module) a kmemleak window
        /// of its own, one after the other, as public load/unload tests do:
        /// the baseline `make bench` measures the one-window matrix against.
        #[arg(long)]
        sequential: bool,
        #[command(flatten)]
        format: ResultFormatArg,
    },
    /// Print a saved `cycle`/`matrix`/`check`/`sweep --format json` result
    /// as the table, as KTAP, or as one HTML page (--format html: the
    /// verdict, the tables, each leak's backtrace with its source lines,
    /// read from the current directory); exits as the run did (0 as
    /// expected, 1 not). Given `soak --format json` results, print each
    /// (or one HTML page with their plot) and, with --svg, plot their
    /// memory over cycles. Given a `watch` directory, print its leaks and
    /// trends and, with --svg, plot its memory over time with the leaks
    /// marked (exits 1 when it holds leaks).
    Show {
        /// The JSON files (one cycle, matrix, check or sweep result, or
        /// soak results), or one watch directory.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the plot (SVG) here.
        #[arg(long, value_name = "PATH")]
        svg: Option<PathBuf>,
        #[command(flatten)]
        format: ShowFormatArg,
    },
    /// Check that this machine can show leaks: root, kernel options,
    /// debugfs, kmemleak, the module's vermagic, memory; then a live canary
    /// (one leaky sample kmemleak must report, its fixed twin it must not).
    /// Exits 0 only when every check passes.
    Doctor {
        #[command(flatten)]
        opts: options::DoctorArgs,
        #[command(flatten)]
        format: ResultFormatArg,
    },

    /// Fuzz leaklab.ko's control files (random and adversarial writes, odd
    /// reads) in one kmemleak window; exit 0 only when every write outside
    /// the contract was refused, the kernel log stayed clean and nothing
    /// leaked outside the leaky samples.
    Fuzz {
        #[command(flatten)]
        plan: options::FuzzArgs,
        #[command(flatten)]
        format: FormatArg,
    },

    /// Run the samples under failing allocations (each allocation of each
    /// sample in turn, by fault injection) and leaky runs up to the leak
    /// cap, in one kmemleak window: nothing may crash, warn, or leak outside
    /// the leaky samples. Meant for a small guest (vm --memory 128).
    Faults {
        #[command(flatten)]
        module: ModuleArg,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Load, run the fixed variants (and one leaky sample, with --leaky),
    /// and unload leaklab.ko CYCLES times in one kmemleak window, sampling
    /// MemAvailable and Slab; `make soak` runs it and plots the result.
    Soak {
        #[command(flatten)]
        plan: options::SoakArgs,
        #[command(flatten)]
        format: FormatArg,
    },

    /// Watch for leaks until stopped (or for --rounds): each round scans
    /// with kmemleak (its settings left as found) and reports each leaked
    /// object once, ever, also across restarts; samples memory and its
    /// trend, and reads the kernel log. Events go to DIR/events.jsonl, the
    /// figures to a Prometheus textfile; `leaklab show DIR` renders it.
    /// Exits 0 when this run found nothing new, 1 when it did.
    Watch {
        #[command(flatten)]
        opts: options::WatchArgs,
        #[command(flatten)]
        format: FormatArg,
    },
    /// leaklab as a LAVA test: write a ready job from the current build, or
    /// read a job's log and fail unless every test case passed.
    #[command(subcommand)]
    Lava(LavaCmd),

    /// Check leaklab.ko's control interface against its contract (bad
    /// input refused without side effects, the leak cap, reads).
    Selftest {
        #[command(flatten)]
        module: ModuleArg,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Parse kmemleak reports from a saved kmemleak file or a kernel log
    /// (dmesg, journal, serial console) and print them grouped by backtrace,
    /// symbolized against a module's .ko when given. Exits 1 when there are
    /// reports, 3 when a log announces suspected leaks but holds none of
    /// their reports (booted without kmemleak.verbose=1).
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
        #[command(flatten)]
        format: FormatArg,
    },
    /// Run the scan protocol (auto-scan paused and restored, old reports
    /// flushed, the minimum age waited out from the command's end, scans
    /// until the set is stable) around COMMAND, or, with none, on what
    /// kmemleak holds now; print the reports grouped. Exits 1 when there are
    /// reports.
    Scan {
        #[command(flatten)]
        format: FormatArg,
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
        #[command(flatten)]
        format: FormatArg,
    },
    /// Check your own module (C or Rust) for leaks: load it with its
    /// parameters, run your exercise scripts, unload it, in cycles; every
    /// leak with its backtrace to file:line and the cycles that made it.
    /// Exits 0 when it leaks nothing, 1 when it leaks (or will not unload).
    Check {
        #[command(flatten)]
        plan: check::CheckArgs,
        #[command(flatten)]
        format: ResultFormatArg,
    },
    /// Load and unload kernel modules, scan kmemleak, and count the
    /// unreferenced objects each module left behind. Exits 0 when every
    /// module loaded, unloaded and leaked nothing, 1 otherwise.
    Census {
        #[command(flatten)]
        format: FormatArg,
        /// Harvest as public load/unload tests do, for comparison: `clear`
        /// before, `scan` twice and read right after the last unload, instead
        /// of the scan protocol.
        #[arg(long)]
        naive: bool,
        /// Module files (default: every .ko in /lib/modules).
        modules: Vec<PathBuf>,
    },
    /// Sweep a kernel's modules for leaks: each loaded with what it needs,
    /// checked in cycles by every detector the kernel has, and unloaded; one
    /// row per module. On the running kernel, or in guests of a kernel image
    /// (--in-guests, several at once, resumable). Exits 0 when no module
    /// leaked, hung or crashed (modules that cannot load are a result), 1
    /// otherwise.
    Sweep {
        #[command(flatten)]
        args: sweep::SweepArgs,
        #[command(flatten)]
        format: ResultFormatArg,
    },
}

/// Whether `word` names one of leaklab's subcommands (or `help`): in the
/// guest, such a command runs leaklab; any other runs a program of the
/// guest's (`leaklab vm -- sh -c '...'`).
pub fn is_command(word: &str) -> bool {
    use clap::CommandFactory;
    word == "help" || Cli::command().find_subcommand(word).is_some()
}

/// A usage error as one line: what clap found wrong, its tip, and where
/// the options are (`leaklab: error: invalid value '0' for '--rounds
/// <ROUNDS>': 0 is not in 1..=...: see 'leaklab watch --help'`). `args` is
/// the command line it was parsed from, program name first.
pub fn usage_error(e: &clap::Error, args: &[std::ffi::OsString]) -> String {
    let text = e.render().to_string();
    let mut what = String::new();
    for line in text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !what.is_empty() {
            what += if line.starts_with("tip:") { "; " } else { " " };
        }
        what += line;
    }
    format!(
        "leaklab: error: {what}: see '{} --help'",
        command_path(args)
    )
}

/// `leaklab watch`: the program and the subcommands `args` names before
/// its first option or operand.
fn command_path(args: &[std::ffi::OsString]) -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["leaklab".to_string()];
    for word in args.iter().skip(1) {
        let Some(sub) = command
            .find_subcommand(word.to_string_lossy().as_ref())
            .cloned()
        else {
            break;
        };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

/// Prepares for a command that works on the running kernel: root (the
/// doctor says so itself), and the undoing of its changes on Ctrl-C,
/// SIGTERM or a panic. Commands on files and the host's VMs need neither.
fn prepare(command: &Cmd) -> Result<()> {
    if matches!(
        command,
        Cmd::Vm(_) | Cmd::Show { .. } | Cmd::Parse { .. } | Cmd::Lava(_)
    ) {
        return Ok(());
    }
    let elsewhere = matches!(command, Cmd::Sweep { args, .. } if !args.runs_here());
    if !matches!(command, Cmd::Doctor { .. }) && !elsewhere {
        commands::require_root(&subcommand())?;
    }
    // These load modules and change kmemleak's settings: on Ctrl-C or
    // SIGTERM they undo both before they exit, and on a panic too.
    interrupt::install()?;
    crate::kernel::undo::install_panic_hook();
    Ok(())
}

/// Runs the parsed command line and returns the process exit status.
pub fn run(cli: Cli) -> Result<ExitCode> {
    use commands::*;
    prepare(&cli.command)?;
    match cli.command {
        Cmd::Vm(a) => crate::vm::args::run(a.plan(), is_command),
        Cmd::Patterns(f) => emit(&catalogue::patterns()?, f.get()),
        Cmd::Trigger {
            pattern,
            variant,
            runs,
            trace,
            format,
        } => emit(
            &catalogue::trigger(&pattern, variant.into(), runs.n, trace)?,
            format.get(),
        ),
        Cmd::Cycle {
            select,
            variants,
            format,
        } => {
            let both = [Variant::Leaky, Variant::Fixed];
            let plan = select.plan(if variants.is_empty() {
                both.to_vec()
            } else {
                variants.into_iter().map(Variant::from).collect()
            });
            report(format.get(), |p| lab::run(&plan, p))
        }
        Cmd::Matrix {
            select,
            references,
            sequential,
            format,
        } => {
            let mut plan = select.plan(vec![Variant::Leaky, Variant::Fixed]);
            plan.references = match references {
                r if r.is_empty() => lab::Reference::defaults_beside(&plan.module),
                r => r,
            };
            match sequential {
                true => report(format.get(), |p| lab::run_sequential(&plan, p)),
                false => report(format.get(), |p| lab::run(&plan, p)),
            }
        }
        Cmd::Show { files, svg, format } => show::run(&files, svg.as_deref(), format.get()),
        Cmd::Doctor { opts, format } => {
            let opts = opts.plan();
            report(format.get(), |p| Ok(doctor::diagnose(&opts, p)))
        }
        Cmd::Fuzz { plan, format } => {
            let plan = plan.plan();
            report(format.get(), |p| fuzz::run(&plan, p))
        }
        Cmd::Faults { module, format } => report(format.get(), |p| faults::run(&module.path(), p)),
        Cmd::Soak { plan, format } => {
            let plan = plan.plan();
            report(format.get(), |p| soak::run(&plan, p))
        }
        Cmd::Lava(cmd) => lava(cmd),
        Cmd::Watch { opts, format } => emit(
            &watch::run(&opts.plan(), format.get() == Format::Human)?,
            format.get(),
        ),
        Cmd::Selftest { module, format } => emit(&selftest::run(&module.path())?, format.get()),
        Cmd::Parse {
            input,
            ko,
            sections,
            format,
        } => {
            let format = format.get();
            let module = ko.as_deref().zip(sections.as_deref());
            emit(&parse::run(input.as_deref(), module, format)?, format)
        }
        Cmd::Scan { format, command } => report(format.get(), |p| scan::run(&command, p)),
        Cmd::Layout { name, ko } => layout(&name, &ko),
        Cmd::Refs { addresses, format } => emit(&refs::run(&addresses)?, format.get()),
        Cmd::Census {
            format,
            naive,
            modules,
        } => emit(&census::run(modules, naive)?, format.get()),
        Cmd::Check { plan, format } => {
            let plan = plan.plan();
            report(format.get(), |p| commands::check::run(&plan, p))
        }
        Cmd::Sweep { args, format } => sweep(args, format.get()),
    }
}

/// Runs `sweep`: a sweep, its LAVA jobs written, or their logs merged.
fn sweep(args: sweep::SweepArgs, format: Format) -> Result<ExitCode> {
    match args.task()? {
        sweep::SweepTask::Sweep(plan) => report(format, |p| commands::sweep::run(&plan, p)),
        sweep::SweepTask::LavaJobs(plan, shards) => {
            let jobs = commands::sweep::lava::write_jobs(&plan, &shards)?;
            let out = plan.guests.map(|g| g.out).unwrap_or_default();
            if jobs.is_empty() {
                eprintln!(
                    "sweep: no job written: every module has its row in {} already; 'leaklab sweep --lava-results {0}' merges them",
                    out.join("rows").display()
                );
            } else {
                eprintln!(
                    "sweep: wrote {} LAVA job(s); run or submit each ('lavacli jobs submit JOB'), save its log beside it as {} ('lavacli jobs logs --raw ID'), then merge them: leaklab sweep --lava-results {}",
                    jobs.len(),
                    commands::sweep::lava::LOG,
                    out.display()
                );
            }
            for j in jobs {
                println!("{}", j.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        sweep::SweepTask::LavaResults(dir) => {
            let merged = with_progress(|p| commands::sweep::lava::merge(&dir, p))?;
            let unconfirmed = merged.unconfirmed_leaks();
            if !unconfirmed.is_empty() {
                eprintln!(
                    "sweep: the leaks of {} come from LAVA's machines and are not confirmed alone (confirmed: null): check one again with 'leaklab sweep --in-guests --kernel K --modules-dir D --out O MODULE'",
                    unconfirmed.join(", ")
                );
            }
            emit(&merged, format)
        }
    }
}

/// Runs a `lava` subcommand.
fn lava(cmd: LavaCmd) -> Result<ExitCode> {
    match cmd {
        LavaCmd::Job(opts) => {
            let job = commands::lava::job::write(&opts.plan())?;
            eprintln!(
                    "lava: wrote {} beside the files it names; submit it with 'lavacli jobs submit {0}'",
                    job.display()
                );
            println!("{}", job.display());
            Ok(ExitCode::SUCCESS)
        }
        LavaCmd::Results { log, format } => {
            emit(&commands::lava::results::read(&log)?, format.get())
        }
        LavaCmd::Cases { file } => {
            for c in commands::lava::cases::read(&file)? {
                println!("{}", c.line());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `work` with progress on a terminal and emits what it found.
fn report<T: Outcome>(
    format: Format,
    work: impl FnOnce(&mut dyn FnMut(&str)) -> Result<T>,
) -> Result<ExitCode> {
    emit(&with_progress(work)?, format)
}

/// The subcommands this process was given, as clap names them (`cycle`,
/// `lava cases`), for messages.
fn subcommand() -> String {
    let args: Vec<_> = std::env::args_os().collect();
    let path = command_path(&args);
    path.strip_prefix("leaklab")
        .unwrap_or(&path)
        .trim()
        .to_string()
}
