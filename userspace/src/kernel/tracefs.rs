// SPDX-License-Identifier: GPL-2.0
//! tracefs, mounted where the kernel's tools expect it, for the tracers and
//! probes leaklab sets up in instances of their own.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// Where tracefs is mounted on kernels since 4.1.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Where tracefs is mounted, if it is.
pub fn mounted() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "tracefs").then(|| PathBuf::from(f[1]))
    })
}

/// tracefs's root, mounted at [`TRACEFS`] when it is not mounted yet; the
/// second value is that mount point when this call made it (the caller
/// unmounts it when done: [`unmount`]).
pub fn mount() -> Result<(PathBuf, Option<PathBuf>)> {
    if let Some(root) = mounted() {
        return Ok((root, None));
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| {
        format!("mounting tracefs at {TRACEFS} (a kernel without CONFIG_TRACING has none)")
    })?;
    Ok((PathBuf::from(TRACEFS), Some(PathBuf::from(TRACEFS))))
}

/// Unmounts tracefs from `at`, where [`mount`] mounted it.
pub fn unmount(at: &Path) -> Result<()> {
    nix::mount::umount(at).with_context(|| format!("unmounting tracefs from {}", at.display()))
}

/// Writes `value` to the tracefs file at `path`.
pub fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).with_context(|| format!("writing '{value}' to {}", path.display()))
}

/// Adds (`p:...`) or removes (`-:...`) a dynamic probe: `kprobe_events`
/// takes one definition a write, appended (opening it for writing without
/// `O_APPEND` would remove every probe of the system).
pub fn kprobe_events(root: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let path = root.join("kprobe_events");
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .with_context(|| format!("writing '{line}' to {}", path.display()))
}
