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
    // The plan's windows as the status line last saw them, and the
    // subscription's limit while it holds (PROTOCOL section 8).
    let windows = crate::statusline::recorded(&s).map(|(w, at)| {
        let mut v = serde_json::to_value(w).unwrap_or_default();
        v["at"] = rfc3339_ms(at).into();
        v
    });
    let limit = crate::limit::holding(&shim.config.state_dir).map(|l| {
        json!({
            "window": l.window,
            "resets_at": l.resets_at.map(paliadin_core::subscription::rfc3339_s),
        })
    });
    // What its agent holds now (its own memory and resident), or held when
    // it was put to sleep.
    let held = alive
        .then(|| {
            pane.as_ref()
                .and_then(|p| paliadin_core::process::memory(p.pid))
        })
        .flatten();
    Ok(json!({
        "session": session.as_str(),
        "state": crate::sleep::state(&s, alive),
        "rss_bytes": held.map(|m| m.rss),
        "private_bytes": held.and_then(|m| m.private),
        "freed": crate::sleep::freed(&s),
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
        "windows": windows,
        "usage_limit": limit,
        "refused": s.refused(),
    }))
}
