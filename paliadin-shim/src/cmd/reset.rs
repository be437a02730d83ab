//! `reset <session>`: the session and its agent are gone; the next turn
//! starts a fresh one. `ok` also when there was none. Undelivered replies stay
//! for `poll`.

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
    match shim.tmux.kill_session(&s.name.key()) {
        // Without tmux there can be no session: reset is `ok` then too.
        Ok(_) | Err(TmuxError::Missing) => {}
        Err(e) => return Err(tmux_error(e)),
    }
    s.forget_agent();
    print_or_fail(b"ok\n")
}
