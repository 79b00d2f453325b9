// SPDX-License-Identifier: GPL-2.0

//! leaklab: driver-style kernel memory leaks, each in a leaky and a fixed
//! variant, driven from `/sys/kernel/debug/leaklab/`.

use core::fmt::Write;
use kernel::{c_str, prelude::*};

mod debugfs;

module! {
    type: LeakLab,
    name: "leaklab",
    author: "leaklab developers",
    description: "Kernel memory leak samples, leaky and fixed, for kmemleak",
    license: "GPL",
}

/// The module's version, as `leaklab/version` reports it.
const VERSION: &str = "0.1.0";

/// `leaklab/version`: the module's name and version.
struct Version;

impl debugfs::FileOps for Version {
    fn show(&self, out: &mut debugfs::SeqFile) -> Result {
        writeln!(out, "leaklab {VERSION}").map_err(|_| EINVAL)
    }
}

struct LeakLab {
    _version: debugfs::File<Version>,
    _root: debugfs::Dir,
}

impl kernel::Module for LeakLab {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let root = debugfs::Dir::new(c_str!("leaklab"))?;
        let version = root.file(c_str!("version"), Version, module)?;
        pr_info!("leaklab {VERSION} loaded: /sys/kernel/debug/leaklab/\n");
        Ok(LeakLab {
            _version: version,
            _root: root,
        })
    }
}

impl Drop for LeakLab {
    fn drop(&mut self) {
        pr_info!("leaklab unloading\n");
    }
}
