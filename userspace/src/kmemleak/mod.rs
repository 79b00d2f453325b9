// SPDX-License-Identifier: GPL-2.0
//! kmemleak: its control file, the grammar of its reports (in the file and
//! in kernel logs), the parallel reader, and the scan protocol that gets a
//! trustworthy set of reports out of it.

use std::{
    fs::{self, OpenOptions},
    io::{ErrorKind, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::kernel::thread::in_fresh_thread;

pub mod parallel;
pub mod prefix;
pub mod protocol;
pub mod report;
pub mod window;

#[cfg(test)]
mod tests;

/// kmemleak reports an object only once it is this old (MSECS_MIN_AGE in
/// mm/kmemleak.c, 5000 ms), plus a margin for jiffies rounding.
pub const MIN_AGE: Duration = Duration::from_millis(5500);

/// What kmemleak cannot see, said with every verdict that rests on it.
pub const BLIND_SPOTS: &str = "kmemleak tracks slab, vmalloc and per-CPU objects: pages taken from the page allocator (alloc_pages, __get_free_pages) and objects still referenced (a list that only grows) are not seen";

/// Where debugfs is mounted.
pub const DEBUGFS: &str = "/sys/kernel/debug";

/// Handle on `/sys/kernel/debug/kmemleak`.
#[derive(Debug, Clone)]
pub struct Kmemleak {
    path: PathBuf,
}

impl Kmemleak {
    /// Finds the kmemleak file, saying clearly why when it is not there.
    pub fn open() -> Result<Self> {
        Self::at(Path::new(DEBUGFS))
    }

    /// Finds the kmemleak file in the debugfs mounted at `debugfs`.
    pub fn at(debugfs: &Path) -> Result<Self> {
        let path = debugfs.join("kmemleak");
        match fs::metadata(&path) {
            Ok(_) => Ok(Self { path }),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                bail!(
                    "cannot reach {}: permission denied: run as root",
                    path.display()
                )
            }
            Err(_) if !is_debugfs_mounted(debugfs) => bail!(
                "debugfs is not mounted at {}: mount -t debugfs none {}",
                debugfs.display(),
                debugfs.display()
            ),
            Err(_) => bail!(
                "{} does not exist: the kernel is built without CONFIG_DEBUG_KMEMLEAK",
                path.display()
            ),
        }
    }

    /// The control file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one command (`scan`, `clear`, `scan=off`, ...).
    pub fn command(&self, cmd: &str) -> Result<()> {
        in_fresh_thread(|| self.command_here(cmd))
    }

    fn command_here(&self, cmd: &str) -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        match f.write_all(cmd.as_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EPERM | nix::libc::EBUSY)) => {
                bail!("kmemleak is disabled (booted with kmemleak=off, or it turned itself off: see the kernel log)")
            }
            Err(e) => Err(e).with_context(|| format!("writing '{cmd}' to {}", self.path.display())),
        }
    }

    /// Runs one scan; returns when it is done.
    pub fn scan(&self) -> Result<()> {
        self.command("scan")
    }

    /// Marks every object reported so far as seen, so it is not reported again.
    pub fn clear(&self) -> Result<()> {
        self.command("clear")
    }

    /// Reads the current reports (reading does not scan).
    pub fn read(&self) -> Result<String> {
        in_fresh_thread(|| self.read_here())
    }

    fn read_here(&self) -> Result<String> {
        let bytes =
            fs::read(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Whether a debugfs is mounted at `dir`, according to `/proc/self/mounts`.
pub fn is_debugfs_mounted(dir: &Path) -> bool {
    fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && Path::new(f[1]) == dir && f[2] == "debugfs"
        })
    })
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn a_directory_without_debugfs_is_named_with_the_fix() {
        let dir = std::env::temp_dir().join(format!("leaklab-nodebugfs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let e = Kmemleak::at(&dir).expect_err("no kmemleak file there");
        fs::remove_dir(&dir).unwrap();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with(&format!(
                "debugfs is not mounted at {}: mount -t debugfs",
                dir.display()
            )),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1);
    }
}
