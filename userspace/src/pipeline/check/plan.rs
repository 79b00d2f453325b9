// SPDX-License-Identifier: GPL-2.0
//! What `check` is asked to do: the module, its cycles, parameters and
//! exercise scripts, and the detectors.

use std::{path::PathBuf, time::Duration};

use crate::pipeline::detectors::DetectorChoice;

/// How long an unload may wait for the module's users to go (a file of its
/// own closing, a work item finishing) before it is reported as stuck.
pub const UNLOAD_PATIENCE: Duration = Duration::from_secs(2);

/// What `check` runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The module to check.
    pub module: PathBuf,
    /// Load/exercise/unload cycles.
    pub cycles: u32,
    /// Module parameters, `KEY=VALUE` each ([`parse_param`]).
    pub params: Vec<String>,
    /// Shell scripts run with `sh` each cycle while the module is loaded.
    pub exercise: Vec<PathBuf>,
    /// Keep the module loaded while kmemleak scans after the last cycle.
    pub keep_loaded: bool,
    /// The detectors.
    pub detectors: DetectorChoice,
}

/// A `--param` word: `KEY=VALUE` with a key as the kernel spells one.
pub fn parse_param(s: &str) -> std::result::Result<String, String> {
    let (key, _) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(format!("{key:?} is not a module parameter's name"));
    }
    if s.contains(char::is_whitespace) || s.contains('"') {
        return Err(format!(
            "{s:?}: a value with spaces or quotes cannot be passed; use one without"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_key_value_words() {
        assert_eq!(
            parse_param("bug=error_path,slab_cache").as_deref(),
            Ok("bug=error_path,slab_cache")
        );
        assert!(parse_param("bug").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_param("a b=1").is_err());
        assert!(parse_param("name=two words").is_err());
        assert!(parse_param("x=\"q\"").is_err());
    }
}
