// SPDX-License-Identifier: GPL-2.0
//! An event's `format` file, and where each field lies in its records.

use std::collections::HashMap;

use anyhow::{Context, Result};

/// Where a field lies in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Bytes from the record's start.
    pub offset: usize,
    /// Its size in bytes (0 for a flexible array).
    pub size: usize,
}

impl Field {
    /// The field as an unsigned number (native byte order), if the record
    /// holds it.
    pub fn read(self, record: &[u8]) -> Option<u64> {
        let b = record.get(self.offset..self.offset.checked_add(self.size)?)?;
        Some(match self.size {
            1 => u64::from(b[0]),
            2 => u64::from(u16::from_ne_bytes(b.try_into().ok()?)),
            4 => u64::from(u32::from_ne_bytes(b.try_into().ok()?)),
            8 => u64::from_ne_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }
}

/// An event's `format` file: its id and its fields by name.
#[derive(Debug, Clone, Default)]
pub struct Format {
    /// The `common_type` of its records.
    pub id: u16,
    /// Fields by name (an array's name without its brackets).
    pub fields: HashMap<String, Field>,
}

impl Format {
    /// Parses a `format` file (`ID: n` and `field:decl name; offset:o;
    /// size:s; signed:x;` lines).
    pub fn parse(text: &str) -> Result<Self> {
        let mut f = Self::default();
        let mut id = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("ID:") {
                id = v.trim().parse().ok();
                continue;
            }
            let Some(decl) = line.strip_prefix("field:") else {
                continue;
            };
            let mut parts = decl.split(';').map(str::trim);
            let Some(name) = parts
                .next()
                .and_then(|d| d.split_whitespace().last())
                .map(|n| n.split('[').next().unwrap_or(n))
            else {
                continue;
            };
            let (mut offset, mut size) = (None, None);
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            if let (Some(offset), Some(size)) = (offset, size) {
                f.fields.insert(name.to_string(), Field { offset, size });
            }
        }
        f.id = id.context("the format has no ID line")?;
        Ok(f)
    }

    /// Field `name` of event `event`, or an error that names both.
    pub(crate) fn field(&self, name: &str, event: &str) -> Result<Field> {
        self.fields
            .get(name)
            .copied()
            .with_context(|| format!("the trace event {event} has no field {name}"))
    }
}
