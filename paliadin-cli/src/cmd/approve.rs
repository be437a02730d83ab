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
    let (id, session) = super::turn_and_session(
        client.store.as_ref(),
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
