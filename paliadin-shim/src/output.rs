//! stdout, the shim's data channel: everything a verb prints goes through
//! [`print`] (written whole and flushed, so a failure means nothing was
//! delivered), and a turn's reply is delivered raw or as the last line of a
//! progress stream ([`Output`]). Never decides what a turn's outcome is
//! (`outcome` does) and never writes to stderr (`error` does).

use std::io::Write as _;

use crate::error::{Result, ShimError};
use crate::state::TurnDir;

/// Writes `data` to stdout and flushes; a failure means nothing was delivered.
pub fn print(data: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(data)?;
    out.flush()
}

/// [`print`], its failure as the shim's.
pub fn print_or_fail(data: &[u8]) -> Result<()> {
    print(data).map_err(|e| ShimError::failure(e.to_string()))
}

/// Where a turn's outcome goes.
pub enum Output {
    /// The reply, byte for byte (`run-turn`, `poll`).
    Raw,
    /// Events as JSON lines while the turn runs, the reply as the last line
    /// (`run-turn-events`); `from` is how much of the events file was sent.
    Events { from: u64 },
}

impl Output {
    /// Sends the events recorded since the last call (events mode only).
    pub fn flush_events(&mut self, t: &TurnDir) -> Result<()> {
        if let Output::Events { from } = self {
            let (raw, next) = t.events_from(*from);
            // Only lines the agent's hooks signed, parsed and written anew.
            let lines = crate::hookauth::stream(t, &raw);
            if !lines.is_empty() {
                print_or_fail(&lines)?;
            }
            *from = next;
        }
        Ok(())
    }

    /// Prints the reply as this output wants it, and marks it delivered.
    pub fn deliver(&self, t: &TurnDir, reply: &[u8]) -> Result<()> {
        let line;
        let bytes = match self {
            Output::Raw => reply,
            Output::Events { .. } => {
                let e = paliadin_core::event::Event {
                    text: Some(String::from_utf8_lossy(reply).into_owned()),
                    ..paliadin_core::event::Event::new(
                        paliadin_core::event::Kind::Reply,
                        paliadin_core::timefmt::rfc3339_ms(paliadin_core::timefmt::now_ms()),
                    )
                };
                let json = serde_json::to_string(&e).unwrap_or_default();
                line = format!("{}\n", paliadin_core::text::json_safe(json));
                line.as_bytes()
            }
        };
        print(bytes).map_err(|e| {
            ShimError::failure(format!(
                "could not write the reply (it stays for poll): {e}"
            ))
        })?;
        t.delivered();
        Ok(())
    }
}
