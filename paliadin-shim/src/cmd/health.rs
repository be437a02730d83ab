//! `health <session>`: the session exists and its agent is alive, started if
//! it was missing. Prints `ok`. Bounded so that a client's short probe gets an
//! answer; the first turn still waits for full readiness.

use paliadin_core::SessionName;
use std::time::{Duration, Instant};

use crate::agent::Shim;
use crate::error::{Result, ShimError};

/// How long `health` waits for a starting agent before answering.
const HEALTH_WAIT: Duration = Duration::from_millis(2500);

pub fn run(shim: &Shim, session: &SessionName) -> Result<()> {
    let s = shim.session_dir(session);
    s.create()?;
    if let Err(e) = shim.ensure_ready(&s, Instant::now() + HEALTH_WAIT) {
        // Still starting but alive is healthy; anything dead is not.
        if shim.live_pane(&s)?.is_none() || !s.has("agent.json") {
            return Err(e);
        }
    }
    super::print(b"ok\n").map_err(|e| ShimError::failure(e.to_string()))
}
