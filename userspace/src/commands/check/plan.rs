//! What `check` is asked to do: the module, its cycles, parameters and
//! exercise scripts, and the detectors.

use std::{path::PathBuf, time::Duration};

use crate::commands::detectors::DetectorArgs;

/// How long an unload may wait for the module's users to go (a file of its
/// own closing, a work item finishing) before it is reported as stuck.
pub(super) const UNLOAD_PATIENCE: Duration = Duration::from_secs(2);

/// What `check` runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Plan {
    /// The module to check (a .ko built for the running kernel).
    pub module: PathBuf,
    /// Load/exercise/unload cycles.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub cycles: u32,
    /// A module parameter, KEY=VALUE, as insmod takes it (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<String>,
    /// A shell script run with `sh` each cycle while the module is loaded
    /// (repeatable; in order). It gets LEAKLAB_MODULE and LEAKLAB_CYCLE in
    /// its environment; its output goes to stderr.
    #[arg(long = "exercise", value_name = "SCRIPT")]
    pub exercise: Vec<PathBuf>,
    /// Keep the module loaded while kmemleak scans after the last cycle
    /// (as on a board that needs it), and unload it after.
    #[arg(long)]
    pub keep_loaded: bool,
    #[command(flatten)]
    pub detectors: DetectorArgs,
}

/// A `--param` word: `KEY=VALUE` with a key as the kernel spells one.
pub(super) fn parse_param(s: &str) -> std::result::Result<String, String> {
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
