//! `approve TURN_ID REQUEST allow|deny`: answers a running turn's request to
//! allow a tool call (the laptop's approve mode, PROTOCOL section 7's
//! `permission_request`), e.g. from another shell while `turn --events`
//! shows it. Takes a unique prefix of the turn id, as `poll` does; the
//! session comes from the turn's row (or `--session`).

use uuid::Uuid;

use crate::cli::{Answer, ApproveArgs};
use crate::cmd::{out, Ctx};
use paliadin_cli::{exit, Failure};

pub fn run(ctx: &Ctx<'_>, a: &ApproveArgs) -> Result<u8, Failure> {
    let request = paliadin_core::request::parse_request_id(&a.request)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let app = ctx.app()?;
    let client = app.client(None)?;
    // The log names the turn of a prefix and its session; a full id with
    // `--session` needs none.
    let store = match (Uuid::parse_str(&a.turn_id), a.session.is_some()) {
        (Ok(_), true) => None,
        _ => Some(app.existing_store()),
    };
    let id = match (Uuid::parse_str(&a.turn_id), store.as_ref()) {
        (Ok(id), _) => id,
        (Err(_), Some(Ok(store))) => super::log::resolve(store, &a.turn_id, &app.settings.db)?,
        (Err(_), Some(Err(f))) => {
            return Err(Failure::usage(format!(
                "turn {:?} is no full id and the log cannot name it ({})",
                a.turn_id,
                f.line()
            )))
        }
        (Err(_), None) => return Err(Failure::usage(format!("invalid turn id {:?}", a.turn_id))),
    };
    let logged = match store {
        Some(Ok(store)) => store.turn(id)?.map(|t| t.row.turn.session),
        _ => None,
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
    let allow = a.answer == Answer::Allow;
    client.approve(&session, id, request, allow)?;
    let word = if allow { "allowed" } else { "denied" };
    out(&format!("{word} request {request} of turn {id}\n"))?;
    Ok(exit::OK)
}
