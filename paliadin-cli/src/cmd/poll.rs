//! `poll TURN_ID`: collects the late reply of a turn that ended in
//! `timeout` and completes its row (it becomes `ok`, with the time it
//! really ended and its events). Takes a unique prefix of the id, as `log
//! show` does; `--wait` asks again every second until the reply is there.
//! A turn still running is a `timeout` failure, its row left as it is.
//! `poll --stale` completes every row left `running` by a client that is
//! gone (PROTOCOL section 6).

use serde_json::Value;

use crate::cli::PollArgs;
use crate::cmd::{out, out_json, Ctx};
use paliadin_cli::client::is_still_running;
use paliadin_cli::store::Status;
use paliadin_cli::{exit, Failure};

pub fn run(ctx: &Ctx<'_>, a: &PollArgs) -> Result<u8, Failure> {
    let Some(turn_id) = a.turn_id.as_deref().filter(|_| !a.stale) else {
        return stale(ctx, a);
    };
    let app = ctx.app()?;
    let session = a.session.as_deref().map(super::session_name).transpose()?;
    let mut client = app.client(Some("the reply"))?;
    let id = super::turn_id_of(client.store.as_ref(), &app.settings.db, turn_id)?;
    let t = match a.wait {
        Some(secs) => {
            let spin = super::stderr_is_tty();
            let wait = std::time::Duration::from_secs(secs);
            super::progress::with_spinner(spin, || client.poll_wait(id, session, wait))
        }
        None => client.poll(id, session),
    }?;
    super::turn::report(&t, a.json)
}

/// `poll --stale`: one line per stale row on stdout (`--json`: an array of
/// the turns' records, a failure's error object in place of its record).
/// Exit 0 when every row was completed (replied or failed) or is still
/// running on the laptop, else the status of the first that was not reached.
fn stale(ctx: &Ctx<'_>, a: &PollArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    let mut client = app.client_only(Some("the replies"))?;
    if client.store.is_none() {
        return Err(Failure::new(
            paliadin_cli::failure::Code::Log,
            "poll --stale needs the turn log",
        ));
    }
    let wait = a.wait.map(std::time::Duration::from_secs);
    let spin = super::stderr_is_tty();
    let done = super::progress::with_spinner(spin, || client.complete_stale(wait));
    let mut status = exit::OK;
    let mut all: Vec<Value> = Vec::new();
    let mut text = String::new();
    for (id, r) in &done {
        let state = match r {
            Ok(t) => {
                all.push(serde_json::to_value(t).unwrap_or_default());
                "ok".to_owned()
            }
            Err(f) => {
                all.push(f.json());
                // A turn that ended in an error is completed all the same.
                let completed = f
                    .turn
                    .as_ref()
                    .is_some_and(|t| t.row.outcome.status == Status::Error);
                if !is_still_running(f) && !completed && status == exit::OK {
                    status = f.exit_status();
                }
                f.reason()
            }
        };
        text.push_str(&format!("{id} {state}\n"));
    }
    if a.json {
        out_json(&all)?;
    } else {
        out(&text)?;
    }
    Ok(status)
}
