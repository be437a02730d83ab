//! Stopping the agent's turn, not only the call: the shim's `cancel` verb
//! (PROTOCOL section 1), sent after a call of a turn was interrupted (Ctrl-C,
//! SIGTERM, SIGHUP) and by `paliadin-cli cancel`. Owns what a cancel's
//! answer means for the turn's record; never decides when to cancel.

use paliadin_core::request::Request;
use paliadin_core::SessionName;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::client::Client;
use crate::failure::Failure;
use crate::transport::{Answer, ErrorCode};

/// How long a cancel may take: one short call (0.03 s over a reused
/// connection, 0.5 s on a fresh one) and the agent's confirmation (0.1 to
/// 0.2 s); the shim itself gives up on a turn that never shows busy in 5 s.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(8);

/// What the shim said of a cancel.
#[derive(Debug)]
pub enum Cancelled {
    /// The agent's turn was stopped (now, or by an earlier cancel), or it
    /// will never be typed.
    Stopped,
    /// It had ended by itself before: its outcome stays for `poll`.
    Finished,
    /// The shim holds no such turn for the session (never typed there).
    NotHeld,
}

impl Client {
    /// Asks the shim to stop `turn` of `session`. Not stopped by the cancel
    /// fd: it runs after a call the fd stopped, which it first empties.
    pub fn cancel(&self, session: &SessionName, turn: Uuid) -> Result<Cancelled, Failure> {
        if let Some(fd) = &self.cancel {
            let mut buf = [0u8; 64];
            while matches!(rustix::io::read(fd, &mut buf), Ok(n) if n > 0) {}
        }
        let req = Request::Cancel {
            session: session.clone(),
            turn,
        };
        let result = self
            .transport
            .call(&req, None, Instant::now() + CANCEL_TIMEOUT, None);
        let answer = self.transport.answer(&result);
        match answer.code {
            None if answer.stdout.starts_with(b"finished") => Ok(Cancelled::Finished),
            None => Ok(Cancelled::Stopped),
            Some(ErrorCode::InvalidInput) => Ok(Cancelled::NotHeld),
            Some(code) => {
                let f = Failure::call(code, &answer.detail).what(format!("cancel {turn}"));
                Err(match answer.hint {
                    Some(h) => f.hint(h),
                    None => f,
                })
            }
        }
    }

    /// After the call of `turn` was interrupted: stops the agent's turn too,
    /// and makes `answer` say what happened to it. `cancelled` when it was
    /// stopped or will never be typed; `interrupted` (with `poll` as the
    /// hint) when it had ended by itself or the cancel failed.
    pub fn cancel_interrupted(&self, session: &SessionName, turn: Uuid, answer: &mut Answer) {
        if answer.code != Some(ErrorCode::Interrupted) {
            return;
        }
        match self.cancel(session, turn) {
            Ok(Cancelled::Stopped | Cancelled::NotHeld) => {
                answer.code = Some(ErrorCode::Cancelled);
                answer.detail = "stopped: the agent's turn was cancelled".into();
                answer.hint = None;
            }
            Ok(Cancelled::Finished) => {
                answer.detail = "stopped after the agent had answered".into();
            }
            Err(f) => {
                answer.detail = format!(
                    "stopped, but the agent's turn could not be cancelled ({})",
                    f.reason()
                );
            }
        }
    }
}
