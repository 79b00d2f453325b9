// SPDX-License-Identifier: GPL-2.0
//! The watch's event log: JSON lines in `DIR/events.jsonl`, rotated by size
//! (`events.1.jsonl` the newest old one, up to a number kept), so the log
//! on disk never exceeds `max_bytes * (keep + 1)`.
//!
//! An event accepted is not lost to a full disk: what cannot be written
//! stays pending, in order, and goes out with the next flush that can.
//! Samples are the only events given up, and only when the pending queue
//! is long ([`MAX_PENDING_SAMPLES`]): they are counted as dropped. The file
//! is opened by name at each flush, so a log rotated or removed by someone
//! else is simply started again.

use std::{
    collections::VecDeque,
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

/// Pending lines beyond which new samples are dropped (leaks and findings
/// are always kept).
pub const MAX_PENDING_SAMPLES: usize = 1000;

/// The log's file names in `dir`: the current one, then the rotated.
pub fn files(dir: &Path, keep: usize) -> Vec<PathBuf> {
    std::iter::once(dir.join("events.jsonl"))
        .chain((1..=keep).map(|i| dir.join(format!("events.{i}.jsonl"))))
        .collect()
}

/// The event log.
#[derive(Debug)]
pub struct EventLog {
    dir: PathBuf,
    max_bytes: u64,
    keep: usize,
    pending: VecDeque<String>,
    /// Flushes that failed.
    pub write_errors: u64,
    /// Samples given up while the disk was full.
    pub dropped: u64,
    /// Why the last flush failed, while it does.
    pub failing: Option<String>,
}

impl EventLog {
    /// The log in `dir`, rotated at `max_bytes`, `keep` old files kept.
    pub fn new(dir: &Path, max_bytes: u64, keep: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1),
            keep,
            pending: VecDeque::new(),
            write_errors: 0,
            dropped: 0,
            failing: None,
        }
    }

    /// Accepts one event's line (no newline). A sample is given up when
    /// too much waits already.
    pub fn accept(&mut self, line: String, is_sample: bool) {
        if is_sample && self.pending.len() >= MAX_PENDING_SAMPLES {
            self.dropped += 1;
            return;
        }
        self.pending.push_back(line);
    }

    /// Lines waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes what is pending, in order; what cannot be written stays
    /// pending. Returns whether everything went out.
    pub fn flush(&mut self) -> bool {
        match self.write_pending() {
            Ok(()) => {
                self.failing = None;
                true
            }
            Err(e) => {
                self.write_errors += 1;
                self.failing = Some(format!("writing {}: {e}", self.dir.display()));
                false
            }
        }
    }

    fn write_pending(&mut self) -> std::io::Result<()> {
        let path = self.dir.join("events.jsonl");
        while let Some(line) = self.pending.front() {
            let size = fs::metadata(&path).map_or(0, |m| m.len());
            if size > 0 && size + line.len() as u64 + 1 > self.max_bytes {
                self.rotate()?;
            }
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            let before = f.metadata()?.len();
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            if let Err(e) = f.write_all(&bytes).and_then(|()| f.sync_data()) {
                // A line half written is taken back, to be written whole later.
                let _ = f.set_len(before);
                return Err(e);
            }
            self.pending.pop_front();
        }
        Ok(())
    }

    /// Shifts the files up one: the oldest goes, `events.jsonl` becomes
    /// `events.1.jsonl`.
    fn rotate(&self) -> std::io::Result<()> {
        let names = files(&self.dir, self.keep);
        if self.keep == 0 {
            return fs::remove_file(&names[0]);
        }
        let _ = fs::remove_file(&names[self.keep]);
        for i in (0..self.keep).rev() {
            if names[i].exists() {
                fs::rename(&names[i], &names[i + 1])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("leaklab-log-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn lines(dir: &Path, keep: usize) -> Vec<String> {
        let mut all = Vec::new();
        for f in files(dir, keep).iter().rev() {
            if let Ok(t) = fs::read_to_string(f) {
                all.extend(t.lines().map(str::to_string));
            }
        }
        all
    }

    #[test]
    fn rotates_by_size_within_its_bound_keeping_order() {
        let d = dir("rotate");
        let mut log = EventLog::new(&d, 100, 2);
        for i in 0..50 {
            log.accept(format!("{{\"n\":{i:04}}}"), false);
            assert!(log.flush());
        }
        let total: u64 = files(&d, 2)
            .iter()
            .filter_map(|f| fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        assert!(total <= 300, "{total} bytes on disk");
        assert!(!d.join("events.3.jsonl").exists());
        // The newest events, in order, none missing in between.
        let kept = lines(&d, 2);
        let n: Vec<u32> = kept.iter().map(|l| l[5..9].parse().unwrap()).collect();
        assert_eq!(*n.last().unwrap(), 49);
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{n:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_full_disk_loses_no_accepted_event() {
        let d = dir("full");
        let mut log = EventLog::new(&d, 1 << 20, 2);
        log.accept("{\"a\":1}".into(), false);
        assert!(log.flush());
        // The disk fills: /dev/full answers every write with ENOSPC.
        fs::rename(d.join("events.jsonl"), d.join("kept")).unwrap();
        std::os::unix::fs::symlink("/dev/full", d.join("events.jsonl")).unwrap();
        log.accept("{\"leak\":2}".into(), false);
        for i in 0..MAX_PENDING_SAMPLES + 5 {
            log.accept(format!("{{\"sample\":{i}}}"), true);
        }
        log.accept("{\"leak\":3}".into(), false);
        assert!(!log.flush());
        assert!(log.failing.as_deref().unwrap().contains("No space left"));
        assert_eq!(log.write_errors, 1);
        // Samples beyond the bound were given up, and counted; no leak was.
        assert_eq!(log.dropped, 6);
        assert_eq!(log.pending(), MAX_PENDING_SAMPLES + 1);
        // Space again: everything pending goes out, in order.
        fs::remove_file(d.join("events.jsonl")).unwrap();
        assert!(log.flush());
        assert!(log.failing.is_none());
        let out = fs::read_to_string(d.join("events.jsonl")).unwrap();
        let out: Vec<&str> = out.lines().collect();
        assert_eq!(out.len(), MAX_PENDING_SAMPLES + 1);
        assert_eq!(out[0], "{\"leak\":2}");
        assert_eq!(out[out.len() - 1], "{\"leak\":3}");
        fs::remove_dir_all(&d).unwrap();
    }
}
