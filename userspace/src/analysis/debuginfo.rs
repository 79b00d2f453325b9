// SPDX-License-Identifier: GPL-2.0
//! Source lines for frames a guest could only name: a distribution's
//! modules are stripped, and their line information ships apart (Debian's
//! `linux-image-*-dbg`: `usr/lib/debug/lib/modules/RELEASE/...ko`). A
//! frame `function+0xoff [module]` is looked up in the module's debug file
//! by its symbol and offset, the file read as if loaded
//! ([`ModuleLayout::placed`]).

use anyhow::Result;

use super::symbolize::Symbolizer;
use crate::{
    kernel::module::{Ko, ModuleLayout},
    kmemleak::report::parse_frame,
};

/// `frames` (`function+0xoff [module]`, as a sweep keeps them) with the
/// source line of each of `debug`'s module's frames where its DWARF has
/// one (`... at file:line`); other frames as they are.
pub fn with_lines(frames: &[String], debug: &Ko) -> Result<Vec<String>> {
    let mut sym = Symbolizer::default();
    sym.add(&ModuleLayout::placed(debug), debug)?;
    Ok(frames
        .iter()
        .map(|f| {
            let frame = parse_frame(f);
            match sym.frame(&frame, None) {
                Some(r)
                    if frame.module.as_deref() == Some(debug.name()) && r.location.is_some() =>
                {
                    r.display()
                }
                _ => f.clone(),
            }
        })
        .collect())
}
