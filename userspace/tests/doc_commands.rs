// SPDX-License-Identifier: GPL-2.0
//! The docs' command lines are real: every `leaklab ...` and `make ...`
//! line in a code block of README.md and Documentation/**/*.md.
//!
//! - Code blocks say what they hold: `sh` (or `bash`, `shell`) for commands,
//!   every line of them; `console` for a session, its `$ ` and `# ` lines;
//!   `text`, `c`, `yaml`, ... for anything else, not read here. A block
//!   without a language is refused, so that no command goes unchecked.
//! - A command line is joined over `\` continuations; a `$ ` prompt, `sudo`,
//!   `env`, `taskset -c CPUS`, `nice`, `timeout N` and `NAME=value`
//!   assignments before the program are skipped, as are comments,
//!   redirections and here-documents. Each command of a pipeline or list
//!   (`|`, `&&`, `||`, `;`) is checked on its own, and `sh -c '...'`'s
//!   script too.
//! - The tool's lines (`leaklab`, `build/leaklab`, `./leaklab`, any
//!   `.../leaklab`) are parsed by the tool's own clap definition
//!   (`Cli::try_parse_from`); `vm`'s guest command too when it is one of
//!   leaklab's.
//! - The project's make lines: each `NAME=value` must be a variable the
//!   Makefile reads, and `make -n` of the line must succeed in the
//!   repository, with `MAKE=:` so that recipes calling `$(MAKE)` run
//!   nothing (`make -n` runs those lines). A prerequisite under `build/`
//!   that only an earlier step writes (`build/ARCH/kdir`) counts as there.
//!   Lines with `-C DIR` or `O=` are the kernel's own make, not checked.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use clap::{error::ErrorKind, Parser};
use leaklab::cli::{is_command, Cli};

#[path = "doc_commands/shell.rs"]
mod doc_shell;
use doc_shell::{commands_of, Invocation};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// README.md and every page under Documentation/.
fn doc_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut files = vec![repo().join("README.md")];
    walk(&repo().join("Documentation"), &mut files);
    files
}

/// A code block: its language and its lines, each with its line number.
struct Block {
    lang: String,
    start: usize,
    lines: Vec<(usize, String)>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f));
        match (&mut open, fence) {
            (None, Some(f)) => {
                let lang = trimmed[f.len()..].trim().to_string();
                let block = Block {
                    lang,
                    start: i + 1,
                    lines: Vec::new(),
                };
                open = Some((f.to_string(), block));
            }
            (Some((f, _)), Some(g)) if *f == g && trimmed.trim() == g => {
                out.push(open.take().unwrap().1);
            }
            (Some((_, b)), _) => b.lines.push((i + 1, line.to_string())),
            (None, None) => {}
        }
    }
    out
}

/// Whether clap accepts `args` (the words after the program), else its
/// error, first line.
fn tool_error(args: &[String]) -> Option<String> {
    let argv = std::iter::once("leaklab".to_string()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(_) => None,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            None
        }
        Err(e) => Some(e.render().to_string().lines().next().unwrap_or("").into()),
    }
}

/// Every error of a leaklab command line: its own, and its guest
/// command's when it runs `vm -- <leaklab command>`.
fn check_tool(args: &[String]) -> Vec<String> {
    let mut errors: Vec<String> = tool_error(args).into_iter().collect();
    if args.first().is_some_and(|a| a == "vm") {
        if let Some(i) = args.iter().position(|a| a == "--") {
            let mut guest = &args[i + 1..];
            if guest.first().is_some_and(|a| a == "leaklab") {
                guest = &guest[1..];
            }
            if guest.first().is_some_and(|a| is_command(a)) {
                errors.extend(tool_error(guest).map(|e| format!("in the guest: {e}")));
            } else if guest.len() == 3 && guest[0] == "sh" && guest[1] == "-c" {
                for inv in doc_shell::script(&guest[2]) {
                    if let Invocation::Tool(args) = inv {
                        errors.extend(
                            check_tool(&args)
                                .into_iter()
                                .map(|e| format!("in the guest: {e}")),
                        );
                    }
                }
            }
        }
    }
    errors
}

/// The variables the Makefile reads.
fn makefile_reads(makefile: &str, name: &str) -> bool {
    [
        format!("$({name})"),
        format!("$({name},"),
        format!("origin {name}"),
        format!("{name} ?="),
        format!("{name} :="),
    ]
    .iter()
    .any(|p| makefile.contains(p.as_str()))
}

/// What is wrong with `make ARGS`, or None.
fn check_make(args: &[String], makefile: &str) -> Option<String> {
    if args
        .iter()
        .any(|a| a.starts_with("-C") || a.starts_with("O="))
    {
        return None; // the kernel's make
    }
    for a in args {
        if let Some((name, _)) = a.split_once('=') {
            if !makefile_reads(makefile, name) {
                return Some(format!("the Makefile reads no variable {name}"));
            }
        }
    }
    let out = Command::new("timeout")
        .arg("120")
        .args(["make", "-n", "--no-print-directory", "MAKE=:"])
        .args(args)
        .current_dir(repo())
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("MFLAGS")
        .output()
        .expect("make");
    if out.status.success() {
        return None;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let build = format!("No rule to make target '{}/build/", repo().display());
    if err.contains(&build) {
        return None; // an earlier step's output, such as build/ARCH/kdir
    }
    let last = err.lines().last().unwrap_or("(no message)");
    Some(format!("make -n failed ({}): {last}", out.status))
}

/// Every problem of one document (`file:line: command`, then the
/// error), and how many tool and make lines it checked.
fn check_doc(path: &Path, makefile: &str) -> (Vec<String>, usize, usize) {
    let text = fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(repo()).unwrap().display().to_string();
    let mut problems = Vec::new();
    let (mut tools, mut makes) = (0, 0);
    for block in blocks(&text) {
        if block.lang.is_empty() {
            problems.push(format!(
                "{name}:{}: a code block without a language: say `sh` for commands, `text` for output",
                block.start
            ));
            continue;
        }
        for (line, cmd, invocation) in commands_of(&block.lang, &block.lines) {
            let errors = match &invocation {
                Invocation::Tool(args) => {
                    tools += 1;
                    check_tool(args)
                }
                Invocation::Make(args) => {
                    makes += 1;
                    check_make(args, makefile).into_iter().collect()
                }
            };
            for e in errors {
                problems.push(format!("{name}:{line}: {cmd}\n    {e}"));
            }
        }
    }
    (problems, tools, makes)
}

#[test]
fn every_command_line_in_the_docs_is_accepted() {
    let makefile = fs::read_to_string(repo().join("Makefile")).unwrap();
    let mut problems = Vec::new();
    let (mut docs, mut tools, mut makes) = (0, 0, 0);
    for f in doc_files() {
        let (p, t, m) = check_doc(&f, &makefile);
        problems.extend(p);
        (docs, tools, makes) = (docs + 1, tools + t, makes + m);
    }
    eprintln!("{docs} docs: {tools} leaklab lines and {makes} make lines checked");
    assert!(
        docs > 10 && tools > 40 && makes > 30,
        "too few found: {docs} docs, {tools} leaklab lines, {makes} make lines"
    );
    assert!(
        problems.is_empty(),
        "{} command line(s) in the docs are wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_wrong_flag_is_caught() {
    let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert!(check_tool(&args("check my.ko --cycles 3")).is_empty());
    assert!(!check_tool(&args("check my.ko --no-such-flag")).is_empty());
    assert!(!check_tool(&args("vm -- cycle --no-such-flag")).is_empty());
    assert!(check_tool(&args("vm -- sh -c true")).is_empty());
    let in_sh = |s: &str| ["vm", "--", "sh", "-c", s].map(String::from).to_vec();
    assert!(check_tool(&in_sh("insmod x.ko && leaklab patterns")).is_empty());
    assert!(!check_tool(&in_sh("insmod x.ko && leaklab patterns --bad")).is_empty());
    let makefile = fs::read_to_string(repo().join("Makefile")).unwrap();
    assert_eq!(check_make(&args("run ARCH=arm64"), &makefile), None);
    assert!(check_make(&args("run SOURCE=x"), &makefile).is_some());
    assert!(check_make(&args("no-such-target"), &makefile).is_some());
    assert!(check_make(&args("run ARCH=sparc"), &makefile).is_some());
}

#[test]
fn blocks_and_lines_are_read_as_documented() {
    let text = "x\n```sh\nleaklab parse - \\\n  --format json   # saved\n```\n```text\nleaklab check: out\n```\n```console\n$ sudo leaklab doctor\nleaklab: output\n```\n";
    let found: Vec<(usize, Invocation)> = blocks(text)
        .iter()
        .flat_map(|b| commands_of(&b.lang, &b.lines))
        .map(|(l, _, i)| (l, i))
        .collect();
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            (3, Invocation::Tool(words("parse - --format json"))),
            (10, Invocation::Tool(words("doctor"))),
        ]
    );
}

/// Lists every command line the first test checks, and what it runs:
/// `cargo test --test doc_commands list_all -- --ignored --nocapture`.
#[test]
#[ignore]
fn list_all() {
    for f in doc_files() {
        let text = fs::read_to_string(&f).unwrap();
        for b in blocks(&text) {
            for (l, _, i) in commands_of(&b.lang, &b.lines) {
                eprintln!("{}:{l}: {i:?}", f.display());
            }
        }
    }
}
