//! `poll TURN_ID`: collects the late reply of a turn that ended in
//! `timeout` and completes its row (it becomes `ok`). Takes a unique prefix
//! of the id, as `log show` does.

use uuid::Uuid;

use crate::cli::PollArgs;
use crate::cmd::{call_failed, App};

pub fn run(app: &App, a: &PollArgs) -> anyhow::Result<u8> {
    let session = a.session.as_deref().map(super::session_name).transpose()?;
    let mut client = app.client(true)?;
    let id = match (Uuid::parse_str(&a.turn_id), client.store.as_ref()) {
        (Ok(id), _) => id,
        (Err(_), Some(store)) => super::log::resolve(store, &a.turn_id)?,
        (Err(_), None) => {
            return Err(super::Usage(format!("invalid turn id {:?}", a.turn_id)).into())
        }
    };
    match client.poll(id, session) {
        Ok(r) => super::turn::report(&r, a.json),
        Err(e) => call_failed(&format!("poll {id}"), &e, a.json),
    }
}
