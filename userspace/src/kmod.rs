//! Loading and unloading kernel modules (finit_module, delete_module), with
//! errors that say what went wrong and what to do.

use std::{fs::File, path::Path};

use anyhow::{bail, Context, Result};
use nix::{
    errno::Errno,
    kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags},
};

use crate::layout::modinfo_of;

/// The machine name `uname -m` gives for an ELF machine.
fn machine_name(m: object::Architecture) -> &'static str {
    match m {
        object::Architecture::X86_64 => "x86_64",
        object::Architecture::Aarch64 => "aarch64",
        _ => "another architecture",
    }
}

/// Checks that `file` (the object file `ko`) was built for the running
/// kernel, as far as the file tells: its architecture and its vermagic's
/// release.
fn check_built_for_running_kernel(ko: &Path, file: &object::File<'_>) -> Result<()> {
    use object::Object;
    let uts = nix::sys::utsname::uname().context("uname")?;
    let release = uts.release().to_string_lossy();
    let machine = uts.machine().to_string_lossy();
    let built = machine_name(file.architecture());
    if built != machine {
        bail!(
            "{} is built for {built}, this machine is {machine}: build it with ARCH set for this machine",
            ko.display()
        );
    }
    let vermagic = modinfo_of(file, "vermagic")?.unwrap_or_default();
    let built_release = vermagic.split_whitespace().next().unwrap_or("");
    if built_release != release {
        bail!(
            "{} is built for kernel {built_release:?}, this kernel is {release}: build it against this kernel (make module KDIR=<its build directory>)",
            ko.display()
        );
    }
    Ok(())
}

/// Checks that `ko` is a kernel module built for the running kernel (its
/// architecture and vermagic), without loading it; returns its name.
pub fn check(ko: &Path) -> Result<String> {
    let data = std::fs::read(ko).with_context(|| format!("reading {}", ko.display()))?;
    let object = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF object", ko.display()))?;
    let name = modinfo_of(&object, "name")?.with_context(|| {
        format!(
            "{} has no module name in .modinfo: not a kernel module",
            ko.display()
        )
    })?;
    check_built_for_running_kernel(ko, &object)?;
    Ok(name)
}

/// Loads the module at `ko` and returns its name.
pub fn load(ko: &Path) -> Result<String> {
    let name = check(ko)?;
    let file = File::open(ko).with_context(|| format!("opening {}", ko.display()))?;
    // The kernel names missing symbols only in its log.
    let mut log = crate::monitor::KmsgWatch::start().ok();
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) => Ok(name),
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

/// Loads `ko` from a thread of its own (see `kmemleak::in_fresh_thread`);
/// returns the module's name and that thread's id, which kmemleak gives as
/// the `pid` of every object the module's init allocates.
pub fn load_in_own_thread(ko: &Path) -> Result<(String, u32)> {
    crate::kmemleak::in_fresh_thread(|| {
        let tid = nix::unistd::gettid().as_raw() as u32;
        Ok((load(ko)?, tid))
    })
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
