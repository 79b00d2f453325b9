// SPDX-License-Identifier: GPL-2.0
//! leaklab as a LAVA test, proven with LAVA's own dispatcher and validator
//! (Debian 12's lava-dispatcher 2023.01, unpacked by `scripts/lava.sh`):
//! `make lava`'s run (`scripts/lava-job.sh`) on both arches, clean and with
//! the sabotaged module; the job files and the test definition through
//! LAVA's validator; and the definition's steps in a guest with LAVA's own
//! `lava-test-case` and `lava-test-set`, their signals read by LAVA's
//! test-shell code.
//!
//! What LAVA recorded is read here with LAVA's own YAML loader
//! (`lava-run.py log`), not with `leaklab lava results`, the code under test.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::common::{assert_schema, build_dir, catalogue, leaklab, repo, Guest};

/// The LAVA tree `scripts/lava.sh` unpacks (`make setup` fetched it).
fn lava_root() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/lava.sh"))
        .output()
        .expect("running scripts/lava.sh");
    assert!(
        out.status.success(),
        "scripts/lava.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `scripts/lava-run.py ROOT args...` under Debian's python.
pub fn lava_py(args: &[&str]) -> Output {
    Command::new("/usr/bin/python3")
        .arg(repo().join("scripts/lava-run.py"))
        .arg(lava_root())
        .args(args)
        .output()
        .expect("running scripts/lava-run.py")
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What a LAVA log holds, as LAVA's YAML loader reads it.
pub struct LavaLog {
    /// lava/job's result.
    pub job: String,
    /// (definition, test_case_id) -> result, in a test's cases.
    pub cases: BTreeMap<(String, String), String>,
    /// The console's lines.
    pub console: Vec<String>,
}

pub fn read_log(log: &Path) -> LavaLog {
    let out = lava_py(&["log", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let mut l = LavaLog {
        job: String::new(),
        cases: BTreeMap::new(),
        console: Vec::new(),
    };
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let msg = &v["msg"];
        match v["lvl"].as_str() {
            Some("results") if msg["definition"] == "lava" && msg["case"] == "job" => {
                l.job = msg["result"].as_str().unwrap().to_string();
            }
            Some("results") if msg["definition"] == "lava" => {}
            Some("results") => {
                let id = msg["extra"]["test_case_id"]
                    .as_str()
                    .or(msg["case"].as_str())
                    .unwrap()
                    .to_string();
                let definition = msg["definition"].as_str().unwrap().to_string();
                let result = msg["result"].as_str().unwrap().to_string();
                let old = l.cases.insert((definition, id.clone()), result);
                assert!(old.is_none(), "LAVA reported {id} twice");
            }
            Some("target") => {
                if let Some(s) = msg.as_str() {
                    l.console.push(s.trim_end().to_string());
                }
            }
            _ => {}
        }
    }
    l
}

/// The KTAP results leaklab printed on the console: name -> pass/fail.
fn console_ktap(console: &[String]) -> BTreeMap<String, String> {
    console
        .iter()
        .filter_map(|l| l.strip_prefix("@1 "))
        .filter_map(|l| {
            let (result, rest) = match l.strip_prefix("not ok ") {
                Some(r) => ("fail", r),
                None => ("pass", l.strip_prefix("ok ")?),
            };
            let name = rest.split_whitespace().nth(1)?;
            Some((name.to_string(), result.to_string()))
        })
        .collect()
}

/// `make lava`'s run for `arch` (`scripts/lava-job.sh`), `sabotaged` or
/// not: its exit status and the LAVA log.
fn make_lava(arch: &str, sabotaged: bool) -> (Option<i32>, LavaLog, PathBuf) {
    let dir = build_dir();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/lava-job.sh"))
        .arg(env!("CARGO_BIN_EXE_leaklab"))
        .arg(&dir)
        .arg(arch);
    if sabotaged {
        cmd.arg("sabotaged");
    }
    let out = cmd.output().expect("running scripts/lava-job.sh");
    let name = if sabotaged {
        format!("lava-{arch}-sabotaged")
    } else {
        format!("lava-{arch}")
    };
    let results = dir.join("results").join(name);
    let log = results.join("run/lava.log");
    assert!(log.is_file(), "no LAVA log: {}", text(&out));
    eprintln!("{}", text(&out));
    (out.status.code(), read_log(&log), results)
}

/// The matrix rows of the catalogue, each `cycle1.PATTERN.VARIANT`.
fn catalogue_rows() -> Vec<(String, &'static str)> {
    catalogue()
        .into_iter()
        .flat_map(|p| {
            [
                (format!("cycle1.{p}.leaky"), "leaky"),
                (format!("cycle1.{p}.fixed"), "fixed"),
            ]
        })
        .collect()
}

/// Every KTAP line on the console is a LAVA case of the matrix monitor
/// with the same result, and there are no others.
fn assert_cases_are_the_console(l: &LavaLog) -> BTreeMap<String, String> {
    let ktap = console_ktap(&l.console);
    let lava: BTreeMap<String, String> = l
        .cases
        .iter()
        .filter(|((d, _), _)| d == "leaklab-matrix")
        .map(|((_, id), r)| (id.clone(), r.clone()))
        .collect();
    assert!(!ktap.is_empty(), "no KTAP on the console");
    assert_eq!(lava, ktap, "LAVA's cases are not the console's KTAP");
    lava
}

fn lava_job_runs_every_row(arch: &str) {
    let (status, l, results) = make_lava(arch, false);
    assert_eq!(status, Some(0), "the gate did not pass");
    assert_eq!(l.job, "pass");
    let rows = assert_cases_are_the_console(&l);
    for (row, _) in catalogue_rows() {
        assert_eq!(rows.get(&row).map(String::as_str), Some("pass"), "{row}");
    }
    assert!(rows.values().all(|r| r == "pass"), "{rows:?}");
    assert_eq!(
        l.cases
            .get(&("leaklab".into(), "exit".into()))
            .map(String::as_str),
        Some("pass"),
        "leaklab's exit status is not a passing case"
    );
    assert!(l.console.iter().any(|c| c == "@exit 0"));
    // The gate's own JSON.
    let v: Value =
        serde_json::from_str(&fs::read_to_string(results.join("results.json")).unwrap()).unwrap();
    assert_schema(&v);
    assert_eq!(v["ok"], true);
    assert_eq!(v["cases"].as_array().unwrap().len(), l.cases.len());
}

on_both_arches!(lava_job_runs_every_row: lava_job_runs_every_matrix_row_x86_64, lava_job_runs_every_matrix_row_arm64);

fn lava_gate_fails_the_sabotaged_rows(arch: &str) {
    let (status, l, results) = make_lava(arch, true);
    // LAVA's infrastructure worked: its job passed, whatever the cases say.
    assert_eq!(l.job, "pass");
    assert_eq!(status, Some(1), "the gate must fail on failed cases");
    let rows = assert_cases_are_the_console(&l);
    // The sabotaged module runs the fixed code for every leaky variant:
    // each leaky row fails (nothing leaked), each fixed row passes.
    for (row, variant) in catalogue_rows() {
        let want = if variant == "leaky" { "fail" } else { "pass" };
        assert_eq!(rows.get(&row).map(String::as_str), Some(want), "{row}");
    }
    assert_eq!(
        l.cases
            .get(&("leaklab".into(), "exit".into()))
            .map(String::as_str),
        Some("fail")
    );
    assert!(l.console.iter().any(|c| c == "@exit 1"));
    let v: Value =
        serde_json::from_str(&fs::read_to_string(results.join("results.json")).unwrap()).unwrap();
    assert_schema(&v);
    assert_eq!(v["ok"], false);
}

on_both_arches!(lava_gate_fails_the_sabotaged_rows: lava_gate_fails_the_sabotaged_rows_x86_64, lava_gate_fails_the_sabotaged_rows_arm64);

/// The test definition and every job `leaklab lava job` writes pass LAVA's
/// validator (lava-common's schemas; `lava-run --validate` for QEMU jobs),
/// and a broken job and a broken definition do not.
#[test]
#[ignore = "needs the build and LAVA's packages: run through 'make test'"]
fn lava_files_pass_lavas_validator() {
    let dir = build_dir();
    let out_dir = dir.join("results/lava-validate");
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir).unwrap();
    let b = dir.to_str().unwrap();
    let mut jobs = Vec::new();
    for (name, args) in [
        ("qemu-x86_64", vec!["--arch", "x86_64"]),
        ("qemu-arm64", vec!["--arch", "arm64"]),
        (
            "qemu-x86_64-check",
            vec!["--arch", "x86_64", "--check", "examples/leaky_driver.ko"],
        ),
        (
            "rock5b",
            vec![
                "--arch",
                "arm64",
                "--device-type",
                "rk3588-rock-5b",
                "--kernel",
                "arm64/kernel-image",
                "--dtb",
                "rk3588-rock-5b.dtb",
                "--url",
                "http://lab.example/leaklab",
            ],
        ),
    ] {
        // The board job only names its files: a placeholder DTB will do
        // for the validator, which reads URLs, not blobs.
        fs::write(out_dir.join("rk3588-rock-5b.dtb"), b"").unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.ends_with(".ko") || a.ends_with("kernel-image") {
                    dir.join(if a.starts_with("examples") {
                        format!("x86_64/{a}")
                    } else {
                        a.to_string()
                    })
                    .display()
                    .to_string()
                } else if a.ends_with(".dtb") {
                    out_dir.join(a).display().to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let job_dir = out_dir.join(name);
        let mut all = vec!["lava", "job", "--build-dir", b, "--out"];
        all.push(job_dir.to_str().unwrap());
        all.extend(args.iter().map(String::as_str));
        let out = leaklab(&all);
        assert!(out.status.success(), "{name}: {}", text(&out));
        let job = String::from_utf8(out.stdout).unwrap().trim().to_string();
        jobs.push(job);
    }
    let rock = fs::read_to_string(&jobs[3]).unwrap();
    assert!(rock.contains("url: 'http://lab.example/leaklab/leaklab-initramfs.cpio.gz'"));
    assert!(rock.contains("console_device: ttyS2"));
    assert!(fs::read_to_string(&jobs[2])
        .unwrap()
        .contains("name: leaklab-check"));

    let definition = repo().join("lava/leaklab.yaml");
    let mut files: Vec<&str> = jobs.iter().map(String::as_str).collect();
    files.push(definition.to_str().unwrap());
    let out = lava_py(&[&["validate"], files.as_slice()].concat());
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.matches(": valid ").count(), files.len(), "{said}");
    assert_eq!(said.matches("and lava-run --validate").count(), 3, "{said}");

    // The validator can say no: a monitor without its end, a definition of
    // another format.
    let broken_job = out_dir.join("broken-job.yaml");
    fs::write(
        &broken_job,
        fs::read_to_string(&jobs[0])
            .unwrap()
            .replacen("      end: '@1 # Totals:'\n", "", 1),
    )
    .unwrap();
    let broken_def = out_dir.join("broken-definition.yaml");
    fs::write(
        &broken_def,
        fs::read_to_string(&definition).unwrap().replace(
            "Lava-Test Test Definition 1.0",
            "Lava-Test Test Definition 2.0",
        ),
    )
    .unwrap();
    for broken in [&broken_job, &broken_def] {
        let out = lava_py(&["validate", broken.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid"));
    }
}

/// LAVA's test-shell helpers, as its deployment writes them (an
/// interpreter line first), into `dir`.
fn lava_helpers(dir: &Path) -> Vec<String> {
    let shell = Path::new(&lava_root())
        .join("usr/lib/python3/dist-packages/lava_dispatcher/lava_test_shell");
    fs::create_dir_all(dir).unwrap();
    ["lava-test-case", "lava-test-set", "lava-common-functions"]
        .iter()
        .map(|h| {
            let body = fs::read_to_string(shell.join(h)).unwrap();
            let path = dir.join(h);
            fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            format!("--file={}:/usr/bin/", path.display())
        })
        .collect()
}

/// The definition's run steps, as its YAML lists them.
fn definition_steps() -> Vec<String> {
    let yaml = fs::read_to_string(repo().join("lava/leaklab.yaml")).unwrap();
    let run = yaml.split("\nrun:\n").nth(1).expect("no run: section");
    run.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- "))
        .map(str::to_string)
        .collect()
}

fn lava_definition_reports_every_row(arch: &str) {
    let dir = build_dir();
    let arch_dir = dir.join(arch);
    let helpers = lava_helpers(&dir.join(format!("results/lava-helpers-{arch}")));
    let mut vm: Vec<String> = helpers;
    for ko in [
        "leaklab.ko",
        "kmemleak-test.ko",
        "rust_minimal.ko",
        "examples/leaky_driver.ko",
    ] {
        vm.push(format!("--module={}", arch_dir.join(ko).display()));
    }
    for f in ["lava/leaklab.yaml", "lava/leaklab-lava.sh"] {
        vm.push(format!(
            "--file={}:/root/definition/lava/",
            repo().join(f).display()
        ));
    }
    // The parameters as LAVA sets them (shell variables of the step), then
    // the steps, in the definition's directory; the matrix's JSON after.
    let script = format!(
        "cd /root/definition && export LAVA_RESULT_DIR=/tmp/lava-results && LEAKLAB=leaklab MODULE=/lib/modules/leaky_driver.ko CHECK_ARGS='--param bug=error_path' OUT=/tmp/leaklab-lava && {} && echo '--- matrix' && cat /tmp/leaklab-lava/matrix.json && echo '--- check' && cat /tmp/leaklab-lava/check.json",
        definition_steps().join(" && ")
    );
    let vm_refs: Vec<&str> = vm.iter().map(String::as_str).collect();
    let guest = Guest::new(arch, "lava-definition").vm_args(&vm_refs);
    let (stdout, _) = guest.run_ok(&["sh", "-c", &script]);

    // The signals, read by LAVA's own test-shell code.
    let out = lava_py(&["signals", guest.log()]);
    assert!(out.status.success(), "{}", text(&out));
    let cases: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let case = |id: &str| -> &Value {
        cases
            .iter()
            .find(|c| c["test_case_id"] == id)
            .unwrap_or_else(|| panic!("no case {id} in {cases:?}"))
    };
    for c in &cases {
        let id = c["test_case_id"].as_str().unwrap();
        let set = id.split('.').next().unwrap();
        assert_eq!(c["set"], set, "{id} is not in its command's test set");
    }
    assert_eq!(case("doctor.exit_status")["result"], "pass");
    assert_eq!(case("doctor.canary_kmemleak")["result"], "pass");
    assert_eq!(case("matrix.exit_status")["result"], "pass");
    assert_eq!(case("matrix.exit_status")["measurement"], 0.0);

    // Every matrix row is a case, measured in the objects the matrix's own
    // JSON says the detectors found (the larger count: one of them cannot
    // see some leaks).
    let (json, check_json) = stdout
        .split("--- matrix\n")
        .nth(1)
        .and_then(|j| j.split_once("--- check\n"))
        .expect("no matrix and check JSON");
    let matrix: Value = serde_json::from_str(json).unwrap();
    assert_schema(&matrix);
    let cycle = &matrix["cycles"][0];
    for v in cycle["verdicts"].as_array().unwrap() {
        let name = format!(
            "matrix.cycle1.{}.{}",
            v["pattern"].as_str().unwrap(),
            v["variant"].as_str().unwrap()
        );
        let c = case(&name);
        assert_eq!(c["result"], "pass", "{name}");
        assert_eq!(c["units"], "objects", "{name}");
        let found = v["found"]["objects"]
            .as_f64()
            .unwrap()
            .max(v["trace"]["found"]["objects"].as_f64().unwrap_or(0.0));
        assert_eq!(c["measurement"].as_f64(), Some(found), "{name}");
    }
    for (row, _) in catalogue_rows() {
        case(&format!("matrix.{row}"));
    }

    // The check of the driver with its error_path bug: each leak its JSON
    // lists is a failing case measured in its objects, and check's exit
    // status 1 a failing case.
    let check: Value = serde_json::from_str(check_json).unwrap();
    assert_schema(&check);
    let leaks = check["leaks"].as_array().unwrap();
    assert!(!leaks.is_empty(), "{check:#}");
    for l in leaks {
        let title = l["title"].as_str().unwrap();
        let name = format!("check.{}", title.replace(' ', "_"));
        let c = case(&name);
        assert_eq!(c["result"], "fail", "{name}");
        assert_eq!(c["units"], "objects", "{name}");
        assert_eq!(c["measurement"].as_f64(), l["objects"].as_f64(), "{name}");
    }
    for cycle in check["cycles"].as_array().unwrap() {
        assert_eq!(
            case(&format!("check.cycle_{}", cycle["cycle"]))["result"],
            "pass"
        );
    }
    assert_eq!(case("check.exit_status")["result"], "fail");
    assert_eq!(case("check.exit_status")["measurement"], 1.0);
}

on_both_arches!(lava_definition_reports_every_row: lava_definition_reports_every_row_x86_64, lava_definition_reports_every_row_arm64);
