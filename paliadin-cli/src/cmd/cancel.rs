//! `cancel TURN_ID`: stops a running turn on the laptop (the shim's
//! `cancel`), from another shell than the one that waits for it, or for a
//! turn left `pending` by a timeout. Takes a unique prefix of the id, as
//! `poll` does; the session comes from the log (or `--session`). A turn
//! stopped is completed in the log as `cancelled` (its waiting `turn` or
//! `chat` says so too, exit 130).

use crate::cli::CancelArgs;
use crate::cmd::{out, Ctx};
use paliadin_cli::cancel::Cancelled;
use paliadin_cli::{exit, Failure};

pub fn run(ctx: &Ctx<'_>, a: &CancelArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    let mut client = app.client(Some("the turn"))?;
    let (id, session) = super::turn_and_session(
        client.store.as_ref(),
        &app.settings.db,
        &a.turn_id,
        a.session.as_deref(),
    )?;
    match client.cancel(&session, id)? {
        Cancelled::NotHeld => Err(Failure::usage(format!(
            "the laptop holds no turn {id} for session {}: nothing was stopped",
            session.as_str()
        ))),
        done => {
            // Complete the row from what the laptop now says (a row `ok`
            // already, or one another client completes, stays as it is).
            if let Some(t) = client
                .store
                .as_ref()
                .and_then(|s| s.turn(id).ok().flatten())
            {
                if t.row.outcome.status != paliadin_cli::store::Status::Ok {
                    let _ = client.poll(id, Some(session.clone()));
                }
            }
            let word = match done {
                Cancelled::Finished => "finished",
                _ => "cancelled",
            };
            out(&format!("{word} {id}\n"))?;
            Ok(exit::OK)
        }
    }
}
