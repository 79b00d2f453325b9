// SPDX-License-Identifier: GPL-2.0
//! One module per command: each runs its steps on the layers below
//! (`analysis`, `kmemleak`, `ko`, `kernel`) and returns an
//! [`Outcome`](crate::output::Outcome) that `output` prints.

use std::path::Path;

use anyhow::Result;

pub mod catalogue;
pub mod census;
pub mod check;
pub mod doctor;
pub mod faults;
pub mod fuzz;
pub mod lava;
pub mod parse;
pub mod refs;
pub mod scan;
pub mod selftest;
pub mod show;
pub mod soak;
pub mod sweep;
pub mod watch;

/// Refuses to go on without root: loading modules, debugfs and kmemleak all
/// need it, and a half-done run would be worse than none.
pub fn require_root(command: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "leaklab {command} needs root (it loads modules and reads debugfs): run it as root or with sudo"
        );
    }
    Ok(())
}

/// `leaklab layout`: prints the loaded module `name`'s section addresses
/// (its object file `ko`) as JSON, for `leaklab parse --sections` after it
/// is gone. The JSON is the whole output: no closing line.
pub fn layout(name: &str, ko: &Path) -> Result<std::process::ExitCode> {
    let ko = crate::kernel::module::Ko::open(ko)?;
    anyhow::ensure!(
        ko.name() == name,
        "{} is the module {:?}, not {name:?}: give the name it has in /sys/module",
        ko.path().display(),
        ko.name()
    );
    let layout = crate::kernel::module::ModuleLayout::record(&ko)?;
    println!("{}", serde_json::to_string_pretty(&layout)?);
    Ok(std::process::ExitCode::SUCCESS)
}
