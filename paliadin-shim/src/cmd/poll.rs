//! `poll <session> <turn-id>`: the reply of a turn that ran past its wait,
//! once it has arrived; 124 while it is pending; 2 for a turn the shim does
//! not hold. Never waits and never types.

use paliadin_core::{ExitCode, SessionName};
use uuid::Uuid;

use crate::agent::Shim;
use crate::error::{Result, ShimError};
use crate::outcome::settle;
use crate::output::Output;
use crate::state::TurnMark;

pub fn run(shim: &Shim, session: &SessionName, turn: Uuid) -> Result<()> {
    let s = shim.session_dir(session, false)?;
    s.sweep();
    let t = s.turn(turn);
    if !t.exists() {
        return Err(ShimError::invalid(format!(
            "turn {turn} is not held for session {session}"
        )));
    }
    match settle(shim, &s, &t, &Output::Raw)? {
        Some(done) => done,
        // Never typed: its request was stopped before it typed anything
        // (and none is typing it now).
        None if !t.held() && !s.busy() => Err(ShimError::unavailable(format!(
            "turn {turn} was never typed (its request was stopped first); send it again"
        ))),
        // Over without a reply: the agent is gone or went idle.
        None if t.has(TurnMark::Idle) || crate::agent::recorded_agent(&s).is_none() => {
            Err(ShimError::unavailable(format!(
                "turn {turn} ended without a reply (the agent exited, was reset or went idle)"
            )))
        }
        None => Err(
            ShimError::new(ExitCode::Timeout, format!("turn {turn} is still pending"))
                .with_pane(shim.tail(&s)),
        ),
    }
}
