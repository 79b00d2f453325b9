// SPDX-License-Identifier: GPL-2.0
//! The document of `cycle` and `matrix` ([`CycleRun`]): each pattern's and
//! variant's verdict per cycle, the rules that judge them ([`rules`],
//! [`verdict`]), and its renderings.

mod html;
mod render;
pub mod rules;
pub mod verdict;

pub use verdict::CycleRun;
