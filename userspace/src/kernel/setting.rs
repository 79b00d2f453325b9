// SPDX-License-Identifier: GPL-2.0
//! A kernel setting changed for a while: written when the change is made,
//! and put back as it was found when the guard goes (and by the undo steps
//! after a panic).

use std::{fs, path::PathBuf};

use super::undo;

/// A setting file (sysfs, procfs) holding another value until dropped.
#[derive(Debug)]
pub struct Changed {
    path: PathBuf,
    found: String,
    _noted: undo::Noted,
}

impl Changed {
    /// Writes `value` to the setting at `path`; `None` (nothing changed)
    /// when it holds `value` already or cannot be read or written: a
    /// setting this only speeds up.
    pub fn to(path: &str, value: &str) -> Option<Self> {
        let found = fs::read_to_string(path).ok()?.trim().to_string();
        if found == value {
            return None;
        }
        fs::write(path, value).ok()?;
        let (p, f) = (path.to_string(), found.clone());
        let noted = undo::note(format!("set {path} back to {found}"), move || {
            Ok(fs::write(&p, &f)?)
        });
        Some(Self {
            path: PathBuf::from(path),
            found,
            _noted: noted,
        })
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.path, &self.found) {
            eprintln!(
                "leaklab: could not set {} back to {}: {e} (write it by hand)",
                self.path.display(),
                self.found
            );
        }
    }
}
