//! Which module, sample pattern and variant a report belongs to, and its
//! culprit frame: read from its symbolized backtrace.

use serde::{Deserialize, Serialize};

use super::symbolize::{Resolved, Symbolizer};
use crate::{
    kmemleak::report::{Frame, Report},
    ko::Variant,
};

/// Where a report came from, by its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The sample pattern, when a frame is in `samples::<pattern>`.
    pub pattern: Option<String>,
    /// The variant, from the `_leaky`/`_fixed` function on the stack.
    pub variant: Option<Variant>,
    /// The module the first non-allocator frame is in (`None`: the kernel).
    pub module: Option<String>,
    /// The culprit: the first frame outside the allocator wrappers, in a
    /// module where the stack has one.
    pub culprit: Option<String>,
    /// The culprit's source line (`samples/error_path.rs:31`), from the
    /// module's DWARF.
    pub culprit_line: Option<String>,
}

/// Frames of allocator and library wrappers, skipped when looking for the
/// culprit (prefix match on the demangled function name).
pub const SKIP: &[&str] = &[
    "kmemleak_",
    "__kmalloc",
    "kmalloc",
    "__kmem_cache_alloc",
    "kmem_cache_alloc",
    "krealloc",
    "__vmalloc",
    "vmalloc",
    "kvmalloc",
    "kstrdup",
    "kvasprintf",
    "kzalloc",
    "pcpu_alloc",
    "__alloc_percpu",
    "slab_post_alloc_hook",
    "<kernel::alloc::",
    "kernel::alloc::",
    "<kernel::sync::arc::",
    "<kernel::init::",
    "kernel::init::",
    "<alloc::",
];

fn skipped(function: &str) -> bool {
    SKIP.iter().any(|p| function.starts_with(p))
}

/// Ties a report to a module, a sample pattern and a variant.
pub fn attribute(r: &Report, sym: &Symbolizer) -> Attribution {
    let frames: Vec<Option<Resolved>> = r.frames.iter().map(|f| sym.frame(f, r.pid)).collect();
    let mut a = Attribution {
        pattern: None,
        variant: None,
        module: None,
        culprit: None,
        culprit_line: None,
    };
    // The culprit: the first frame outside the allocator wrappers that lies
    // in a module (the driver's own code, not the driver core it called);
    // for a leak with no module frame, the first frame outside the wrappers.
    let outside = |(res, _): &(&Option<Resolved>, &Frame)| match res {
        Some(res) => !skipped(&res.function),
        None => true,
    };
    let culprit = frames
        .iter()
        .zip(&r.frames)
        .filter(outside)
        .find(|(res, _)| res.as_ref().is_some_and(|r| r.module.is_some()))
        .or_else(|| frames.iter().zip(&r.frames).find(outside));
    if let Some((res, raw)) = culprit {
        a.culprit = Some(match res {
            Some(res) => format!("{}+{:#x}", res.function, res.offset.unwrap_or(0)),
            None => raw.raw.clone(),
        });
        a.culprit_line = res.as_ref().and_then(|r| r.location.clone());
    }
    // Generic allocator frames (`<Box<T>>::new`) may carry another sample's
    // type: identical instantiations are merged. Only the caller's frames count.
    for res in frames.iter().flatten().filter(|r| !skipped(&r.function)) {
        if a.module.is_none() && res.module.is_some() {
            a.module = res.module.clone();
        }
        if let Some(rest) = res.function.split("::samples::").nth(1) {
            if a.pattern.is_none() {
                a.pattern = rest.split("::").next().map(str::to_string);
            }
            let fname = rest.rsplit("::").next().unwrap_or("");
            if a.variant.is_none() {
                a.variant = if fname.ends_with("_leaky") {
                    Some(Variant::Leaky)
                } else if fname.ends_with("_fixed") {
                    Some(Variant::Fixed)
                } else {
                    None
                };
            }
        }
    }
    a
}

/// One report's backtrace, raw and symbolized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    /// Object size.
    pub size: u64,
    /// The frames as kmemleak printed them (bare addresses after unload).
    pub raw: Vec<String>,
    /// The same frames as `function+offset [module]`.
    pub symbolized: Vec<String>,
}

impl Example {
    /// `r` with its frames symbolized.
    pub fn of(r: &Report, sym: &Symbolizer) -> Self {
        Self {
            size: r.size,
            raw: r.frames.iter().map(|f| f.raw.clone()).collect(),
            symbolized: r
                .frames
                .iter()
                .map(|f| {
                    sym.frame(f, r.pid)
                        .map_or_else(|| f.raw.clone(), |x| x.display())
                })
                .collect(),
        }
    }
}
