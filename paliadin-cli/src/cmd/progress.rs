//! Progress on stderr while a call runs: `indicatif`'s spinner with the
//! current step of the agent's work (or "thinking…") and the elapsed
//! seconds, ticking ten times a second on a terminal and erased afterwards;
//! lines printed above it stay. Never writes to stdout and never draws when
//! told not to (no terminal).

use std::time::Duration;

/// What the running call may say while the spinner turns.
pub struct Steps {
    bar: Option<indicatif::ProgressBar>,
}

impl Steps {
    /// Shows `step` beside the spinner ("thinking…" for `None`).
    pub fn show(&self, step: Option<&str>) {
        if let Some(bar) = &self.bar {
            bar.set_message(step.unwrap_or(THINKING).to_owned());
        }
    }

    /// Runs `f` with the spinner hidden (it turns again after), e.g. to ask
    /// the person something.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Prints `line` on stderr, above the spinner when there is one.
    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Prints `line` on stderr above the spinner; nothing without one.
    pub fn println(&self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.println(line);
        }
    }
}

const THINKING: &str = "thinking…";

/// Runs `f` (on this thread; the spinner ticks on indicatif's own) with a
/// spinner and the elapsed seconds on stderr when `spin`, cleared
/// afterwards.
pub fn with_spinner<T>(spin: bool, f: impl FnOnce() -> T) -> T {
    with_steps(spin, |_| f())
}

/// [`with_spinner`], with a [`Steps`] for `f` to show the agent's steps.
pub fn with_steps<T>(spin: bool, f: impl FnOnce(&Steps) -> T) -> T {
    if !spin {
        return f(&Steps { bar: None });
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} · {secs}")
            .map(|s| {
                s.with_key(
                    "secs",
                    |st: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{} s", st.elapsed().as_secs());
                    },
                )
            })
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
    );
    bar.set_message(THINKING);
    bar.enable_steady_tick(Duration::from_millis(100));
    let quiet = Quiet::begin();
    let steps = Steps { bar: Some(bar) };
    let out = f(&steps);
    if let Some(bar) = steps.bar {
        bar.finish_and_clear();
    }
    drop(quiet);
    out
}

/// The terminal's echo off while the spinner turns: the `^C` a terminal
/// echoes would land in the spinner's last column, wrap, and leave the
/// spinner's line behind when it is cleared. Keys typed meanwhile stay in
/// the terminal's queue. Restored on drop.
struct Quiet {
    saved: Option<rustix::termios::Termios>,
}

impl Quiet {
    fn begin() -> Quiet {
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        let fd = rustix::stdio::stdin();
        let saved = rustix::termios::isatty(fd)
            .then(|| tcgetattr(fd).ok())
            .flatten();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet
                .local_modes
                .remove(LocalModes::ECHO | LocalModes::ECHOCTL);
            let _ = tcsetattr(fd, OptionalActions::Now, &quiet);
        }
        Quiet { saved }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        if let Some(t) = self.saved.take() {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                &t,
            );
        }
    }
}
