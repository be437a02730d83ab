//! `poll TURN_ID`: collects the late reply of a turn that ended in
//! `timeout` and completes its row (it becomes `ok`).

use crate::cli::PollArgs;
use crate::cmd::{call_failed, App};

pub fn run(app: &App, a: &PollArgs) -> anyhow::Result<u8> {
    let session = a.session.as_deref().map(super::session_name).transpose()?;
    let mut client = app.client(true)?;
    match client.poll(a.turn_id, session) {
        Ok(r) => super::turn::report(&r, a.json),
        Err(e) => Ok(call_failed(&format!("poll {}", a.turn_id), &e)),
    }
}
