// SPDX-License-Identifier: GPL-2.0
//! Loading and unloading kernel modules (finit_module, delete_module), with
//! errors that say what went wrong and what to do.

use std::{
    fs::File,
    sync::atomic::{AtomicBool, Ordering},
    thread,
};

use anyhow::{bail, Context, Result};
use nix::{
    errno::Errno,
    kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags},
};

use super::{
    initprobe::InitProbe,
    kmsg::KmsgWatch,
    module::{Ko, ModuleLayout},
    thread::in_fresh_thread,
    undo::{self, Noted},
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
    load_with(ko, "").map_err(|e| e.into_error(ko.name()))
}

/// Why a module did not load.
#[derive(Debug)]
pub enum LoadError {
    /// The module's init function ran and returned this error: the module
    /// failed, not the machine. What its init allocated is its own.
    Init(Errno),
    /// The module could not be loaded here (file, permission, symbols,
    /// parameters, already loaded): the message says what to do.
    Refused(anyhow::Error),
}

impl LoadError {
    /// As one error, for callers to whom both kinds are failures.
    pub fn into_error(self, name: &str) -> anyhow::Error {
        match self {
            Self::Init(e) => anyhow::anyhow!("loading {name}: its init failed: {}", init_error(e)),
            Self::Refused(e) => e,
        }
    }
}

/// An init's error as the kernel's headers name it: `-ENODEV (No such
/// device)`.
pub fn init_error(e: Errno) -> String {
    format!("-{e:?} ({})", e.desc())
}

/// Loads the module `ko` (after [`check`]) with `params` (`key=value`
/// separated by spaces, as insmod takes them), telling a failure of the
/// module's own init apart from a refusal to load it.
pub fn load_with(ko: &Ko, params: &str) -> std::result::Result<(), LoadError> {
    check(ko).map_err(LoadError::Refused)?;
    let name = ko.name();
    let refused = |e: anyhow::Error| LoadError::Refused(e);
    let params = std::ffi::CString::new(params)
        .map_err(|_| refused(anyhow::anyhow!("module parameters contain a NUL byte")))?;
    let file = File::open(ko.path())
        .with_context(|| format!("opening {}", ko.path().display()))
        .map_err(refused)?;
    // The kernel names missing symbols and bad parameters only in its log.
    let mut log = KmsgWatch::start().ok();
    let result = finit_module(&file, &params, ModuleInitFlags::empty());
    let lines = match result {
        Ok(()) => return Ok(()),
        Err(_) => log.as_mut().map(|l| l.drain()).unwrap_or_default(),
    };
    // The kernel checks parameters before init runs and says which one.
    if let Some(bad) = lines.iter().find(|l| {
        l.contains(name) && (l.contains("invalid for parameter") || l.contains("Unknown parameter"))
    }) {
        return Err(refused(anyhow::anyhow!(
            "loading {name}: the kernel refused a parameter ({}): fix --param",
            bad.trim()
        )));
    }
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(failed_load(
            name,
            e,
            &lines,
            nix::unistd::geteuid().is_root(),
        )),
    }
}

/// What a load that failed with `errno` was, from the kernel log `lines`
/// it printed and whether we are `root`: the kernel's refusal (what to do),
/// or the module's init failing (a result).
fn failed_load(name: &str, errno: Errno, lines: &[String], root: bool) -> LoadError {
    let refused = |e: anyhow::Error| LoadError::Refused(e);
    match errno {
        // Root may load modules: unless the kernel's lockdown refused it
        // (it says so in its log), its -EPERM is the init's own (ptp_vmw's
        // off VMware, a driver refusing this machine), a result.
        Errno::EPERM if root && !lines.iter().any(|l| l.contains("Lockdown")) => {
            LoadError::Init(Errno::EPERM)
        }
        e @ (Errno::EPERM
        | Errno::EEXIST
        | Errno::ENOEXEC
        | Errno::ENOENT
        | Errno::EKEYREJECTED
        | Errno::ENOKEY
        | Errno::EBADMSG) => refused(refusal(name, e, lines)),
        // EINVAL is the kernel's for a module it cannot take, and many an
        // init's: the kernel says so in its log when it is its own.
        Errno::EINVAL
            if lines.iter().any(|l| {
                ["disagrees about version", "version magic", "ELF"]
                    .iter()
                    .any(|w| l.contains(w))
            }) =>
        {
            refused(refusal(name, Errno::EINVAL, lines))
        }
        e => LoadError::Init(e),
    }
}

/// What a refused load means and what to do, from its error and the
/// kernel log lines it printed.
fn refusal(name: &str, errno: Errno, lines: &[String]) -> anyhow::Error {
    use anyhow::anyhow;
    match errno {
        Errno::EPERM if lines.iter().any(|l| l.contains("Lockdown")) => anyhow!(
            "loading {name}: the kernel is locked down and loads signed modules only: sign it with the kernel's key, or boot without lockdown"
        ),
        Errno::EPERM => anyhow!("loading {name}: not permitted: run as root (CAP_SYS_MODULE)"),
        Errno::EEXIST => anyhow!("loading {name}: already loaded: unload it first (rmmod {name})"),
        Errno::ENOEXEC => anyhow!(
            "loading {name}: the kernel rejected the file (wrong architecture or vermagic): build it against the running kernel"
        ),
        Errno::ENOENT => {
            let missing: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.split_once("Unknown symbol ")?.1.split_whitespace().next())
                .collect();
            if missing.is_empty() {
                // No symbol was missing: the init itself returned -ENOENT.
                anyhow!("loading {name}: its init failed: -ENOENT (something it asks for by name is not there: a crypto algorithm, a firmware file, another module)")
            } else {
                anyhow!(
                    "loading {name}: the kernel lacks {}: build the module against this kernel's tree, with the options that export them",
                    missing.join(", ")
                )
            }
        }
        Errno::EINVAL => anyhow!(
            "loading {name}: invalid module (vermagic or format mismatch with the running kernel): build it against this kernel"
        ),
        e => anyhow!("loading {name}: {e}"),
    }
}

/// A module this program loaded: dropping it unloads the module, so no
/// failed run leaves it behind.
#[derive(Debug)]
pub struct LoadedModule {
    name: String,
    loader: u32,
    loaded: bool,
    /// Its unload, noted for a panic (which skips `drop`).
    undo: Option<Noted>,
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
        Ok(Self::loaded(ko, loader))
    }

    /// The guard of `ko`, just loaded by the thread `loader`.
    fn loaded(ko: &Ko, loader: u32) -> Self {
        Self {
            name: ko.name().to_string(),
            loader,
            loaded: true,
            undo: Some({
                let name = ko.name().to_string();
                undo::note(format!("unloaded {name}"), move || unload(&name))
            }),
        }
    }

    /// Loads `ko` with `params` from a thread of its own, and tells where
    /// its code was while its init ran: for a module whose init fails the
    /// only record (it is gone when the load returns, with its init's
    /// allocations still in the kernel's lists). With `probe` (armed for
    /// `ko`) the kernel itself recorded that before the init ran; without
    /// one, another thread reads the sections as soon as sysfs shows them,
    /// which a quick init can beat.
    pub fn attempt(ko: &Ko, params: &str, probe: Option<&InitProbe>) -> Attempt {
        let done = AtomicBool::new(false);
        let (loader, result, watched) = thread::scope(|s| {
            let watcher = s.spawn(|| {
                while probe.is_none() && !done.load(Ordering::Acquire) {
                    if let Ok(layout) = ModuleLayout::record(ko) {
                        return Some(layout);
                    }
                    thread::yield_now();
                }
                None
            });
            let loader = s.spawn(|| {
                let tid = nix::unistd::gettid().as_raw() as u32;
                let result = load_with(ko, params);
                done.store(true, Ordering::Release);
                (tid, result)
            });
            let (loader, result) = loader.join().unwrap_or_else(|_| {
                done.store(true, Ordering::Release);
                (
                    0,
                    Err(LoadError::Refused(anyhow::anyhow!(
                        "the loading thread panicked"
                    ))),
                )
            });
            (loader, result, watcher.join().ok().flatten())
        });
        let layout = match probe {
            Some(p) => p.take(ko),
            None => watched.ok_or_else(|| {
                anyhow::anyhow!(
                    "its sections were gone before they could be read, and no probe told them (the kernel has no kprobe events)"
                )
            }).map(Some),
        };
        let (mut layout, unknown) = match layout {
            Ok(l) => (l, None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        if let Some(l) = &mut layout {
            l.loader = Some(loader);
        }
        Attempt {
            loader,
            layout,
            unknown,
            result: result.map(|()| Self::loaded(ko, loader)),
        }
    }

    /// The thread that loaded it: kmemleak's `pid` of what its init
    /// allocated.
    pub fn loader(&self) -> u32 {
        self.loader
    }

    /// Records where its sections are (`ko` is its object file), with the
    /// loading thread, so that frames of its init read right after unload.
    pub fn layout(&self, ko: &Ko) -> Result<ModuleLayout> {
        let mut layout = ModuleLayout::record(ko)?;
        layout.loader = Some(self.loader);
        Ok(layout)
    }

    /// Unloads it, trying again while it is in use for up to `patience`
    /// (a file of its own still closing, a work item still running). When
    /// it will not go, the error says why and dropping it tries once more.
    pub fn unload_within(&mut self, patience: std::time::Duration) -> Result<()> {
        let until = std::time::Instant::now() + patience;
        loop {
            match unload(&self.name) {
                Ok(()) => {
                    self.loaded = false;
                    self.undo = None;
                    return Ok(());
                }
                Err(e) if std::time::Instant::now() >= until || !in_use(&e) => return Err(e),
                Err(_) => thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }

    /// Unloads it now; it is not tried again on drop, whatever the outcome.
    pub fn unload(&mut self) -> Result<()> {
        self.loaded = false;
        self.undo = None;
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

/// One attempt to load a module ([`LoadedModule::attempt`]).
#[derive(Debug)]
pub struct Attempt {
    /// The thread that loaded it: kmemleak's `pid` of what its init
    /// allocated.
    pub loader: u32,
    /// Where its code was while its init ran, when its init ran and that
    /// could be told.
    pub layout: Option<ModuleLayout>,
    /// Why that could not be told.
    pub unknown: Option<String>,
    /// The loaded module, or why it did not load.
    pub result: std::result::Result<LoadedModule, LoadError>,
}

/// Whether an [`unload`] error says the module is in use.
fn in_use(e: &anyhow::Error) -> bool {
    e.to_string().contains(IN_USE)
}

const IN_USE: &str = "in use: close its files and retry";

/// Unloads the module `name` without waiting for its users.
pub fn unload(name: &str) -> Result<()> {
    let cname = std::ffi::CString::new(name).context("module name contains NUL")?;
    match delete_module(&cname, DeleteModuleFlags::O_NONBLOCK) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => bail!("unloading {name}: not permitted: run as root (CAP_SYS_MODULE)"),
        Err(Errno::ENOENT) => bail!("unloading {name}: not loaded"),
        Err(Errno::EBUSY) | Err(Errno::EAGAIN) => {
            bail!("unloading {name}: {IN_USE}")
        }
        Err(e) => bail!("unloading {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(e: LoadError) -> String {
        match e {
            LoadError::Init(errno) => format!("init {errno:?}"),
            LoadError::Refused(e) => format!("refused: {e}"),
        }
    }

    /// -EPERM is the kernel's refusal for a user without CAP_SYS_MODULE
    /// and under lockdown; for root, the module's own init said it.
    #[test]
    fn eperm_is_the_inits_own_only_for_root_without_lockdown() {
        assert_eq!(
            said(failed_load("ptp_vmw", Errno::EPERM, &[], true)),
            "init EPERM"
        );
        assert!(said(failed_load("m", Errno::EPERM, &[], false)).contains("run as root"));
        let lockdown = ["Lockdown: insmod: unsigned module loading is restricted".to_string()];
        assert!(said(failed_load("m", Errno::EPERM, &lockdown, true)).contains("locked down"));
        assert_eq!(
            said(failed_load("m", Errno::ENODEV, &[], true)),
            "init ENODEV"
        );
        let magic = ["m: version magic '6.1' should be '6.12'".to_string()];
        assert!(said(failed_load("m", Errno::EINVAL, &magic, true)).starts_with("refused"));
        assert_eq!(
            said(failed_load("m", Errno::EINVAL, &[], true)),
            "init EINVAL"
        );
    }
}
