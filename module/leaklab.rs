// SPDX-License-Identifier: GPL-2.0

//! leaklab: driver-style kernel memory leaks, each in a leaky and a fixed
//! variant, driven from `/sys/kernel/debug/leaklab/` (see [`control`]).

use kernel::prelude::*;

mod catalogue;
mod control;
mod debugfs;
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

struct LeakLab {
    // Dropped first: no trigger can run once the files are gone.
    _control: control::Control,
    // Frees what the fixed module_exit variant kept.
    _module_exit: samples::module_exit::Owner,
}

impl kernel::Module for LeakLab {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let module_exit = samples::module_exit::Owner;
        let control = control::Control::new(module)?;
        pr_info!("leaklab {VERSION} loaded: /sys/kernel/debug/leaklab/\n");
        Ok(LeakLab {
            _control: control,
            _module_exit: module_exit,
        })
    }
}
