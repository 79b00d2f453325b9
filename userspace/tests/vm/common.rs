// SPDX-License-Identifier: GPL-2.0
//! What every check uses: the build directory, the one way to boot a guest
//! ([`Guest`]), the schema check every JSON document passes before a test
//! reads it ([`Doc`]), the one-line error check, and the catalogue.

use std::{
    fmt,
    ops::Deref,
    path::PathBuf,
    process::{Command, Output},
};

use serde_json::Value;

use crate::views::Document;

pub fn build_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("LEAKLAB_BUILD_DIR")
            .expect("LEAKLAB_BUILD_DIR is not set: run these tests through 'make test'"),
    )
}

/// Runs the host's `leaklab` with `args`.
pub fn leaklab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(args)
        .output()
        .expect("running leaklab")
}

/// `name` in the build directory's `results/`.
pub fn log_path(name: &str) -> String {
    build_dir().join("results").join(name).display().to_string()
}

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The docs' samples of `source` (a command `scripts/docs.py` knows, such
/// as `matrix x86_64`) are what the tree prints now: `output` is that
/// command's output, kept in `results/doc-NAME.txt`; every page's sample
/// made from it must match (`make docs` updates them).
pub fn assert_doc_samples(source: &str, name: &str, output: &str) {
    let file = log_path(&format!("doc-{name}.txt"));
    std::fs::write(&file, output).unwrap();
    let out = Command::new("python3")
        .current_dir(repo())
        .args(["scripts/docs.py", "compare", source, &file])
        .env("LEAKLAB", env!("CARGO_BIN_EXE_leaklab"))
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A guest to boot with `leaklab vm`: its architecture, its console log and
/// more `vm` options, then one command to run in it.
///
/// `Guest::new(arch, "name").vm_args(&[...]).json::<T>(&["matrix"])` boots
/// it, runs `leaklab matrix --format json` there and returns the exit status
/// and the document, checked against the schema and read as `T`;
/// [`Guest::run`] returns the bare process output.
pub struct Guest {
    arch: Option<String>,
    log: Option<String>,
    vm: Vec<String>,
}

impl Guest {
    /// An `arch` guest, its console log in `results/test-{name}-{arch}.log`.
    pub fn new(arch: &str, name: &str) -> Self {
        Self {
            arch: Some(arch.to_string()),
            log: Some(log_path(&format!("test-{name}-{arch}.log"))),
            vm: Vec::new(),
        }
    }

    /// A guest of `leaklab vm`'s default architecture, with no console log.
    pub fn default_arch() -> Self {
        Self {
            arch: None,
            log: None,
            vm: Vec::new(),
        }
    }

    /// The console log in `results/{file}`.
    pub fn log_as(mut self, file: &str) -> Self {
        self.log = Some(log_path(file));
        self
    }

    /// More `leaklab vm` options (before `--`).
    pub fn vm_args(mut self, args: &[&str]) -> Self {
        self.vm.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The console log's path.
    pub fn log(&self) -> &str {
        self.log
            .as_deref()
            .expect("this guest keeps no console log")
    }

    /// Boots the guest, runs `command` there (a leaklab command, its words
    /// without `leaklab`, or a program of the guest's busybox such as `sh`),
    /// and returns what `leaklab vm` did: its status (the guest command's),
    /// stdout, stderr.
    pub fn run(&self, command: &[&str]) -> Output {
        let dir = build_dir();
        let mut args = vec!["vm"];
        if let Some(arch) = &self.arch {
            args.extend_from_slice(&["--arch", arch]);
        }
        args.extend_from_slice(&["--build-dir", dir.to_str().unwrap()]);
        if let Some(log) = &self.log {
            args.extend_from_slice(&["--log", log]);
        }
        args.extend(self.vm.iter().map(String::as_str));
        args.push("--");
        args.extend_from_slice(command);
        leaklab(&args)
    }

    /// As [`Guest::run`], the command required to exit 0: its stdout and
    /// stderr.
    pub fn run_ok(&self, command: &[&str]) -> (String, String) {
        let out = self.run(command);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout: {stdout}\nstderr: {stderr}"
        );
        (stdout, stderr)
    }

    /// Boots the guest, runs `leaklab <command> --format json` there, and
    /// returns the exit status and the document (see [`Doc::from_output`]).
    pub fn json<T: Document>(&self, command: &[&str]) -> (Option<i32>, Doc<T>) {
        let mut command = command.to_vec();
        command.extend_from_slice(&["--format", "json"]);
        let out = self.run(&command);
        (out.status.code(), Doc::from_output(&out))
    }
}

/// Runs the host's `leaklab <args> --format json`, and returns the exit
/// status and the document (see [`Doc::from_output`]).
pub fn host_json<T: Document>(args: &[&str]) -> (Option<i32>, Doc<T>) {
    let mut args = args.to_vec();
    args.extend_from_slice(&["--format", "json"]);
    let out = leaklab(&args);
    (out.status.code(), Doc::from_output(&out))
}

/// A JSON document leaklab printed, read through its typed view `T`
/// (`doc.field` reaches the view). Printed, it is the whole document as
/// JSON (`{doc:#}`: pretty), for failure messages.
pub struct Doc<T> {
    pub raw: Value,
    view: T,
}

impl<T: Document> Doc<T> {
    /// The document on `out`'s stdout: JSON, valid against the schema (see
    /// [`assert_schema`]), of `T`'s kind, and readable as `T`.
    pub fn from_output(out: &Output) -> Self {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Self::parse(&String::from_utf8_lossy(&out.stdout), &stderr)
    }

    /// As [`Doc::from_output`], for one document of several a guest
    /// printed (`stderr` for the failure message).
    pub fn parse(stdout: &str, stderr: &str) -> Self {
        let raw: Value = serde_json::from_str(stdout).unwrap_or_else(|e| {
            panic!("guest output is not JSON ({e}): {stdout}\nstderr: {stderr}")
        });
        assert_schema(&raw);
        assert_eq!(raw["schema"], T::SCHEMA, "not the document expected");
        let view = serde_json::from_value(raw.clone())
            .unwrap_or_else(|e| panic!("{} does not read as its view ({e}): {raw:#}", T::SCHEMA));
        Self { raw, view }
    }
}

impl<T> Deref for Doc<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.view
    }
}

impl<T> fmt::Display for Doc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.raw)
        } else {
            write!(f, "{}", self.raw)
        }
    }
}

/// Checks `doc` against the documented schema
/// (Documentation/schema/leaklab-1.schema.json), and that the schema can
/// tell: the same document with its kind removed, or with a field of the
/// wrong type, is refused.
pub fn assert_schema(doc: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../Documentation/schema/leaklab-1.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .take(10)
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match the schema: {errors:#?}",
        doc["schema"]
    );
    let mut unnamed = doc.clone();
    unnamed.as_object_mut().unwrap().remove("schema");
    assert!(
        !validator.is_valid(&unnamed),
        "the schema accepts a document with no kind"
    );
    let mut mistyped = doc.clone();
    let key = mistyped
        .as_object()
        .unwrap()
        .keys()
        .find(|k| *k != "schema")
        .unwrap()
        .clone();
    mistyped[&key] = Value::from(-1.5);
    assert!(
        !validator.is_valid(&mistyped),
        "the schema accepts {key}: -1.5"
    );
}

/// A failure must be one line on stderr, naming the console log where there is one.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("leaklab: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(
        errors[0].contains(needle),
        "{:?} lacks {needle:?}",
        errors[0]
    );
}

/// The catalogue the module was built from, for a run whose document does
/// not list its patterns: one file per pattern in `samples/`, named after
/// it (`samples/mod.rs` lists them), sorted.
pub fn catalogue() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|file| file.strip_suffix(".rs").map(str::to_string))
        .filter(|name| name != "mod")
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no sample in {dir}");
    names
}

/// Asserts that a run's patterns, `names`, are the whole catalogue (every
/// sample in `samples/`, once), and that it is not empty.
pub fn assert_whole_catalogue<'a>(names: impl IntoIterator<Item = &'a str>) {
    let mut names: Vec<&str> = names.into_iter().collect();
    assert!(!names.is_empty(), "the run has no pattern");
    names.sort_unstable();
    assert_eq!(
        names,
        catalogue(),
        "the run's patterns are not the catalogue"
    );
}
