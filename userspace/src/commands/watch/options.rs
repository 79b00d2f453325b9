//! `leaklab watch`'s options, and the settings of its rounds.

use std::{path::PathBuf, time::Duration};

/// `leaklab watch`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Time between rounds: `60s`, `5m`, `1h`, `500ms`, or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    pub interval: Duration,
    /// The directory for the event log and the state (made if missing).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/leaklab/watch")]
    pub out: PathBuf,
    /// Also write the figures as a Prometheus textfile here (for
    /// node_exporter's textfile collector: a name ending in `.prom`).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
    /// Stop after this many rounds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: Option<u64>,
    /// A module's object file (repeatable): its frames are named to
    /// file:line while it is loaded, and after it is unloaded.
    #[arg(long = "ko", value_name = "KO")]
    pub kos: Vec<PathBuf>,
    /// Rotate the event log at this many MiB.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub log_mib: u64,
    /// How long Slab must grow steadily, with kmemleak reporting nothing
    /// new, before the watch warns of a leak kmemleak cannot see.
    #[arg(long, default_value = "10m", value_parser = parse_interval)]
    pub trend_after: Duration,
    /// Rotated event logs kept (the log on disk is at most
    /// `--log-mib` times this plus one).
    #[arg(long, default_value_t = 4)]
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
