// SPDX-License-Identifier: GPL-2.0
//! Progress on a terminal, nothing in logs and pipes.

use std::{io::IsTerminal, time::Duration};

/// A spinner with a message on stderr when it is a terminal; hidden (and
/// without its ticking thread) in logs and pipes.
pub fn spinner() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Runs `work` with a spinner that shows the messages it passes to its
/// argument; the spinner is gone when it returns.
pub fn with_progress<T>(work: impl FnOnce(&mut dyn FnMut(&str)) -> T) -> T {
    let bar = spinner();
    let out = work(&mut |m| bar.set_message(m.to_string()));
    bar.finish_and_clear();
    out
}
