//! What a session looks like from outside (PROTOCOL section 1's `status`
//! and `sessions`): one JSON object per session, built from its pane and its
//! state. Reads only; never starts anything.

use paliadin_core::timefmt::rfc3339_ms;
use paliadin_core::SessionName;
use serde_json::{json, Value};
use std::time::UNIX_EPOCH;

use crate::agent::Shim;
use crate::error::Result;
use crate::state::{Mark, TurnState};

/// The status object of one session.
pub fn object(shim: &Shim, session: &SessionName) -> Result<Value> {
    let s = shim.session_dir(session, false)?;
    let pane = shim
        .tmux
        .pane(&s.name.key())
        .map_err(crate::agent::tmux_error)?;
    let alive = shim.live_pane(&s)?.is_some();
    // The turn the session waits on: typed, and not yet answered or failed
    // (a `poll` may have delivered it without clearing the mark).
    let current = s
        .current()
        .map(|id| s.turn(id))
        .filter(|t| matches!(t.state(), TurnState::Pending | TurnState::Blocked(_)));
    let blocked = current
        .as_ref()
        .is_some_and(|t| matches!(t.state(), TurnState::Blocked(_)));
    let current = current.map(|t| t.id.to_string());
    let activity = s
        .last_activity()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| rfc3339_ms(d.as_millis() as i64));
    Ok(json!({
        "session": session.as_str(),
        "exists": pane.is_some(),
        "alive": alive,
        "ready": alive && s.has(Mark::Ready),
        "busy": s.busy(),
        "blocked": blocked,
        "current_turn": current,
        "agent": s.agent().map(|a| a.argv),
        "pid": pane.as_ref().map(|p| p.pid),
        "started": pane.as_ref().map(|p| rfc3339_ms(p.created * 1000)),
        "last_activity": activity,
        "refused": s.refused(),
    }))
}
