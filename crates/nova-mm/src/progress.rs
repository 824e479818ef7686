//! A progress bar for long operations (large demos, scanning large images) that only draws when
//! a person is watching: both stdout and stderr must be terminals, so piped or redirected runs
//! (and tests) stay quiet.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar drawn on stderr, or a hidden one that accepts the same calls.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

/// Whether a progress bar should be drawn: stdout and stderr are both terminals.
#[must_use]
pub fn should_draw() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

impl Progress {
    /// A bar for `total` bytes labelled `label`, visible only if [`should_draw`].
    #[must_use]
    pub fn bytes(total: u64, label: &str) -> Self {
        Self::with_visibility(total, label, should_draw())
    }

    /// A bar for `total` steps (not bytes) that draws on stderr if `visible`.
    #[must_use]
    pub fn steps(total: u64, label: &str, visible: bool) -> Self {
        if !visible {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} steps")
        {
            bar.set_style(style);
        }
        bar.set_message(label.to_owned());
        Self { bar }
    }

    /// A bar that never draws.
    #[must_use]
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    /// A bar for `total` bytes that draws on stderr if `visible`.
    #[must_use]
    pub fn with_visibility(total: u64, label: &str, visible: bool) -> Self {
        if !visible {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style);
        }
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self { bar }
    }

    /// Whether the bar draws.
    #[must_use]
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Sets the total.
    pub fn set_length(&self, total: u64) {
        self.bar.set_length(total);
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the position.
    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Never leave a stale bar on the terminal, even on an early error return.
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_when_not_visible() {
        let p = Progress::with_visibility(100, "scan", false);
        assert!(!p.is_visible());
        p.inc(10);
        p.set_position(50);
        p.finish();
        // Under `cargo test` stdout is captured, so it is not a terminal.
        assert!(!Progress::bytes(10, "x").is_visible() || should_draw());
    }
}
