// SPDX-License-Identifier: GPL-2.0
//! Work done from a thread whose kernel stack is gone before a scan, and
//! helper threads that run only while the rest waits.

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

/// Gives the calling thread the lowest scheduling priority (nice 19): work
/// that can wait runs while the program's other threads sleep (grace
/// periods, polls) and takes next to no time from them while they run.
/// Best effort: a thread that may not lower its priority runs as it was.
pub fn lowest_priority() {
    // SAFETY: setpriority(2) takes plain integers; on Linux, `who` 0 with
    // PRIO_PROCESS names the calling thread alone.
    let _ = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, 19) };
}

/// The thread id of a thread created now: kmemleak's `pid` of a task grows
/// with the time it was created (until pids wrap), so such a mark tells
/// the tasks created before it from those created after.
pub fn pid_mark() -> Result<u32> {
    in_fresh_thread(|| Ok(nix::unistd::gettid().as_raw() as u32))
}

/// Pid marks taken in order: the first task of each step (a thread made
/// for it), then one taken after the last step. Which step created a task
/// follows from its pid, while pids do not wrap around.
#[derive(Debug, Default, Clone)]
pub struct PidMarks {
    starts: Vec<u32>,
}

impl PidMarks {
    /// Adds the next mark.
    pub fn push(&mut self, pid: u32) {
        self.starts.push(pid);
    }

    /// The step (from 0) whose tasks include `pid`: its mark at or below
    /// `pid`, the next mark above. `None` before the first mark, at or
    /// after the last, and when the pids wrapped between two marks.
    pub fn step_of(&self, pid: u32) -> Option<usize> {
        if self.starts.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let i = self.starts.partition_point(|&s| s <= pid);
        i.checked_sub(1).filter(|_| i < self.starts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::PidMarks;

    fn marks(starts: &[u32]) -> PidMarks {
        let mut m = PidMarks::default();
        starts.iter().for_each(|&s| m.push(s));
        m
    }

    #[test]
    fn pids_fall_in_the_step_that_created_them() {
        let m = marks(&[100, 110, 125, 130]);
        assert_eq!(m.step_of(99), None);
        assert_eq!(m.step_of(100), Some(0));
        assert_eq!(m.step_of(109), Some(0));
        assert_eq!(m.step_of(110), Some(1));
        assert_eq!(m.step_of(129), Some(2));
        assert_eq!(m.step_of(130), None);
        // A kworker started at boot belongs to no step.
        assert_eq!(m.step_of(7), None);
    }

    #[test]
    fn wrapped_pids_tell_no_step() {
        let m = marks(&[32760, 5, 12]);
        assert_eq!(m.step_of(32761), None);
        assert_eq!(m.step_of(6), None);
    }
}
