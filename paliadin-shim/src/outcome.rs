//! A turn's outcome, from what its directory says: the reply (delivered,
//! or refused and then a failure), the agent's failure, or a person awaited.
//! Shared by `run-turn` and `poll`; never waits, never types.

use paliadin_core::ExitCode;

use crate::agent::Shim;
use crate::error::{Result, ShimError};
use crate::output::Output;
use crate::state::{SessionDir, TurnDir, TurnMark, TurnState};

/// The turn's outcome if it has one: `Some(Ok)` once the reply is printed.
/// A reply stays until the turn expires, so a retry or a `poll` after a lost
/// connection prints the same bytes again.
pub fn settle(
    shim: &Shim,
    s: &SessionDir,
    t: &TurnDir,
    out: &Output,
) -> Result<Option<Result<()>>> {
    let state = t.state();
    // A rate limit is told apart first (a usage limit is exit 78).
    if let Some(e) = crate::limit::settle(shim, s, t, &state) {
        return Ok(Some(Err(e)));
    }
    Ok(match state {
        TurnState::Replied => match t.reply() {
            Ok(Some(reply)) => Some(out.deliver(t, &reply)),
            // Gone between the look and the read: nothing yet.
            Ok(None) => None,
            Err(e) => {
                let why = format!("the agent's reply was refused: {e}");
                let _ = t.mark(TurnMark::Failed, &why);
                Some(Err(ShimError::new(ExitCode::AgentError, why)))
            }
        },
        TurnState::Failed(e) => Some(Err(ShimError::new(
            ExitCode::AgentError,
            format!("the agent reported a failure: {e}"),
        ))),
        TurnState::Blocked(m) => Some(Err(ShimError::new(
            ExitCode::Blocked,
            format!(
                "the pane waits on a person ({m}); answer it with: paliadin-shim attach {}",
                s.name
            ),
        )
        .with_pane(shim.tail(s)))),
        TurnState::Cancelled(how) => Some(Err(ShimError::new(
            ExitCode::Cancelled,
            format!("the turn was cancelled ({how})"),
        ))),
        TurnState::UsageLimit(_) | TurnState::RateLimited(_) | TurnState::Pending => None,
    })
}
