// SPDX-License-Identifier: GPL-2.0
//! What the watch remembers across rounds and restarts, in `DIR/state.json`
//! (replaced atomically each round): the objects already reported, the
//! leaks by backtrace, the findings by kind. A reboot (another `boot_id`)
//! forgets the objects, not the leaks: kmemleak starts afresh, its
//! addresses mean nothing any more.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::output::{schema::Schema, write_atomically};

/// The schema of the state file.
pub const SCHEMA: &str = Schema::WatchState.name();

/// One leak, by backtrace fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leak {
    /// The first frame outside the allocator wrappers.
    pub culprit: Option<String>,
    /// Its source line, when the module's `.ko` was given.
    pub culprit_line: Option<String>,
    /// The module the culprit is in (`None`: the kernel).
    pub module: Option<String>,
    /// When the first of its objects was found (Unix seconds).
    pub first_seen: f64,
    /// When the last was found.
    pub last_seen: f64,
    /// Objects reported.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The watch's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`SCHEMA`].
    pub schema: String,
    /// The boot the objects below were seen in.
    pub boot_id: String,
    /// Rounds run, over every run of the watch on this directory.
    pub rounds: u64,
    /// The objects kmemleak reports now that were already reported, as
    /// (address, jiffies of the allocation): an address alone comes back
    /// when the memory is reused.
    pub seen: BTreeSet<(u64, u64)>,
    /// The leaks by backtrace fingerprint.
    pub leaks: BTreeMap<String, Leak>,
    /// Notable kernel log lines, by kind.
    pub findings: BTreeMap<String, u64>,
}

impl State {
    /// A fresh state for the boot `boot_id`.
    pub fn new(boot_id: &str) -> Self {
        Self {
            schema: SCHEMA.into(),
            boot_id: boot_id.into(),
            rounds: 0,
            seen: BTreeSet::new(),
            leaks: BTreeMap::new(),
            findings: BTreeMap::new(),
        }
    }

    /// The state in `path`, or a fresh one when there is none; in another
    /// boot than `boot_id`, the objects seen are forgotten.
    pub fn load(path: &Path, boot_id: &str) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(boot_id)),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut s: Self = serde_json::from_str(&text)
            .ok()
            .filter(|s: &Self| s.schema == SCHEMA)
            .with_context(|| {
                format!(
                    "{} is not a leaklab watch state ({SCHEMA}): give another --out directory, or move the file away to start afresh",
                    path.display()
                )
            })?;
        if s.boot_id != boot_id {
            s.seen.clear();
            s.boot_id = boot_id.into();
        }
        Ok(s)
    }

    /// Saves it to `path`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomically(path, &serde_json::to_string(self)?)
    }

    /// Takes the objects kmemleak reports now (`present`): returns those
    /// not reported before, and forgets those no longer reported (freed,
    /// or cleared by someone), so that the state is as large as
    /// kmemleak's report and no larger.
    pub fn take(&mut self, present: BTreeSet<(u64, u64)>) -> Vec<(u64, u64)> {
        let new = present.difference(&self.seen).copied().collect();
        self.seen = present;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_object_is_new_once_and_a_reboot_forgets_objects_not_leaks() {
        let mut s = State::new("boot-a");
        assert_eq!(s.take([(1, 10), (2, 20)].into()), vec![(1, 10), (2, 20)]);
        assert_eq!(s.take([(1, 10), (2, 20), (3, 30)].into()), vec![(3, 30)]);
        // An address reused by a later allocation is a new object.
        assert_eq!(s.take([(1, 40), (3, 30)].into()), vec![(1, 40)]);
        s.leaks.insert("f".into(), Leak::default());
        let dir = std::env::temp_dir().join(format!("leaklab-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        s.save(&path).unwrap();
        assert_eq!(State::load(&path, "boot-a").unwrap(), s);
        let rebooted = State::load(&path, "boot-b").unwrap();
        assert!(rebooted.seen.is_empty());
        assert_eq!(rebooted.leaks.len(), 1);
        assert_eq!(rebooted.boot_id, "boot-b");
        // Not a state: a clear error, nothing overwritten.
        std::fs::write(&path, "{\"schema\":\"leaklab.soak/1\"}").unwrap();
        let e = format!("{:#}", State::load(&path, "boot-a").unwrap_err());
        assert!(e.contains("is not a leaklab watch state"), "{e}");
        assert!(State::load(&dir.join("none.json"), "x")
            .unwrap()
            .seen
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
