// SPDX-License-Identifier: GPL-2.0
//! What kmemleak and the kernel log said about a run of the lab's samples
//! ([`Judgement`]), the part `fuzz` and `faults` documents share.

use serde::{Deserialize, Serialize};

use crate::{analysis::findings::Finding, output::Verdict};

/// A report of a leak the kernel is known to make, with the reason it is
/// not the module's. It reads, and is kept in the JSON documents as,
/// `SIZE bytes at ADDRESS: REASON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLeak {
    /// The object's size in bytes.
    pub size: u64,
    /// Its address.
    pub address: u64,
    /// Why it is the kernel's.
    pub reason: String,
}

impl KnownLeak {
    /// The report of `size` bytes at `address`, known for `reason`.
    pub fn new(size: u64, address: u64, reason: &str) -> Self {
        Self {
            size,
            address,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for KnownLeak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes at {:#x}: {}",
            self.size, self.address, self.reason
        )
    }
}

impl Serialize for KnownLeak {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KnownLeak {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad =
            || serde::de::Error::custom(format!("{text:?} is not `SIZE bytes at ADDRESS: REASON`"));
        let (head, reason) = text.split_once(": ").ok_or_else(bad)?;
        let (size, address) = head.split_once(" bytes at ").ok_or_else(bad)?;
        let size = size.parse().map_err(|_| bad())?;
        let address = address
            .strip_prefix("0x")
            .and_then(|a| u64::from_str_radix(a, 16).ok())
            .ok_or_else(bad)?;
        Ok(Self::new(size, address, reason))
    }
}

/// What kmemleak and the kernel log said about the work.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Judgement {
    /// Kernel log findings no leaky sample explains (must be none).
    pub kernel_log: Vec<Finding>,
    /// kmemleak reports attributed to a leaky sample (allowed).
    pub leaky_reports: u64,
    /// Reports outside the leaky samples (must be none).
    pub outside: Vec<String>,
    /// Whether the judged reports (those outside the leaky samples) settled:
    /// two scans in a row agreed on them.
    pub stable: bool,
    /// Reports of a known kernel leak (see
    /// [`crate::analysis::findings::KNOWN_KERNEL_LEAKS`]) that a sample's
    /// call into the kernel set off: reported, not held against the module.
    pub known_kernel: Vec<KnownLeak>,
}

impl Judgement {
    /// Nothing unexplained.
    pub fn clean(&self) -> bool {
        self.kernel_log.is_empty() && self.outside.is_empty()
    }

    /// The verdict on the work: inconclusive when kmemleak did not settle,
    /// else passed when `ok` and nothing is unexplained.
    pub fn verdict(&self, ok: bool) -> Verdict {
        match self.stable {
            false => Verdict::Inconclusive,
            true => Verdict::of(ok && self.clean()),
        }
    }

    /// Human lines: the report counts, then each problem.
    pub fn human(&self) -> String {
        let mut out = format!(
            "kmemleak: {} report(s) from the leaky samples, {} outside them\n",
            self.leaky_reports,
            self.outside.len()
        );
        for f in &self.kernel_log {
            out += &format!("  kernel log ({}): {}\n", f.kind, f.line);
        }
        for o in &self.outside {
            out += &format!("  leaked outside the leaky samples: {o}\n");
        }
        // Each reason once, with its objects, in the order first seen.
        let mut known: Vec<(&str, usize)> = Vec::new();
        for why in self.known_kernel.iter().map(|k| k.reason.as_str()) {
            match known.iter_mut().find(|(w, _)| *w == why) {
                Some((_, n)) => *n += 1,
                None => known.push((why, 1)),
            }
        }
        for (why, n) in known {
            out += &format!("  known kernel leak, not the module's ({n} object(s)): {why}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_known_kernel_leak_is_said_once_with_its_objects() {
        let j = Judgement {
            stable: true,
            known_kernel: vec![
                KnownLeak::new(64, 0x1, "the first"),
                KnownLeak::new(32, 0x2, "the second"),
                KnownLeak::new(64, 0x3, "the first"),
            ],
            ..Judgement::default()
        };
        let text = j.human();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("known kernel leak"))
            .collect();
        assert_eq!(
            lines,
            [
                "  known kernel leak, not the module's (2 object(s)): the first",
                "  known kernel leak, not the module's (1 object(s)): the second",
            ],
            "{text}"
        );
    }

    #[test]
    fn a_known_leak_reads_back_as_written() {
        let k = KnownLeak::new(64, 0xffff_8880_0123_4560, "the reason: with a colon");
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(
            json,
            "\"64 bytes at 0xffff888001234560: the reason: with a colon\""
        );
        assert_eq!(serde_json::from_str::<KnownLeak>(&json).unwrap(), k);
        assert!(serde_json::from_str::<KnownLeak>("\"64 bytes: no address\"").is_err());
    }
}
