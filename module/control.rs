// SPDX-License-Identifier: GPL-2.0

//! The control interface under `/sys/kernel/debug/leaklab/`.
//!
//! ```text
//! version                      read: "leaklab <version>"
//! stats                        read: one record per pattern and variant
//! leak_cap                     read: "cap_bytes=C leaked_bytes=L"; write: a new cap in bytes
//! patterns/<name>/description  read: what leaks and why, and the fix
//! patterns/<name>/expect       read: "objects=N bytes=B after_unload=0|1 kmemleak=0|1 grows=0|1":
//!                              what one leaky run leaks; after_unload=1: it shows only after rmmod;
//!                              kmemleak=0: kmemleak cannot report it (the page allocator, which
//!                              it does not track, or objects that stay referenced); grows=1: the
//!                              objects stay referenced while loaded and are freed at unload
//!                              (verdict: growth per run while loaded, not a report)
//! patterns/<name>/leaky        write N (1..=10000): run the leaky variant N times
//! patterns/<name>/fixed        write N (1..=10000): run the fixed variant N times
//! patterns/<name>/leaked       read: "0xADDRESS SIZE" per object the leaky variant lost (last 64):
//!                              the object's start address and its size as the allocator sized it
//!                              (pages: their kernel virtual address and the block's bytes;
//!                              grows=1: the objects kept without bound, still referenced)
//! patterns/module_exit/disarm  write 1: free the buffers armed by leaky runs now
//! ```
//!
//! Every file is root-only (0400 or 0600). A write is one decimal number,
//! optionally followed by a newline; anything else is `-EINVAL`, a count out
//! of range `-EINVAL`, and a leaky run that would pass the cap `-ENOSPC`, all
//! without side effects.

use crate::{
    accounting::LeakBudget,
    debugfs::{Dir, File, Reader, Writer},
    pattern::{Pattern, Variant},
    runner::{self, PatternState, MAX_RUNS},
    samples::PATTERNS,
};
use core::fmt;
use kernel::{c_str, prelude::*, sync::Arc};

/// Parses one decimal number, optionally followed by a newline.
pub(crate) fn parse_number(input: &[u8]) -> Result<u64> {
    let digits = input.strip_suffix(b"\n").unwrap_or(input);
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(EINVAL);
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(EINVAL)
    })
}

/// `version`.
struct Version;

impl Writer for Version {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "leaklab {}", crate::VERSION)
    }
}

/// `stats`: every pattern's counters.
struct StatsFile(KVec<Arc<PatternState>>);

impl Writer for StatsFile {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for state in self.0.iter() {
            for v in [Variant::Leaky, Variant::Fixed] {
                write!(
                    f,
                    "pattern={} variant={} ",
                    state.pattern.name.to_str().unwrap_or("?"),
                    v.name()
                )?;
                state.stats(v).write(f)?;
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// `leak_cap`.
struct LeakCap(Arc<LeakBudget>);

impl Writer for LeakCap {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cap_bytes={} leaked_bytes={}",
            self.0.cap(),
            self.0.used()
        )
    }
}

impl Reader for LeakCap {
    fn read(&self, input: &[u8]) -> Result {
        let cap = usize::try_from(parse_number(input)?).map_err(|_| EINVAL)?;
        self.0.set_cap(cap);
        Ok(())
    }
}

/// `patterns/<name>/description`.
struct Description(&'static Pattern);

impl Writer for Description {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.0.description)
    }
}

/// `patterns/<name>/expect`.
struct ExpectFile(Arc<PatternState>);

impl Writer for ExpectFile {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.0;
        writeln!(
            f,
            "objects={} bytes={} after_unload={} kmemleak={} grows={}",
            state.expect.objects,
            state.expect.bytes,
            u8::from(state.pattern.after_unload),
            u8::from(state.pattern.kmemleak_visible),
            u8::from(state.pattern.grows)
        )
    }
}

/// `patterns/<name>/leaked`: the objects the leaky variant lost last.
struct Leaked(Arc<PatternState>);

impl Writer for Leaked {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.lost.write(f)
    }
}

/// `patterns/<name>/leaky` and `fixed`.
struct Trigger {
    state: Arc<PatternState>,
    variant: Variant,
    budget: Arc<LeakBudget>,
}

impl Writer for Trigger {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "write a count from 1 to {MAX_RUNS} to run the {} variant that many times",
            self.variant.name()
        )
    }
}

impl Reader for Trigger {
    fn read(&self, input: &[u8]) -> Result {
        let n = parse_number(input)?;
        if n == 0 || n > u64::from(MAX_RUNS) {
            return Err(EINVAL);
        }
        runner::run(&self.state, self.variant, n as u32, &self.budget)
    }
}

/// `patterns/<name>/disarm`, for patterns that arm a leak for later.
struct Disarm {
    state: Arc<PatternState>,
    disarm: fn() -> (usize, usize),
    budget: Arc<LeakBudget>,
}

impl Writer for Disarm {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "write 1 to free the armed buffers now")
    }
}

impl Reader for Disarm {
    fn read(&self, input: &[u8]) -> Result {
        if parse_number(input)? != 1 {
            return Err(EINVAL);
        }
        let (objects, bytes) = (self.disarm)();
        self.state.leaky.unleak(objects, bytes);
        self.budget.release(bytes);
        Ok(())
    }
}

/// The files of one pattern.
struct PatternFiles {
    _description: File<Description>,
    _expect: File<ExpectFile>,
    _leaky: File<Trigger>,
    _fixed: File<Trigger>,
    _leaked: File<Leaked>,
    _disarm: Option<File<Disarm>>,
    _dir: Dir,
}

impl PatternFiles {
    /// Creates `patterns/<name>/` for `state`'s pattern.
    fn new(
        patterns_dir: &Dir,
        state: &Arc<PatternState>,
        budget: &Arc<LeakBudget>,
    ) -> Result<Self> {
        let pattern = state.pattern;
        let dir = patterns_dir.subdir(pattern.name)?;
        let trigger = |variant| Trigger {
            state: state.clone(),
            variant,
            budget: budget.clone(),
        };
        let disarm = match pattern.disarm {
            Some(disarm) => Some(dir.read_write_file(
                c_str!("disarm"),
                Disarm {
                    state: state.clone(),
                    disarm,
                    budget: budget.clone(),
                },
            )?),
            None => None,
        };
        Ok(Self {
            _description: dir.read_only_file(c_str!("description"), Description(pattern))?,
            _expect: dir.read_only_file(c_str!("expect"), ExpectFile(state.clone()))?,
            _leaky: dir.read_write_file(c_str!("leaky"), trigger(Variant::Leaky))?,
            _fixed: dir.read_write_file(c_str!("fixed"), trigger(Variant::Fixed))?,
            _leaked: dir.read_only_file(c_str!("leaked"), Leaked(state.clone()))?,
            _disarm: disarm,
            _dir: dir,
        })
    }
}

/// The whole control directory, and through its files the state of every
/// pattern; dropping it removes every file, waiting for handlers that are
/// running, and then drops the patterns' state.
pub(crate) struct Control {
    _patterns: KVec<PatternFiles>,
    _version: File<Version>,
    _stats: File<StatsFile>,
    _cap: File<LeakCap>,
    _patterns_dir: Dir,
    _root: Dir,
}

impl Control {
    /// Measures every pattern and creates the directory.
    pub(crate) fn new() -> Result<Self> {
        let budget = Arc::new(LeakBudget::new(), GFP_KERNEL)?;
        let root = Dir::new(c_str!("leaklab"))?;
        let patterns_dir = root.subdir(c_str!("patterns"))?;
        let mut states = KVec::with_capacity(PATTERNS.len(), GFP_KERNEL)?;
        let mut patterns = KVec::with_capacity(PATTERNS.len(), GFP_KERNEL)?;
        for pattern in PATTERNS {
            let state = Arc::new(PatternState::new(pattern)?, GFP_KERNEL)?;
            patterns.push(
                PatternFiles::new(&patterns_dir, &state, &budget)?,
                GFP_KERNEL,
            )?;
            states.push(state, GFP_KERNEL)?;
        }
        Ok(Self {
            _patterns: patterns,
            _version: root.read_only_file(c_str!("version"), Version)?,
            _stats: root.read_only_file(c_str!("stats"), StatsFile(states))?,
            _cap: root.read_write_file(c_str!("leak_cap"), LeakCap(budget))?,
            _patterns_dir: patterns_dir,
            _root: root,
        })
    }
}
