//! Work done from a thread whose kernel stack is gone before a scan.

use std::thread;

use anyhow::Result;

/// Runs `f` in a thread that ends before this returns.
///
/// kmemleak scans the kernel stack of every live task, and a system call
/// leaves the addresses it handled in dead frames of the calling task's
/// stack: a scan or a read of the report file (every object it went
/// through), a module load (the objects its init allocated and freed, which
/// the next allocations of the same size reuse), a sample run. A later scan
/// would take those stale copies for references and the leak would stay
/// hidden. A thread's kernel stack is freed when it ends, so such calls run
/// in a thread of their own.
pub fn in_fresh_thread<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")))
    })
}

/// The thread id of a thread created now: kmemleak's `pid` of a task grows
/// with the time it was created (until pids wrap), so such a mark tells
/// the tasks created before it from those created after.
pub fn pid_mark() -> Result<u32> {
    in_fresh_thread(|| Ok(nix::unistd::gettid().as_raw() as u32))
}
