// SPDX-License-Identifier: GPL-2.0
//! The documents the commands give, one type each with its schema: what a
//! run found and how it was judged, the rules that judge it, and every
//! rendering of it (human text, KTAP, JSON, LAVA cases).
//!
//! [`Document`] is the registry of the saved documents other commands read
//! (`show`, `lava cases`): a document is read here by the schema it names,
//! so no command imports another's types.

use crate::output::{ktap::Case, schema::Schema};

pub mod catalogue;
pub mod census;
pub mod check;
pub mod cycle;
pub mod doctor;
pub mod faults;
pub mod fuzz;
pub mod grouped;
pub mod judgement;
pub mod lava;
pub mod refs;
pub mod selftest;
pub mod soak;
pub mod sweep;
pub mod watch;

/// A saved document, read as the kind its schema names.
#[derive(Debug)]
pub enum Document {
    /// `cycle` or `matrix`.
    Cycle(Box<cycle::CycleRun>),
    /// `check`.
    Check(Box<check::Check>),
    /// `soak`.
    Soak(Box<soak::SoakRun>),
    /// `doctor`.
    Doctor(Box<doctor::Diagnosis>),
    /// `sweep`.
    Sweep(Box<sweep::Sweep>),
}

impl Document {
    /// Reads `value` as a document of kind `schema`; `None` when that kind
    /// is not one the registry reads.
    pub fn read(schema: Schema, value: serde_json::Value) -> Option<serde_json::Result<Self>> {
        use serde_json::from_value;
        Some(match schema {
            Schema::Cycle => from_value(value).map(|d| Self::Cycle(Box::new(d))),
            Schema::Check => from_value(value).map(|d| Self::Check(Box::new(d))),
            Schema::Soak => from_value(value).map(|d| Self::Soak(Box::new(d))),
            Schema::Doctor => from_value(value).map(|d| Self::Doctor(Box::new(d))),
            Schema::Sweep => from_value(value).map(|d| Self::Sweep(Box::new(d))),
            _ => return None,
        })
    }

    /// Its test cases, as KTAP and LAVA give them; `None` for a kind that
    /// has none.
    pub fn tests(&self) -> Option<Vec<Case>> {
        match self {
            Self::Cycle(d) => Some(d.tests()),
            Self::Check(d) => Some(d.tests()),
            Self::Doctor(d) => Some(d.tests()),
            Self::Sweep(d) => Some(d.tests()),
            Self::Soak(_) => None,
        }
    }
}
