//! Loading and unloading kernel modules (finit_module, delete_module), with
//! errors that say what went wrong and what to do.

use std::fs::File;

use anyhow::{bail, Context, Result};
use nix::{
    errno::Errno,
    kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags},
};

use super::{
    kmsg::KmsgWatch,
    module::{Ko, ModuleLayout},
    thread::in_fresh_thread,
};

/// The machine name `uname -m` gives for an ELF machine.
fn machine_name(m: object::Architecture) -> &'static str {
    match m {
        object::Architecture::X86_64 => "x86_64",
        object::Architecture::Aarch64 => "aarch64",
        _ => "another architecture",
    }
}

/// Checks that `ko` was built for the running kernel, as far as the file
/// tells: its architecture and its vermagic's release. Loads nothing.
pub fn check(ko: &Ko) -> Result<()> {
    let uts = nix::sys::utsname::uname().context("uname")?;
    let release = uts.release().to_string_lossy();
    let machine = uts.machine().to_string_lossy();
    let built = machine_name(ko.architecture());
    if built != machine {
        bail!(
            "{} is built for {built}, this machine is {machine}: build it with ARCH set for this machine",
            ko.path().display()
        );
    }
    let built_release = ko
        .vermagic()
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("");
    if built_release != release {
        bail!(
            "{} is built for kernel {built_release:?}, this kernel is {release}: build it against this kernel (make module KDIR=<its build directory>)",
            ko.path().display()
        );
    }
    Ok(())
}

/// Loads the module `ko` (after [`check`]).
pub fn load(ko: &Ko) -> Result<()> {
    check(ko)?;
    let name = ko.name();
    let file = File::open(ko.path()).with_context(|| format!("opening {}", ko.path().display()))?;
    // The kernel names missing symbols only in its log.
    let mut log = KmsgWatch::start().ok();
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => bail!("loading {name}: not permitted: run as root (CAP_SYS_MODULE)"),
        Err(Errno::EEXIST) => bail!("loading {name}: already loaded: unload it first (rmmod {name})"),
        Err(Errno::ENOEXEC) => bail!(
            "loading {name}: the kernel rejected the file (wrong architecture or vermagic): build it against the running kernel"
        ),
        Err(Errno::ENOENT) => {
            let lines = log.as_mut().map(|l| l.drain()).unwrap_or_default();
            let missing: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.split_once("Unknown symbol ")?.1.split_whitespace().next())
                .collect();
            if missing.is_empty() {
                bail!("loading {name}: unknown symbol: the kernel lacks a symbol it needs (see the kernel log)")
            }
            bail!(
                "loading {name}: the kernel lacks {}: build the module against this kernel's tree, with the options that export them",
                missing.join(", ")
            )
        }
        Err(Errno::EINVAL) => bail!(
            "loading {name}: invalid module (vermagic or format mismatch with the running kernel): build it against this kernel"
        ),
        Err(e) => bail!("loading {name}: {e}"),
    }
}

/// A module this program loaded: dropping it unloads the module, so no
/// failed run leaves it behind.
#[derive(Debug)]
pub struct LoadedModule {
    name: String,
    loader: u32,
    loaded: bool,
}

impl LoadedModule {
    /// Loads `ko` from a thread of its own (see [`in_fresh_thread`]),
    /// noting that thread's id, which kmemleak gives as the `pid` of every
    /// object the module's init allocates.
    pub fn load(ko: &Ko) -> Result<Self> {
        let loader = in_fresh_thread(|| {
            let tid = nix::unistd::gettid().as_raw() as u32;
            load(ko)?;
            Ok(tid)
        })?;
        Ok(Self {
            name: ko.name().to_string(),
            loader,
            loaded: true,
        })
    }

    /// Records where its sections are (`ko` is its object file), with the
    /// loading thread, so that frames of its init read right after unload.
    pub fn layout(&self, ko: &Ko) -> Result<ModuleLayout> {
        let mut layout = ModuleLayout::record(ko)?;
        layout.loader = Some(self.loader);
        Ok(layout)
    }

    /// Unloads it now; it is not tried again on drop, whatever the outcome.
    pub fn unload(&mut self) -> Result<()> {
        self.loaded = false;
        unload(&self.name)
    }
}

impl Drop for LoadedModule {
    fn drop(&mut self) {
        if self.loaded {
            let _ = unload(&self.name);
        }
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
