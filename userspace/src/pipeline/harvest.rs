// SPDX-License-Identifier: GPL-2.0
//! What the allocation trace holds of a run's modules once they are gone
//! ([`harvest_trace`]): the allocations whose stack passes through one,
//! named as reports.

use anyhow::Result;

use crate::{
    analysis::symbolize::Symbolizer,
    kmemleak::report::Report,
    trace::{
        ledger::{Allocation, Ledger},
        names::Names,
        tracer::Tracer,
        Space,
    },
};

/// The allocations in `ledger` after event `since` whose stack passes
/// through a module `sym` knows, each with the allocator that made it for
/// itself, if one did ([`crate::trace::internal`]).
fn held<'l>(
    ledger: &'l Ledger,
    sym: &'l Symbolizer,
    names: &'l Names,
    since: u64,
) -> impl Iterator<Item = (&'l Allocation, Option<&'static str>)> {
    let in_module = |address| sym.holds(address);
    ledger
        .outstanding(move |a| a.seq > since && a.stack.iter().any(|&x| in_module(x)))
        .into_iter()
        .map(move |a| (a, names.internal(a, in_module)))
}

/// What the modules `sym` knows hold in `ledger` of what was allocated
/// after event `since`: the allocations whose stack passes through one, as
/// reports named by `names`, less those an allocator made for itself
/// ([`crate::trace::internal`]), which are counted.
pub fn modules_hold(ledger: &Ledger, sym: &Symbolizer, names: &Names, since: u64) -> TraceHarvest {
    let mut h = TraceHarvest::default();
    for (a, internal) in held(ledger, sym, names, since) {
        match internal {
            Some(_) => h.internal += 1,
            None => h.reports.push(Held {
                space: a.space,
                seq: a.seq,
                report: names.report(a, |x| sym.holds(x)),
            }),
        }
    }
    h
}

/// Lets deferred frees land ([`Tracer::settle`]: the number of allocations
/// the modules `sym` knows hold stays the same, counted without naming
/// them), stops tracing, and returns what they hold ([`modules_hold`]) with
/// the trace's counts.
pub fn harvest_trace(
    tracer: Tracer,
    sym: &Symbolizer,
    progress: &mut dyn FnMut(&str),
) -> Result<TraceHarvest> {
    progress("letting deferred frees settle");
    let names = tracer.names()?;
    tracer.settle(|l| held(l, sym, &names, 0).filter(|(_, i)| i.is_none()).count())?;
    let traced = tracer.finish()?;
    Ok(TraceHarvest {
        lost: traced.lost,
        events: traced.events,
        markers: traced.ledger.markers.clone(),
        ..modules_hold(&traced.ledger, sym, &names, 0)
    })
}

/// An allocation a module holds, as the trace saw it.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its allocator.
    pub space: Space,
    /// Its place in the event order (after the [`Tracer::mark`] of the
    /// step that made it).
    pub seq: u64,
    /// The allocation as a report.
    pub report: Report,
}

/// What the allocation trace found once the modules were gone.
#[derive(Debug, Default)]
pub struct TraceHarvest {
    /// Allocations not freed whose stack passed through a module of the
    /// session.
    pub reports: Vec<Held>,
    /// Where each [`Tracer::mark`] fell among the events.
    pub markers: Vec<(String, u64)>,
    /// vmalloc areas a module made and left.
    pub vmalloc: Vec<Report>,
    /// Allocations an allocator made for itself on a module's behalf (a new
    /// slab, kmemleak's metadata): not counted.
    pub internal: u64,
    /// Events lost: the trace is inconclusive when this is not 0.
    pub lost: u64,
    /// Events read.
    pub events: u64,
}

impl TraceHarvest {
    /// Every leak found: the allocations, then the vmalloc areas.
    pub fn leaks(&self) -> impl Iterator<Item = &Report> {
        self.reports.iter().map(|h| &h.report).chain(&self.vmalloc)
    }
}
