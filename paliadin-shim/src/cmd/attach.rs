//! `attach <session>` (local only): puts the operator's terminal on the
//! session's pane, to answer a prompt or watch. Replaces this process with
//! tmux; never reachable over ssh.

use paliadin_core::SessionName;
use std::os::unix::process::CommandExt;

use crate::agent::Shim;
use crate::error::{Result, ShimError};

pub fn run(shim: &Shim, session: &SessionName) -> Result<()> {
    let s = shim.session_dir(session, false)?;
    if shim
        .tmux
        .pane(&s.name.key())
        .map_err(crate::agent::tmux_error)?
        .is_none()
    {
        return Err(ShimError::unavailable(format!(
            "no session {session}: start it with: paliadin-shim health {session}"
        )));
    }
    let e = shim.tmux.attach_command(&s.name.key()).exec();
    Err(ShimError::unavailable(format!("could not run tmux: {e}")))
}
