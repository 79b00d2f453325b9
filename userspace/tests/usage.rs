// SPDX-License-Identifier: GPL-2.0
//! Usage errors: exit status 2 and one line on stderr that says what is
//! wrong and which `--help` shows the options; asked-for help and version
//! on stdout with status 0.

use std::process::{Command, Output};

fn leaklab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leaklab"))
        .args(args)
        .output()
        .unwrap()
}

/// Exit status 2, nothing on stdout, and one line on stderr holding each
/// of `needles`.
fn refused(args: &[&str], needles: &[&str]) {
    let out = leaklab(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
    assert!(err.starts_with("leaklab: error: "), "{args:?}: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
    }
}

#[test]
fn usage_errors_are_one_line_naming_the_commands_help() {
    refused(
        &["parse", "--fromat", "json", "x"],
        &[
            "'--fromat'",
            "tip: a similar argument exists: '--format'",
            "see 'leaklab parse --help'",
        ],
    );
    refused(&["bogus"], &["'bogus'", "see 'leaklab --help'"]);
    refused(
        &["parse", "x", "--ko", "y"],
        &[
            "not provided: --sections <SECTIONS>",
            "see 'leaklab parse --help'",
        ],
    );
    refused(
        &["lava", "job", "--arch", "sparc"],
        &[
            "'sparc'",
            "[possible values: x86_64, arm64]",
            "see 'leaklab lava job --help'",
        ],
    );
    refused(
        &["watch", "--rounds", "0"],
        &["'--rounds <ROUNDS>'", "see 'leaklab watch --help'"],
    );
    refused(&["scan", "--format", "ktap"], &["has no KTAP output"]);
}

#[test]
fn a_guest_the_kernel_cannot_boot_is_refused() {
    // 32 MiB: the kernel dies before its console starts, and QEMU exits 0.
    refused(&["vm", "--memory", "32", "--", "true"], &["'32'", "64..="]);
    refused(&["vm", "--cpus", "0", "--", "true"], &["'0' for '--cpus"]);
    refused(
        &["vm", "--timeout", "0", "--", "true"],
        &["'0' for '--timeout"],
    );
}

#[test]
fn help_and_version_go_to_stdout() {
    for args in [
        &["--help"][..],
        &["parse", "--help"],
        &["--version"],
        &["help", "lava"],
    ] {
        let out = leaklab(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("leaklab"),
            "{args:?}"
        );
    }
    // No command: the help, on stderr, and status 2.
    let out = leaklab(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: leaklab <COMMAND>"));
}
