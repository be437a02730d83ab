//! `approve TURN_ID REQUEST allow|deny`: answers a running turn's request to
//! allow a tool call (the laptop's approve mode, PROTOCOL section 7's
//! `permission_request`), e.g. from another shell while `turn --events`
//! shows it. Takes a unique prefix of the turn id, as `poll` does; the
//! session comes from the turn's row (or `--session`).

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
    let store = match (uuid::Uuid::parse_str(&a.turn_id), a.session.is_some()) {
        (Ok(_), true) => None,
        _ => Some(app.existing_store().map_err(|f| {
            Failure::usage(format!(
                "the log cannot name turn {:?} or its session ({})",
                a.turn_id,
                f.line()
            ))
        })?),
    };
    let (id, session) = super::turn_and_session(
        store.as_ref(),
        &app.settings.db,
        &a.turn_id,
        a.session.as_deref(),
    )?;
    let allow = a.answer == Answer::Allow;
    client.approve(&session, id, request, allow)?;
    let word = if allow { "allowed" } else { "denied" };
    out(&format!("{word} request {request} of turn {id}\n"))?;
    Ok(exit::OK)
}
