// SPDX-License-Identifier: GPL-2.0
//! The kernel log, `/dev/kmsg`, read from a point on.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    os::unix::fs::OpenOptionsExt,
};

use anyhow::{Context, Result};

/// Reads the kernel log from a point on.
pub struct KmsgWatch {
    file: File,
}

impl KmsgWatch {
    /// Starts watching: only records logged from now on are returned.
    pub fn start() -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("opening /dev/kmsg")?;
        file.seek(SeekFrom::End(0)).context("seeking /dev/kmsg")?;
        Ok(Self { file })
    }

    /// Reads from the oldest record the kernel still holds (the log since
    /// boot, unless it wrapped).
    pub fn from_boot() -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("opening /dev/kmsg")?;
        Ok(Self { file })
    }

    /// Returns the text of every record logged since the last call.
    pub fn drain(&mut self) -> Vec<String> {
        self.drain_at_most(usize::MAX)
    }

    /// As [`KmsgWatch::drain`], at most `n` records (the rest wait for the
    /// next call): a monitor's memory stays bounded whatever the log does.
    pub fn drain_at_most(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        while out.len() < n {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    if let Some((_, text)) = rec.split_once(';') {
                        out.push(text.lines().next().unwrap_or("").to_string());
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}
