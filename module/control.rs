// SPDX-License-Identifier: GPL-2.0

//! The control interface under `/sys/kernel/debug/leaklab/`.
//!
//! ```text
//! version                      read: "leaklab <version>"
//! stats                        read: one record per pattern and variant
//! leak_cap                     read: "cap_bytes=C leaked_bytes=L"; write: a new cap in bytes
//! patterns/<name>/description  read: what leaks and why, and the fix
//! patterns/<name>/expect       read: "objects=N bytes=B after_unload=0|1" per leaky run
//! patterns/<name>/leaky        write N (1..=10000): run the leaky variant N times
//! patterns/<name>/fixed        write N (1..=10000): run the fixed variant N times
//! patterns/<name>/leaked       read: "0xADDRESS SIZE" per object the leaky variant lost (last 64)
//! patterns/module_exit/disarm  write 1: free the buffers armed by leaky runs now
//! ```
//!
//! Every file is root-only (0400 or 0600). A write is one decimal number,
//! optionally followed by a newline; anything else is `-EINVAL`, a count out
//! of range `-EINVAL`, and a leaky run that would pass the cap `-ENOSPC`, all
//! without side effects.

use crate::{
    catalogue::{self, Expect, LeakBudget, Pattern, Stats, Variant, MAX_RUNS},
    debugfs::{Dir, File, Reader, Writer},
    samples::{COUNT, PATTERNS},
};
use core::fmt;
use kernel::{c_str, prelude::*};

/// Counters per pattern and variant.
static STATS: [[Stats; 2]; COUNT] = [const { [const { Stats::new() }; 2] }; COUNT];

/// The cap on intentionally leaked bytes.
static BUDGET: LeakBudget = LeakBudget::new();

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

/// `stats`.
struct StatsFile;

impl Writer for StatsFile {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (p, stats) in PATTERNS.iter().zip(STATS.iter()) {
            for v in [Variant::Leaky, Variant::Fixed] {
                stats[v as usize].write(f, p.name, v)?;
            }
        }
        Ok(())
    }
}

/// `leak_cap`.
struct LeakCap;

impl Writer for LeakCap {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cap_bytes={} leaked_bytes={}",
            BUDGET.cap(),
            BUDGET.used()
        )
    }
}

impl Reader for LeakCap {
    fn read(&self, input: &[u8]) -> Result {
        let cap = usize::try_from(parse_number(input)?).map_err(|_| EINVAL)?;
        BUDGET.set_cap(cap);
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
struct ExpectFile(Expect, bool);

impl Writer for ExpectFile {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "objects={} bytes={} after_unload={}",
            self.0.objects,
            self.0.bytes,
            u8::from(self.1)
        )
    }
}

/// `patterns/<name>/leaked`: the objects the leaky variant lost last.
struct Leaked(usize);

impl Writer for Leaked {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        STATS[self.0][Variant::Leaky as usize].recent.write(f)
    }
}

/// `patterns/<name>/leaky` and `fixed`.
struct Trigger {
    index: usize,
    variant: Variant,
    expect: Expect,
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
        catalogue::run(
            &PATTERNS[self.index],
            self.variant,
            n as u32,
            &self.expect,
            &STATS[self.index][self.variant as usize],
            &BUDGET,
        )
    }
}

/// `patterns/<name>/disarm`, for patterns that arm a leak for later.
struct Disarm(usize, fn() -> (usize, usize));

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
        let (objects, bytes) = (self.1)();
        STATS[self.0][Variant::Leaky as usize].unleak(objects, bytes);
        BUDGET.release(bytes);
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

/// The whole control directory; dropping it removes every file, waiting for
/// handlers that are running.
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
    pub(crate) fn new(module: &'static ThisModule) -> Result<Self> {
        let root = Dir::new(c_str!("leaklab"))?;
        let patterns_dir = root.subdir(c_str!("patterns"))?;
        let mut patterns = KVec::with_capacity(COUNT, GFP_KERNEL)?;
        for (index, p) in PATTERNS.iter().enumerate() {
            let expect = Expect::calibrate(p)?;
            let dir = patterns_dir.subdir(p.name)?;
            let trigger = |variant| Trigger {
                index,
                variant,
                expect,
            };
            let disarm = match p.disarm {
                Some(f) => Some(dir.read_write_file(c_str!("disarm"), Disarm(index, f), module)?),
                None => None,
            };
            patterns.push(
                PatternFiles {
                    _description: dir.read_only_file(
                        c_str!("description"),
                        Description(p),
                        module,
                    )?,
                    _expect: dir.read_only_file(
                        c_str!("expect"),
                        ExpectFile(expect, p.after_unload),
                        module,
                    )?,
                    _leaky: dir.read_write_file(
                        c_str!("leaky"),
                        trigger(Variant::Leaky),
                        module,
                    )?,
                    _fixed: dir.read_write_file(
                        c_str!("fixed"),
                        trigger(Variant::Fixed),
                        module,
                    )?,
                    _leaked: dir.read_only_file(c_str!("leaked"), Leaked(index), module)?,
                    _disarm: disarm,
                    _dir: dir,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            _patterns: patterns,
            _version: root.read_only_file(c_str!("version"), Version, module)?,
            _stats: root.read_only_file(c_str!("stats"), StatsFile, module)?,
            _cap: root.read_write_file(c_str!("leak_cap"), LeakCap, module)?,
            _patterns_dir: patterns_dir,
            _root: root,
        })
    }
}
