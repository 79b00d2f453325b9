// SPDX-License-Identifier: GPL-2.0
//! One copy of each distinct stack. A loop allocates from one place
//! thousands of times, and its stack records repeat: a copy per record
//! made the reader allocate and free memory for every allocation traced,
//! which on a guest of one CPU cost the traced loop more than the reading
//! did (`make bench`).

use std::sync::{Arc, LazyLock};

use rustc_hash::FxHashSet;

/// A stack's return addresses, innermost first, shared by every
/// allocation made along it.
pub type Stack = Arc<[u64]>;

/// The stack of an allocation whose stack record has not come yet (or
/// was lost): empty, and shared.
pub fn none() -> Stack {
    static EMPTY: LazyLock<Stack> = LazyLock::new(|| Arc::from([]));
    EMPTY.clone()
}

/// Stacks kept before the first sweep of those no allocation holds.
const FIRST_SWEEP: usize = 4096;

/// The stacks seen. Those no allocation holds any more are dropped
/// whenever the set has doubled since the last sweep, so it stays within
/// twice the stacks in use (and [`FIRST_SWEEP`]).
#[derive(Debug, Clone, Default)]
pub struct Stacks {
    set: FxHashSet<Stack>,
    /// The frames of the record being read (kept to spare an allocation).
    frames: Vec<u64>,
    sweep_at: usize,
}

impl Stacks {
    /// The shared copy of the stack `frames`.
    pub fn intern(&mut self, frames: impl IntoIterator<Item = u64>) -> Stack {
        self.frames.clear();
        self.frames.extend(frames);
        if let Some(s) = self.set.get(self.frames.as_slice()) {
            return s.clone();
        }
        if self.set.len() >= self.sweep_at.max(FIRST_SWEEP) {
            self.set.retain(|s| Arc::strong_count(s) > 1);
            self.sweep_at = self.set.len() * 2;
        }
        let s = Stack::from(self.frames.as_slice());
        self.set.insert(s.clone());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_frames_share_one_copy_and_others_do_not() {
        let mut s = Stacks::default();
        let a = s.intern([1, 2, 3]);
        let b = s.intern(vec![1, 2, 3]);
        let c = s.intern([1, 2]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(*c, [1, 2]);
        assert_eq!(s.set.len(), 2);
    }

    #[test]
    fn stacks_nobody_holds_are_swept_once_the_set_has_doubled() {
        let mut s = Stacks::default();
        let held: Vec<Stack> = (0..10).map(|i| s.intern([i])).collect();
        for i in 10..FIRST_SWEEP as u64 {
            s.intern([i]);
        }
        assert_eq!(s.set.len(), FIRST_SWEEP, "no sweep before the first mark");
        let next = s.intern([u64::MAX]);
        assert_eq!(s.set.len(), held.len() + 1, "the held ten and the new one");
        // The held stacks are still the shared copies.
        assert!(Arc::ptr_eq(&held[3], &s.intern([3])));
        assert_eq!(*next, [u64::MAX]);
    }
}
