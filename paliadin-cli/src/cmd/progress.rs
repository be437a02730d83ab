//! Progress on stderr while a call runs: `indicatif`'s spinner with the
//! elapsed seconds, ticking ten times a second on a terminal and erased
//! afterwards. Never writes to stdout and never draws when told not to (no
//! terminal).

use std::time::Duration;

/// Runs `f` (on this thread; the spinner ticks on indicatif's own) with a
/// spinner and the elapsed seconds on stderr when `spin`, cleared
/// afterwards.
pub fn with_spinner<T>(spin: bool, f: impl FnOnce() -> T) -> T {
    if !spin {
        return f();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} thinking… {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let out = f();
    bar.finish_and_clear();
    out
}
