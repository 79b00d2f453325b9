// SPDX-License-Identifier: GPL-2.0
//! `leaklab refs`: where kernel memory still holds the given addresses.

use anyhow::{Context, Result};

use crate::{kernel::kcore, report::refs::Refs};

/// Looks for `addresses` (hex, `0x...`) in all of the kernel's memory.
pub fn run(addresses: &[String]) -> Result<Refs> {
    let targets = addresses
        .iter()
        .map(|a| {
            u64::from_str_radix(a.trim_start_matches("0x"), 16)
                .with_context(|| format!("{a:?} is not a hex address: give it as 0x..."))
        })
        .collect::<Result<Vec<u64>>>()?;
    Ok(Refs(kcore::find(&targets)?))
}
