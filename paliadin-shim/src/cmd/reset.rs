//! `reset <session>`: the session, its agent and its conversation are gone;
//! the next turn starts a fresh one. `ok`, or `none` when there was no such
//! session (no agent, asleep or running, and no conversation): exit 0 both,
//! so a client resetting a user who never chatted gets no error.
//! Undelivered replies stay for `poll`.

use paliadin_core::SessionName;

use crate::agent::{tmux_error, Shim};
use crate::error::Result;
use crate::output::print_or_fail;
use crate::tmux::TmuxError;

pub fn run(shim: &Shim, session: &SessionName) -> Result<()> {
    let s = shim.session_dir(session, false)?;
    match shim.claim_server() {
        Err(e) if e.code == paliadin_core::ExitCode::Failure => return Err(e),
        _ => {}
    }
    let had_pane = match shim.tmux.kill_session(&s.name.key()) {
        Ok(killed) => killed,
        // Without tmux there can be no session: reset is fine then too.
        Err(TmuxError::Missing) => false,
        Err(e) => return Err(tmux_error(e)),
    };
    let had_conversation = s.conversation().is_some() || s.asleep().is_some();
    s.forget_agent();
    s.forget_conversation();
    print_or_fail(if had_pane || had_conversation {
        b"ok\n"
    } else {
        b"none\n"
    })
}
