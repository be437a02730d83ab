//! `reset <session>`: the session and its agent are gone; the next turn
//! starts a fresh one. `ok` also when there was none. Undelivered replies stay
//! for `poll`.

use paliadin_core::SessionName;

use crate::agent::{tmux_error, Shim};
use crate::error::{Result, ShimError};

pub fn run(shim: &Shim, session: &SessionName) -> Result<()> {
    let s = shim.session_dir(session);
    shim.tmux.kill_session(&s.name.key()).map_err(tmux_error)?;
    for f in ["ready", "last_prompt", "current", "agent.json"] {
        s.remove(f);
    }
    super::print(b"ok\n").map_err(|e| ShimError::failure(e.to_string()))
}
