//! `cancel TURN_ID`: stops a running turn on the laptop (the shim's
//! `cancel`), from another shell than the one that waits for it, or for a
//! turn left `pending` by a timeout. Takes a unique prefix of the id, as
//! `poll` does; the session comes from the log (or `--session`). A turn
//! stopped is completed in the log as `cancelled` (its waiting `turn` or
//! `chat` says so too, exit 130).

use uuid::Uuid;

use crate::cli::CancelArgs;
use crate::cmd::{out, Ctx};
use paliadin_cli::cancel::Cancelled;
use paliadin_cli::{exit, Failure};

pub fn run(ctx: &Ctx<'_>, a: &CancelArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    let mut client = app.client(Some("the turn"))?;
    let id = match (Uuid::parse_str(&a.turn_id), client.store.as_ref()) {
        (Ok(id), _) => id,
        (Err(_), Some(store)) => super::log::resolve(store, &a.turn_id, &app.settings.db)?,
        (Err(_), None) => return Err(Failure::usage(format!("invalid turn id {:?}", a.turn_id))),
    };
    let logged = match client.store.as_ref() {
        Some(s) => s.turn(id)?.map(|t| t.row.turn.session),
        None => None,
    };
    let session = match (a.session.as_deref(), logged) {
        (Some(s), _) => super::session_name(s)?,
        (None, Some(s)) => super::session_name(&s)?,
        (None, None) => {
            return Err(Failure::usage(format!(
                "turn {id} is not in the log: give its --session"
            )))
        }
    };
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
