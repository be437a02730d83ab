//! `health <session>`: the session exists and its agent is alive, started if
//! it was missing. Prints `ok`. Bounded well inside the Go client's 3 s probe
//! (which also pays a fresh ssh connection): a starting agent that is alive is
//! healthy, and the first turn waits for full readiness.

use paliadin_core::SessionName;
use std::time::{Duration, Instant};

use crate::agent::Shim;
use crate::error::Result;
use crate::output::print_or_fail;
use paliadin_core::ExitCode;

/// How long `health` waits for a starting agent before answering.
const HEALTH_WAIT: Duration = Duration::from_millis(1000);

pub fn run(shim: &Shim, session: &SessionName) -> Result<()> {
    let s = shim.session_dir(session, true)?;
    if let Err(e) = shim.ensure_ready(&s, Instant::now() + HEALTH_WAIT) {
        // Still starting but alive is healthy; dead, or stuck on a dialog, is not.
        if e.code == ExitCode::Blocked || shim.live_pane(&s)?.is_none() || s.agent().is_none() {
            return Err(e);
        }
    }
    print_or_fail(b"ok\n")
}
