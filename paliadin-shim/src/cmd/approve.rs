//! `approve <session> <turn-id> <request-id> allow|deny`: the answer to a
//! pending permission request of the session's current turn, in approve
//! mode ([`crate::approve`]). `ok`, or exit 2 when that request is not
//! pending (another turn or session, never asked, answered, timed out).

use paliadin_core::SessionName;
use uuid::Uuid;

use crate::agent::Shim;
use crate::error::Result;

pub fn run(
    shim: &Shim,
    session: &SessionName,
    turn: Uuid,
    request: u32,
    allow: bool,
) -> Result<()> {
    crate::approve::answer(shim, session, turn, request, allow)
}
