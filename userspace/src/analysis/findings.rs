// SPDX-License-Identifier: GPL-2.0
//! What the kernel log and kmemleak say that a run must answer for: the
//! notable kernel log lines, which of them a leak pattern explains, and the
//! kernel's own known leaks that a module's call can set off.

use serde::{Deserialize, Serialize};

use crate::ko::Variant;

/// What kind of notable kernel log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A `WARNING:` (a WARN_ON and its backtrace).
    Warning,
    /// A `BUG`, `kernel BUG` or `Kernel panic`.
    Bug,
    /// An Oops.
    Oops,
    /// `kmem_cache_destroy` found live objects in the cache.
    SlabStillHasObjects,
    /// kmemleak disabled itself or failed.
    Kmemleak,
}

impl FindingKind {
    /// The kind's name, as in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Bug => "bug",
            Self::Oops => "oops",
            Self::SlabStillHasObjects => "slab_still_has_objects",
            Self::Kmemleak => "kmemleak",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Something notable in the kernel log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of line it is.
    pub kind: FindingKind,
    /// The log line.
    pub line: String,
}

/// Classifies one kernel log line, or `None` when it is ordinary.
pub fn classify(line: &str) -> Option<FindingKind> {
    if line.contains("Slab cache still has objects") {
        Some(FindingKind::SlabStillHasObjects)
    } else if line.starts_with("WARNING:") {
        Some(FindingKind::Warning)
    } else if line.starts_with("Oops") || line.contains("Internal error: Oops") {
        Some(FindingKind::Oops)
    } else if line.starts_with("BUG")
        || line.starts_with("kernel BUG")
        || line.starts_with("Kernel panic")
    {
        Some(FindingKind::Bug)
    } else if line.starts_with("kmemleak:")
        && [
            "disabled",
            "Cannot",
            "cannot",
            "failed",
            "out of",
            "Kernel memory leak detector off",
        ]
        .iter()
        .any(|w| line.contains(w))
    {
        Some(FindingKind::Kmemleak)
    } else {
        None
    }
}

/// The notable lines among `lines`.
pub fn findings(lines: &[String]) -> Vec<Finding> {
    lines
        .iter()
        .filter_map(|l| {
            classify(l).map(|kind| Finding {
                kind,
                line: l.clone(),
            })
        })
        .collect()
}

/// With allocation profiling on, a module unloaded while memory allocated
/// at one of its own call sites is live: the WARN of
/// `alloc_tag_module_unload` (lib/alloc_tag.c). leaklab's own call sites
/// are `module/alloc.c`'s, which only `slab_cache` and `page_leak` use.
const TAGS_AT_UNLOAD: &str = "alloc_tag_module_unload";

/// Kernel log lines a leak pattern's variant is known to cause, by pattern:
/// a finding that contains one of the words is that pattern's doing.
const EXPLAINED: &[(&str, Variant, &[&str])] = &[
    (
        // Destroying a cache with live objects: SLUB's "BUG <cache>: Objects
        // remaining" report and the "Slab cache still has objects" WARN,
        // each with its WARNING line.
        "slab_cache",
        Variant::Leaky,
        &[
            "leaklab_slab_",
            "kmem_cache_destroy",
            "__slab_err",
            "Slab cache still has objects",
            TAGS_AT_UNLOAD,
        ],
    ),
    ("page_leak", Variant::Leaky, &[TAGS_AT_UNLOAD]),
];

/// Whether a driven pattern and variant explains a kernel log finding.
pub fn explains(pattern: &str, variant: Variant, f: &Finding) -> bool {
    EXPLAINED
        .iter()
        .filter(|(p, v, _)| *p == pattern && *v == variant)
        .any(|(_, _, words)| words.iter().any(|w| f.line.contains(w)))
}

/// Leaks of the kernel itself that a module's calls can set off under
/// injected allocation failures: a function in the leaking object's
/// backtrace, and what goes wrong there.
pub const KNOWN_KERNEL_LEAKS: &[(&str, &str)] = &[(
    "sysfs_slab_add",
    "Linux 6.12 mm/slub.c: sysfs_slab_add() returns on a failed kobject_init_and_add() (and after kobject_del()) without kobject_put(), so the kobject's name (kstrdup) leaks whenever creating a slab cache fails there",
)];

/// The known kernel leak whose function is among `frames` (symbolized,
/// `function+offset ...`), with what goes wrong there.
pub fn known_kernel_leak(frames: &[String]) -> Option<&'static str> {
    KNOWN_KERNEL_LEAKS
        .iter()
        .find(|(f, _)| frames.iter().any(|x| x.split('+').next() == Some(f)))
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_kernel_lines() {
        assert_eq!(
            classify("kmem_cache_destroy leaklab_slab_1_0: Slab cache still has objects when called from 0xffffffffa0001234"),
            Some(FindingKind::SlabStillHasObjects)
        );
        assert_eq!(
            classify("WARNING: CPU: 0 PID: 55 at mm/slab_common.c:548 kmem_cache_destroy+0x1/0x2"),
            Some(FindingKind::Warning)
        );
        assert_eq!(
            classify("BUG leaklab_slab_1_0 (Tainted: G        W): Objects remaining"),
            Some(FindingKind::Bug)
        );
        assert_eq!(
            classify("kmemleak: Kernel memory leak detector disabled"),
            Some(FindingKind::Kmemleak)
        );
        assert_eq!(
            classify("kmemleak: 20 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"),
            None
        );
        assert_eq!(classify("leaklab 0.2.0 loaded"), None);
    }

    #[test]
    fn only_the_leaky_slab_cache_explains_its_warning() {
        let warn = Finding {
            kind: FindingKind::SlabStillHasObjects,
            line: "kmem_cache_destroy leaklab_slab_1_0: Slab cache still has objects".into(),
        };
        assert!(explains("slab_cache", Variant::Leaky, &warn));
        assert!(!explains("slab_cache", Variant::Fixed, &warn));
        assert!(!explains("error_path", Variant::Leaky, &warn));
        let other = Finding {
            kind: FindingKind::Warning,
            line: "WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 bar+0x1/0x2".into(),
        };
        assert!(!explains("slab_cache", Variant::Leaky, &other));
    }

    #[test]
    fn only_the_samples_with_the_modules_own_call_sites_explain_tags_at_unload() {
        let warn = Finding {
            kind: FindingKind::Warning,
            line:
                "WARNING: CPU: 0 PID: 32 at lib/alloc_tag.c:171 alloc_tag_module_unload+0x5f/0x7d"
                    .into(),
        };
        assert!(explains("slab_cache", Variant::Leaky, &warn));
        assert!(explains("page_leak", Variant::Leaky, &warn));
        assert!(!explains("page_leak", Variant::Fixed, &warn));
        assert!(!explains("error_path", Variant::Leaky, &warn));
    }
}
