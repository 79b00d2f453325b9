//! `leaklab refs`: where kernel memory still holds the given addresses.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    kernel::kcore::{self, Hit},
    output::{Outcome, Verdict},
};

/// The places found (JSON: the list of hits).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Refs(Vec<Hit>);

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

impl Outcome for Refs {
    fn verdict(&self) -> Verdict {
        Verdict::Passed
    }

    fn human(&self) -> String {
        self.0
            .iter()
            .map(|h| {
                format!(
                    "{} held at {} {}\n",
                    h.target,
                    h.at,
                    h.symbol.as_deref().unwrap_or("(heap)")
                )
            })
            .collect()
    }
}
