// SPDX-License-Identifier: GPL-2.0
//! The kernel's own KTAP parser, `tools/testing/kunit/kunit.py parse`,
//! from the kernel source `make test` builds against (`LEAKLAB_KSRC`).
//! Shared by the VM tests and the host's `tests/ktap.rs`.

use std::{
    io::Write,
    process::{Command, Stdio},
};

/// What `kunit.py parse` prints for `ktap`.
pub fn parse(ktap: &str) -> String {
    let ksrc =
        std::env::var("LEAKLAB_KSRC").expect("LEAKLAB_KSRC is not set: run through 'make test'");
    let mut child = Command::new("python3")
        .arg(format!("{ksrc}/tools/testing/kunit/kunit.py"))
        .arg("parse")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running kunit.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ktap.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
