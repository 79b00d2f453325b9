// SPDX-License-Identifier: GPL-2.0
//! Client of leaklab.ko's control directory, `/sys/kernel/debug/leaklab/`.
//! The layout and the write contract (1 to 20 decimal digits and an
//! optional newline, written once at offset 0; anything else is refused) are
//! documented in the module's `module/control.rs`.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The help leaklab.ko gives its own samples and not a user's module, as
/// `doctor` says it. The recall a module gets without it is measured by
/// `make recall-unhelped` (BENCHMARKS.md), not written here.
pub const LAB_HELP: &str = "leaklab's own samples are helped to be seen exactly (their slab slots laundered, their stacks scrubbed, slab_nomerge, task stacks left out of the scans); a module of yours gets none of that (leaklab check scans task stacks): BENCHMARKS.md gives the recall such a module gets (make recall-unhelped)";

/// The control directory's default place.
pub const DIR: &str = "/sys/kernel/debug/leaklab";

/// The most runs one write to a pattern's `leaky` or `fixed` file may ask
/// for (the module's `MAX_RUNS`): a larger count is refused with EINVAL.
pub const MAX_RUNS: u32 = 10_000;

/// A pattern variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The buggy code.
    Leaky,
    /// The same code, fixed.
    Fixed,
}

impl Variant {
    /// The variant's name, as in the control files.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Leaky => "leaky",
            Variant::Fixed => "fixed",
        }
    }

    /// The variant named `name`, as in the control files.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "leaky" => Some(Variant::Leaky),
            "fixed" => Some(Variant::Fixed),
            _ => None,
        }
    }
}

/// One pattern of the catalogue, as the loaded module describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternInfo {
    /// Its name.
    pub name: String,
    /// What leaks and why, and the fix.
    pub description: String,
    /// Objects one leaky run leaks.
    pub objects: u64,
    /// Bytes one leaky run leaks.
    pub bytes: u64,
    /// Whether the leak appears only after the module is unloaded.
    pub after_unload: bool,
    /// Whether kmemleak can report the leak (`kmemleak=` in `expect`):
    /// `false` for memory kmemleak does not track (the page allocator),
    /// which only the allocation-trace detector sees, and for objects that
    /// stay referenced ([`PatternInfo::grows`]). True when the module does
    /// not say (modules before the field).
    #[serde(default = "default_kmemleak")]
    pub kmemleak: bool,
    /// Whether the leaky variant's objects stay referenced while the module
    /// is loaded and are freed at unload (`grows=` in `expect`): memory that
    /// grows with every run, which kmemleak never reports; its verdict is the
    /// growth per run while loaded, not a report at unload. False when the
    /// module does not say.
    #[serde(default)]
    pub grows: bool,
}

fn default_kmemleak() -> bool {
    true
}

impl PatternInfo {
    /// The pattern `name` described by `description` and its `expect` file,
    /// `objects=N bytes=B after_unload=0|1 kmemleak=0|1 grows=0|1` (the last
    /// two fields absent from older modules: kmemleak=1 grows=0 then).
    pub fn parse(name: String, description: String, expect: &str) -> Result<Self> {
        let mut info = PatternInfo {
            name,
            description,
            objects: 0,
            bytes: 0,
            after_unload: false,
            kmemleak: true,
            grows: false,
        };
        for (k, v) in fields(expect) {
            match k {
                "objects" => info.objects = number(v, k)?,
                "bytes" => info.bytes = number(v, k)?,
                "after_unload" => info.after_unload = v == "1",
                "kmemleak" => info.kmemleak = v != "0",
                "grows" => info.grows = v == "1",
                _ => {}
            }
        }
        Ok(info)
    }
}

/// One `stats` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatRecord {
    /// Pattern name.
    pub pattern: String,
    /// The variant.
    pub variant: Variant,
    /// Runs so far.
    pub runs: u64,
    /// Runs that failed (e.g. an allocation failure).
    pub failed: u64,
    /// Objects allocated.
    pub allocated: u64,
    /// Bytes allocated.
    pub allocated_bytes: u64,
    /// Objects freed.
    pub freed: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Objects leaked on purpose.
    pub leaked: u64,
    /// Bytes leaked on purpose.
    pub leaked_bytes: u64,
}

impl StatRecord {
    /// A record with every counter at 0.
    pub fn new(pattern: String, variant: Variant) -> Self {
        Self {
            pattern,
            variant,
            runs: 0,
            failed: 0,
            allocated: 0,
            allocated_bytes: 0,
            freed: 0,
            freed_bytes: 0,
            leaked: 0,
            leaked_bytes: 0,
        }
    }
}

/// Parses `key=value` words into `(key, value)` pairs.
fn fields(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.split_whitespace().filter_map(|w| w.split_once('='))
}

fn number(v: &str, what: &str) -> Result<u64> {
    v.parse()
        .with_context(|| format!("{what}: {v:?} is not a number"))
}

/// Parses the `stats` file.
pub fn parse_stats(text: &str) -> Result<Vec<StatRecord>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut r = StatRecord::new(String::new(), Variant::Fixed);
        let mut variant = None;
        for (k, v) in fields(line) {
            match k {
                "pattern" => r.pattern = v.to_string(),
                "variant" => {
                    variant = Some(
                        Variant::from_name(v)
                            .with_context(|| format!("stats: unknown variant {v:?}"))?,
                    )
                }
                "runs" => r.runs = number(v, k)?,
                "failed" => r.failed = number(v, k)?,
                "allocated" => r.allocated = number(v, k)?,
                "allocated_bytes" => r.allocated_bytes = number(v, k)?,
                "freed" => r.freed = number(v, k)?,
                "freed_bytes" => r.freed_bytes = number(v, k)?,
                "leaked" => r.leaked = number(v, k)?,
                "leaked_bytes" => r.leaked_bytes = number(v, k)?,
                _ => {}
            }
        }
        match variant {
            Some(v) if !r.pattern.is_empty() => r.variant = v,
            _ => bail!("stats line without pattern or variant: {line:?}"),
        }
        out.push(r);
    }
    Ok(out)
}

/// Handle on a loaded leaklab's control directory.
#[derive(Debug, Clone)]
pub struct Control {
    dir: PathBuf,
}

impl Control {
    /// Opens the control directory of the loaded module.
    pub fn open() -> Result<Self> {
        Self::at(Path::new(DIR))
    }

    /// Opens the control directory at `dir`.
    pub fn at(dir: &Path) -> Result<Self> {
        match fs::metadata(dir) {
            Ok(_) => Ok(Self {
                dir: dir.to_path_buf(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                bail!(
                    "cannot reach {}: permission denied: run as root",
                    dir.display()
                )
            }
            Err(_) => bail!(
                "{} does not exist: load leaklab.ko first (and mount debugfs)",
                dir.display()
            ),
        }
    }

    fn read(&self, rel: &str) -> Result<String> {
        let p = self.dir.join(rel);
        fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    }

    fn write(&self, rel: &str, value: &str) -> Result<()> {
        let p = self.dir.join(rel);
        let mut f = OpenOptions::new()
            .write(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        f.write_all(value.as_bytes())
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::ENOSPC) => anyhow::anyhow!(
                    "writing {value:?} to {}: the leak cap is reached (see leak_cap)",
                    p.display()
                ),
                _ => anyhow::anyhow!("writing {value:?} to {}: {e}", p.display()),
            })
    }

    /// The catalogue, sorted by name.
    pub fn patterns(&self) -> Result<Vec<PatternInfo>> {
        let dir = self.dir.join("patterns");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let expect = self.read(&format!("patterns/{name}/expect"))?;
                let description = self
                    .read(&format!("patterns/{name}/description"))?
                    .trim()
                    .to_string();
                PatternInfo::parse(name, description, &expect)
            })
            .collect()
    }

    /// Runs `variant` of `pattern` `n` times.
    pub fn trigger(&self, pattern: &str, variant: Variant, n: u32) -> Result<()> {
        if pattern.is_empty()
            || pattern.contains(['/', '.'])
            || !self.dir.join("patterns").join(pattern).is_dir()
        {
            bail!("no pattern named {pattern:?}: 'leaklab patterns' lists them");
        }
        self.write(
            &format!("patterns/{pattern}/{}", variant.name()),
            &format!("{n}\n"),
        )
    }

    /// The objects the leaky variant of `pattern` lost last, as
    /// `(address, size)`: where each object starts, and its size.
    pub fn leaked(&self, pattern: &str) -> Result<Vec<(u64, u64)>> {
        let text = self.read(&format!("patterns/{pattern}/leaked"))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (a, s) = l
                    .split_once(' ')
                    .with_context(|| format!("leaked line {l:?}"))?;
                let addr = u64::from_str_radix(a.trim_start_matches("0x"), 16)
                    .with_context(|| format!("leaked line {l:?}"))?;
                Ok((addr, number(s.trim(), "size")?))
            })
            .collect()
    }

    /// The `stats` records.
    pub fn stats(&self) -> Result<Vec<StatRecord>> {
        parse_stats(&self.read("stats")?)
    }

    /// The leak cap and the bytes leaked under it so far (`leak_cap`).
    pub fn leak_cap(&self) -> Result<(u64, u64)> {
        let text = self.read("leak_cap")?;
        let field = |key: &str| -> Result<u64> {
            fields(&text)
                .find(|(k, _)| *k == key)
                .with_context(|| format!("leak_cap: no {key}=N in {text:?}"))
                .and_then(|(_, v)| number(v, key))
        };
        Ok((field("cap_bytes")?, field("leaked_bytes")?))
    }

    /// Every file and directory of the control interface, depth first.
    pub fn entries(&self) -> Result<Vec<PathBuf>> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
            for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
                let path = entry?.path();
                if path.is_dir() {
                    walk(&path, out)?;
                }
                out.push(path);
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out)?;
        Ok(out)
    }

    /// Sets the cap on intentionally leaked bytes.
    pub fn set_cap(&self, bytes: u64) -> Result<()> {
        self.write("leak_cap", &format!("{bytes}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_records_parse() {
        let text = "pattern=error_path variant=leaky runs=3 failed=0 allocated=3 allocated_bytes=768 freed=0 freed_bytes=0 leaked=3 leaked_bytes=768\n";
        let r = &parse_stats(text).unwrap()[0];
        assert_eq!(r.pattern, "error_path");
        assert_eq!(r.variant, Variant::Leaky);
        assert_eq!((r.runs, r.leaked, r.leaked_bytes), (3, 3, 768));
        assert!(parse_stats("runs=1\n").is_err());
        assert!(parse_stats("pattern=a variant=b runs=1\n").is_err());
        assert!(parse_stats("pattern=a variant=leaky runs=x\n").is_err());
    }

    #[test]
    fn expect_parses_kmemleak_and_grows() {
        let p = PatternInfo::parse(
            "page_leak".into(),
            "pages".into(),
            "objects=1 bytes=8192 after_unload=0 kmemleak=0 grows=0\n",
        )
        .unwrap();
        assert_eq!((p.objects, p.bytes), (1, 8192));
        assert!(!p.after_unload && !p.kmemleak && !p.grows, "{p:?}");
        let p = PatternInfo::parse(
            "unbounded_cache".into(),
            "cache".into(),
            "objects=1 bytes=1024 after_unload=0 kmemleak=0 grows=1\n",
        )
        .unwrap();
        assert_eq!((p.objects, p.bytes), (1, 1024));
        assert!(!p.kmemleak && p.grows, "{p:?}");
        let p = PatternInfo::parse(
            "module_exit".into(),
            "exit".into(),
            "objects=1 bytes=512 after_unload=1 kmemleak=1 grows=0\n",
        )
        .unwrap();
        assert!(p.after_unload && p.kmemleak && !p.grows, "{p:?}");
        assert!(PatternInfo::parse("a".into(), "b".into(), "objects=x").is_err());
    }

    #[test]
    fn expect_of_an_older_module_defaults_to_kmemleak_without_growth() {
        let p = PatternInfo::parse(
            "error_path".into(),
            "probe".into(),
            "objects=1 bytes=256 after_unload=0\n",
        )
        .unwrap();
        assert_eq!((p.objects, p.bytes, p.after_unload), (1, 256, false));
        assert!(p.kmemleak && !p.grows, "{p:?}");
        // A document written before the fields: the same defaults.
        let p: PatternInfo = serde_json::from_str(
            r#"{"name":"error_path","description":"d","objects":1,"bytes":256,"after_unload":false}"#,
        )
        .unwrap();
        assert!(p.kmemleak && !p.grows, "{p:?}");
    }
}
