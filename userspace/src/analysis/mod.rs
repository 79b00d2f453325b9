// SPDX-License-Identifier: GPL-2.0
//! What the reports mean: symbolized frames, which module, pattern and
//! variant a report belongs to and its culprit, groups by backtrace, and
//! what the kernel log says, and whether memory is trending.

pub mod attribute;
pub mod debuginfo;
pub mod detector;
pub mod findings;
pub mod group;
pub mod known;
pub mod symbolize;
pub mod trend;
