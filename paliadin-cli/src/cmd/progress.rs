//! Progress on stderr while a call runs: a spinner with the elapsed seconds,
//! redrawn ten times a second on a terminal and erased afterwards. Never
//! writes to stdout and never draws when told not to (no terminal).

use std::time::{Duration, Instant};

/// Runs `f` on a worker thread; meanwhile a spinner with the elapsed
/// seconds on stderr, cleared afterwards.
pub fn with_spinner<T: Send>(spin: bool, f: impl FnOnce() -> T + Send) -> T {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    std::thread::scope(|s| {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = s.spawn(move || {
            let out = f();
            let _ = done_tx.send(());
            out
        });
        if spin {
            let start = Instant::now();
            let mut frame = 0;
            // Redraw ten times a second; the reply is shown the moment it
            // is there, not at the next frame.
            loop {
                let secs = start.elapsed().as_secs();
                eprint!("\r{} thinking… {secs}s", FRAMES[frame % FRAMES.len()]);
                frame += 1;
                match done_rx.recv_timeout(Duration::from_millis(100)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            eprint!("\r\x1b[2K");
        }
        worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
