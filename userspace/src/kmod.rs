//! Loading and unloading kernel modules (finit_module, delete_module), with
//! errors that say what went wrong and what to do.

use std::{fs::File, path::Path};

use anyhow::{bail, Context, Result};
use nix::{
    errno::Errno,
    kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags},
};

use crate::layout::modinfo;

/// Loads the module at `ko` and returns its name.
pub fn load(ko: &Path) -> Result<String> {
    let name = modinfo(ko, "name")?.with_context(|| {
        format!(
            "{} has no module name in .modinfo: not a kernel module",
            ko.display()
        )
    })?;
    let file = File::open(ko).with_context(|| format!("opening {}", ko.display()))?;
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) => Ok(name),
        Err(Errno::EPERM) => bail!("loading {name}: not permitted: run as root (CAP_SYS_MODULE)"),
        Err(Errno::EEXIST) => bail!("loading {name}: already loaded: unload it first (rmmod {name})"),
        Err(Errno::ENOEXEC) => bail!(
            "loading {name}: the kernel rejected the file (wrong architecture or vermagic): build it against the running kernel"
        ),
        Err(Errno::ENOENT) => bail!("loading {name}: unknown symbol: the kernel lacks a symbol it needs (see the kernel log)"),
        Err(Errno::EINVAL) => bail!(
            "loading {name}: invalid module (vermagic or format mismatch with the running kernel): build it against this kernel"
        ),
        Err(e) => bail!("loading {name}: {e}"),
    }
}

/// Unloads the module `name` without waiting for its users.
pub fn unload(name: &str) -> Result<()> {
    let cname = std::ffi::CString::new(name).context("module name contains NUL")?;
    match delete_module(&cname, DeleteModuleFlags::O_NONBLOCK) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => bail!("unloading {name}: not permitted: run as root (CAP_SYS_MODULE)"),
        Err(Errno::ENOENT) => bail!("unloading {name}: not loaded"),
        Err(Errno::EBUSY) | Err(Errno::EAGAIN) => {
            bail!("unloading {name}: in use: close its files and retry")
        }
        Err(e) => bail!("unloading {name}: {e}"),
    }
}
