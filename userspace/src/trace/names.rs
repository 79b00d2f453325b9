// SPDX-License-Identifier: GPL-2.0
//! Names for what the trace holds: kernel functions by return address,
//! tasks by pid, and the tracing machinery's own frames left out.

use std::{collections::HashMap, fs, path::Path, sync::Arc};

use super::{kallsyms::Kallsyms, ledger::Allocation};
use crate::kmemleak::report::{Frame, Report};

/// The trampolines a return probe's handler runs from (x86_64 and arm64,
/// 6.1 to 6.12): a stack taken there has the probe's frames up to it.
const RETURN_TRAMPOLINES: [&str; 3] = [
    "arch_rethook_trampoline",
    "__kretprobe_trampoline",
    "kretprobe_trampoline",
];

/// The event's own code a stack may start with (seen in Debian's 6.12: the
/// event's `trace_event_raw_event_kmalloc` above `__kmalloc_cache_noprof`).
const TRACING: [&str; 3] = [
    "trace_event_raw_event_",
    "__traceiter_",
    "event_triggers_call",
];

/// Names for what the trace holds: kernel functions by return address
/// (`/proc/kallsyms`), tasks by pid (tracefs `saved_cmdlines`).
#[derive(Debug, Clone, Default)]
pub struct Names {
    kallsyms: Arc<Kallsyms>,
    comms: HashMap<u32, String>,
}

impl Names {
    /// Names by `kallsyms`, and tasks by the `saved_cmdlines` of tracefs
    /// mounted at `root`.
    pub(super) fn new(kallsyms: Arc<Kallsyms>, root: &Path) -> Self {
        let comms = fs::read_to_string(root.join("saved_cmdlines"))
            .map(|t| saved_cmdlines(&t))
            .unwrap_or_default();
        Self { kallsyms, comms }
    }

    /// Allocation `a` as a report: its frames named, except those
    /// `in_module` claims (a module's, resolved from its own object file
    /// later), and its task named.
    pub fn report(&self, a: &Allocation, in_module: impl Fn(u64) -> bool) -> Report {
        let frame = |address| match in_module(address) {
            true => Frame {
                raw: format!("{address:#x}"),
                address: Some(address),
                symbol: None,
                offset: None,
                module: None,
            },
            false => self.kallsyms.frame(address),
        };
        let mut r = a.report(frame, self.comms.get(&a.origin.pid).cloned());
        // A return probe's stack starts in the probe's own machinery, and
        // some kernels' stacks in the event's own code.
        let symbol = |f: &Frame| f.symbol.clone().unwrap_or_default();
        let tracing = match r
            .frames
            .iter()
            .rposition(|f| RETURN_TRAMPOLINES.contains(&symbol(f).as_str()))
        {
            Some(i) => i + 1,
            None => r
                .frames
                .iter()
                .take_while(|f| TRACING.iter().any(|t| symbol(f).starts_with(t)))
                .count(),
        };
        r.frames.drain(..tracing);
        r
    }

    /// The allocator that made `a` for its own use on behalf of the code
    /// `in_module` claims, if one did ([`super::internal`]): read from the
    /// kernel's frames before the first module frame, without naming them
    /// all.
    pub fn internal(
        &self,
        a: &Allocation,
        in_module: impl Fn(u64) -> bool,
    ) -> Option<&'static str> {
        let kernel_frames = a
            .stack
            .iter()
            .take_while(|&&x| !in_module(x))
            .map_while(|&x| self.kallsyms.lookup(x))
            .take_while(|(_, _, module)| module.is_none())
            .map(|(name, _, _)| name);
        super::internal(a.space, kernel_frames)
    }
}

/// `pid comm` lines of tracefs's `saved_cmdlines`.
fn saved_cmdlines(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let (pid, comm) = l.split_once(' ')?;
            Some((pid.parse().ok()?, comm.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_cmdlines_name_tasks_by_pid() {
        let m = saved_cmdlines("61 insmod\n12 kworker/u4:1\nbad line\n");
        assert_eq!(m.get(&61).map(String::as_str), Some("insmod"));
        assert_eq!(m.get(&12).map(String::as_str), Some("kworker/u4:1"));
        assert_eq!(m.len(), 2);
    }
}
