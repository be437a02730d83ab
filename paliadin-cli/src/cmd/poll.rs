//! `poll TURN_ID`: collects the late reply of a turn that ended in
//! `timeout` and completes its row (it becomes `ok`). Takes a unique prefix
//! of the id, as `log show` does; `--wait` asks again every second until
//! the reply is there. A turn still running is said to be, and its row is
//! left as it is. `poll --stale` completes every row left `running` by a
//! client that is gone (PROTOCOL section 6).

use uuid::Uuid;

use crate::cli::PollArgs;
use crate::cmd::{call_failed, App};

pub fn run(app: &App, a: &PollArgs) -> anyhow::Result<u8> {
    let Some(turn_id) = a.turn_id.as_deref().filter(|_| !a.stale) else {
        return stale(app, a);
    };
    let session = a.session.as_deref().map(super::session_name).transpose()?;
    let mut client = app.client(Some("the reply"))?;
    let id = match (Uuid::parse_str(turn_id), client.store.as_ref()) {
        (Ok(id), _) => id,
        (Err(_), Some(store)) => super::log::resolve(store, turn_id)?,
        (Err(_), None) => return Err(super::Usage(format!("invalid turn id {turn_id:?}")).into()),
    };
    let result = match a.wait {
        Some(secs) => {
            let spin = super::stderr_is_tty();
            let wait = std::time::Duration::from_secs(secs);
            super::progress::with_spinner(spin, || client.poll_wait(id, session, wait))
        }
        None => client.poll(id, session),
    };
    match result {
        Ok(r) => super::turn::report(&r, a.json),
        Err(e) => call_failed(&format!("poll {id}"), &e, a.json),
    }
}

/// `poll --stale`: one line per stale row on stdout (`--json`: one object
/// each, the turn's result or `{turn_id, error_code, error}`). Exit 0 when
/// every row was completed or is still running on the laptop, else the
/// status of the first failure.
fn stale(app: &App, a: &PollArgs) -> anyhow::Result<u8> {
    let mut client = app.client_only(Some("the replies"))?;
    if client.store.is_none() {
        return Err(anyhow::anyhow!("poll --stale needs the turn log"));
    }
    let wait = a.wait.map(std::time::Duration::from_secs);
    let spin = super::stderr_is_tty();
    let done = super::progress::with_spinner(spin, || client.complete_stale(wait));
    let mut status = crate::exit::OK;
    for (id, r) in &done {
        if a.json {
            let v = match r {
                Ok(t) => serde_json::to_value(t)?,
                Err(e) => serde_json::json!({
                    "turn_id": id.to_string(), "error_code": e.code, "error": e.detail,
                }),
            };
            super::out(&format!("{v}\n"))?;
        } else {
            let state = match r {
                Ok(t) if t.still_running => "pending: still running on the laptop".to_owned(),
                Ok(t) => match t.error_code {
                    None => "ok".to_owned(),
                    Some(c) => format!("{c}: {}", t.error_detail.as_deref().unwrap_or_default()),
                },
                Err(e) => format!("{}: {}", e.code, e.detail),
            };
            super::out(&format!("{id} {state}\n"))?;
        }
        if let Err(e) = r {
            if status == crate::exit::OK {
                status = crate::exit::of(e.code);
            }
        }
    }
    Ok(status)
}
