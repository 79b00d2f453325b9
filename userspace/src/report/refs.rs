// SPDX-License-Identifier: GPL-2.0
//! The document of `refs` ([`Refs`]): where kernel memory holds the given
//! addresses.

use serde::Serialize;

use crate::{
    kernel::kcore::Hit,
    output::{Outcome, Verdict},
};

/// The places found (JSON: the list of hits).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Refs(pub Vec<Hit>);

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
