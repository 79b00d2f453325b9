// SPDX-License-Identifier: GPL-2.0
//! What must be put back if the program dies of a panic.
//!
//! The release build aborts on a panic (`panic = "abort"`): no destructor
//! runs, so the guards that unload a module and restore kmemleak's settings
//! would be skipped and the machine left changed. Each such guard notes its
//! undo step here while it holds the change ([`note`]), and the panic hook
//! ([`install_panic_hook`]) runs the steps still noted, last first, before
//! the program aborts. A guard that did its own cleanup drops its
//! [`Noted`], which takes the step off the list.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Mutex,
};

use anyhow::Result;

/// One step that puts the machine back: what it does, in words, and the
/// doing.
struct Undo {
    what: String,
    step: Box<dyn Fn() -> Result<()> + Send>,
}

impl Undo {
    /// Does it, reporting to stderr: in a panic there is nobody else to
    /// tell.
    fn run(&self) {
        match (self.step)() {
            Ok(()) => eprintln!("leaklab: after the panic: {}", self.what),
            Err(e) => eprintln!("leaklab: after the panic, could not {}: {e:#}", self.what),
        }
    }
}

/// The steps noted, with their ids, oldest first.
static NOTED: Mutex<Vec<(u64, Undo)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A noted step: dropping it takes the step off the list (its guard did
/// the cleanup itself, or there is nothing left to undo).
#[derive(Debug)]
#[must_use = "dropping it forgets the undo step at once"]
pub struct Noted(u64);

impl Drop for Noted {
    fn drop(&mut self) {
        let mut noted = NOTED.lock().unwrap_or_else(|p| p.into_inner());
        noted.retain(|(id, _)| *id != self.0);
    }
}

/// Notes the step `step`, described by `what` (`unloaded leaky_driver`),
/// until the returned [`Noted`] is dropped.
pub fn note(what: String, step: impl Fn() -> Result<()> + Send + 'static) -> Noted {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let undo = Undo {
        what,
        step: Box::new(step),
    };
    NOTED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, undo));
    Noted(id)
}

/// Runs every noted step, last first, and forgets them.
fn run_noted() {
    // A panic while the list is locked (in note or drop) must not deadlock.
    let steps = match NOTED.try_lock() {
        Ok(mut noted) => std::mem::take(&mut *noted),
        Err(std::sync::TryLockError::Poisoned(p)) => std::mem::take(&mut *p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    for (_, undo) in steps.iter().rev() {
        undo.run();
    }
}

/// Makes a panic put the machine back before the program ends: the
/// default message first, then the noted steps.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        run_noted();
    }));
}

/// The environment variable that makes [`failpoint`] panic: set it to a
/// failpoint's name to see the undo steps run (the VM tests do).
pub const PANIC_AT: &str = "LEAKLAB_PANIC_AT";

/// Panics when [`PANIC_AT`] names `name`: a panic on purpose where the
/// machine is most changed (a module loaded, kmemleak's settings changed),
/// to show that a panic puts it back.
pub fn failpoint(name: &str) {
    if std::env::var_os(PANIC_AT).is_some_and(|v| v == name) {
        panic!("{PANIC_AT}={name}: a panic on purpose, to show the undo steps");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the steps noted now do, oldest first.
    fn noted() -> Vec<String> {
        NOTED
            .lock()
            .unwrap()
            .iter()
            .map(|(_, u)| u.what.clone())
            .collect()
    }

    #[test]
    fn steps_are_noted_until_their_guard_lets_go_and_run_last_first() {
        let ran = std::sync::Arc::new(Mutex::new(Vec::new()));
        let step = |what: &'static str| {
            let ran = ran.clone();
            note(format!("test step {what}"), move || {
                ran.lock().unwrap().push(what);
                Ok(())
            })
        };
        let kept = step("first");
        let dropped = step("second");
        let last = step("third");
        drop(dropped);
        let now = noted();
        assert!(now.contains(&"test step first".to_string()));
        assert!(!now.contains(&"test step second".to_string()));
        run_noted();
        assert_eq!(*ran.lock().unwrap(), ["third", "first"]);
        assert!(!noted().iter().any(|w| w.starts_with("test step")));
        drop((kept, last));
    }
}
