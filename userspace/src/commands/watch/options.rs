// SPDX-License-Identifier: GPL-2.0
//! What `leaklab watch` is asked to do, and the settings of its rounds.

use std::{path::PathBuf, time::Duration};

/// What the watch is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between rounds.
    pub interval: Duration,
    /// The directory for the event log and the state.
    pub out: PathBuf,
    /// Where to write the figures as a Prometheus textfile, if anywhere.
    pub textfile: Option<PathBuf>,
    /// Stop after this many rounds (`None`: run until a signal).
    pub rounds: Option<u64>,
    /// Modules' object files, to name their frames.
    pub kos: Vec<PathBuf>,
    /// Rotate the event log at this many MiB.
    pub log_mib: u64,
    /// How long Slab must grow steadily, with kmemleak reporting nothing
    /// new, before the watch warns of a leak kmemleak cannot see.
    pub trend_after: Duration,
    /// Rotated event logs kept.
    pub log_keep: usize,
}

/// Parses `60s`, `5m`, `1h`, `500ms` or a number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a time: give e.g. 60s, 5m, 1h or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: the unit is one of ms, s, m, h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a time we can wait"))
}

/// Kernel log records read a round, at most.
pub(super) const LOG_LINES_A_ROUND: usize = 4096;
pub use crate::report::watch::RECENT;
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_with_units_and_bad_ones_said_plainly() {
        assert_eq!(parse_interval("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("0"), Ok(Duration::ZERO));
        assert!(parse_interval("5 days").unwrap_err().contains("unit"));
        assert!(parse_interval("soon").unwrap_err().contains("not a time"));
        assert!(parse_interval("-1s").is_err());
    }
}
