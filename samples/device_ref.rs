// SPDX-License-Identifier: GPL-2.0

//! Device reference leak: `get_device()` without the matching `put_device()`.
//!
//! A driver takes an extra reference on a device (to keep it around for a
//! callback, a lookup table, a sysfs link) and forgets to drop it. After the
//! device is unregistered its reference count stays at one, so its release
//! function never runs: the device, its name (from `dev_set_name()`) and its
//! driver-core private data leak. kmemleak sees them once nothing points to
//! them any more, that is, right after the unregistration.
//!
//! Fixed: the extra reference is an `ARef<Device>`, whose `Drop` is
//! `put_device()`.
//!
//! Leaks per leaky run: three objects (the device, its name, its
//! `device_private`), sizes as the driver core allocates them.

use crate::{accounting::Tally, pattern::Pattern};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    bindings, c_str, device::Device, error::from_err_ptr, fmt, prelude::*, str::CString,
    types::ARef,
};

/// A root device registered for one run, unregistered on drop.
///
/// # Invariants
///
/// `0` points to a device registered by `__root_device_register`.
struct RootDevice(*mut bindings::device);

impl RootDevice {
    fn register() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name =
            CString::try_from_fmt(fmt!("leaklab-ref{}", NEXT.fetch_add(1, Ordering::Relaxed)))?;
        // SAFETY: `name` is NUL-terminated and is copied by the driver core.
        let dev = from_err_ptr(unsafe {
            bindings::__root_device_register(name.as_char_ptr(), core::ptr::null_mut())
        })?;
        // INVARIANT: `dev` was just registered.
        Ok(Self(dev))
    }

    /// Counts the three objects the driver core allocated for the device.
    fn count(&self, t: &mut Tally, leaked: bool) {
        // SAFETY: The device is registered (type invariant), so its fields are
        // set and may be read.
        let objects = unsafe {
            [
                self.0.cast_const().cast::<u8>(),
                (*self.0).kobj.name.cast(),
                (*self.0).p.cast_const().cast(),
            ]
        };
        for o in objects {
            // SAFETY: Each is the start of a kmalloc object that lives while
            // the device is registered (drivers/base/): `__root_device_register`
            // kzallocs a `struct root_device` whose first member is the device;
            // `dev_set_name(dev, "%s", name)` kstrdups the name, which is not
            // in .rodata (a `CString`); `device_add` kzallocs `p`. Kbuild
            // stops the build on a tree whose driver core does otherwise.
            let counted = unsafe { t.allocated_at(o) };
            if leaked {
                t.leaked(counted);
            }
        }
    }
}

impl Drop for RootDevice {
    fn drop(&mut self) {
        // SAFETY: The device is registered (type invariant) and this is the
        // only place that unregisters it.
        unsafe { bindings::root_device_unregister(self.0) };
    }
}

/// Leaky: an extra reference taken with `get_device()` and never put.
#[inline(never)]
fn probe_remove_leaky(t: &mut Tally) -> Result {
    let dev = RootDevice::register()?;
    // SAFETY: The device is registered; taking a reference is always allowed.
    unsafe { bindings::get_device(dev.0) };
    dev.count(t, true);
    // BUG: unregistering drops the driver core's reference, but ours is never
    // put, so the device is never released.
    drop(dev);
    Ok(())
}

/// Fixed: the extra reference is an `ARef`, and dropping it puts it.
#[inline(never)]
fn probe_remove_fixed(t: &mut Tally) -> Result {
    let dev = RootDevice::register()?;
    // SAFETY: `dev.0` points to a registered, hence valid, device.
    let extra: ARef<Device> = unsafe { Device::get_device(dev.0) };
    dev.count(t, false);
    drop(dev);
    // The last reference: the device, its name and private data are freed.
    drop(extra);
    Ok(())
}

pub(crate) const PATTERN: Pattern = Pattern {
    name: c_str!("device_ref"),
    description:
        "A driver takes an extra reference on its device with get_device() and never puts \
it; after the device is unregistered it is never released, and the device, its name and its \
driver-core private data leak (three objects). Fixed: the reference is an ARef<Device>, whose \
Drop calls put_device().",
    leaky: probe_remove_leaky,
    fixed: probe_remove_fixed,
    after_unload: false,
    kmemleak_visible: true,
    grows: false,
    disarm: None,
    at_unload: None,
};
