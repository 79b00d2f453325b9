// SPDX-License-Identifier: GPL-2.0

//! leaklab: driver-style kernel memory leaks, each in a leaky and a fixed
//! variant, driven from `/sys/kernel/debug/leaklab/` (see [`control`]).

use kernel::prelude::*;

mod accounting;
mod control;
mod debugfs;
mod ffi;
mod hygiene;
mod pattern;
mod runner;
#[path = "../samples/mod.rs"]
mod samples;

module! {
    type: LeakLab,
    name: "leaklab",
    author: "leaklab developers",
    description: "Kernel memory leak samples, leaky and fixed, for kmemleak",
    license: "GPL",
}

/// The module's version, as `leaklab/version` reports it.
const VERSION: &str = "0.2.0";

/// Whether this is the test-only build whose leaky variants run the fixed
/// code, so that nothing leaks (`make sabotaged`, `--cfg leaklab_sabotaged`).
const SABOTAGED: bool = cfg!(leaklab_sabotaged);

/// Says which build this is: `modinfo -F sabotaged leaklab.ko` prints 1 for
/// the sabotaged one, 0 otherwise.
#[link_section = ".modinfo"]
#[used(compiler)]
static SABOTAGED_MODINFO: [u8; 12] = if SABOTAGED {
    *b"sabotaged=1\0"
} else {
    *b"sabotaged=0\0"
};

/// The module's state: the control directory, whose files hold the state of
/// every pattern.
struct LeakLab {
    _control: control::Control,
}

impl kernel::Module for LeakLab {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let control = control::Control::new()?;
        pr_info!("leaklab {VERSION} loaded: /sys/kernel/debug/leaklab/\n");
        Ok(LeakLab { _control: control })
    }
}
