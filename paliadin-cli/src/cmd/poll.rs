//! `poll TURN_ID`: collects the late reply of a turn that ended in
//! `timeout` and completes its row (it becomes `ok`). Takes a unique prefix
//! of the id, as `log show` does; `--wait` asks again every second until
//! the reply is there. A turn still running is said to be, and its row is
//! left as it is.

use uuid::Uuid;

use crate::cli::PollArgs;
use crate::cmd::{call_failed, App};

pub fn run(app: &App, a: &PollArgs) -> anyhow::Result<u8> {
    let session = a.session.as_deref().map(super::session_name).transpose()?;
    let mut client = app.client(Some("the reply"))?;
    let id = match (Uuid::parse_str(&a.turn_id), client.store.as_ref()) {
        (Ok(id), _) => id,
        (Err(_), Some(store)) => super::log::resolve(store, &a.turn_id)?,
        (Err(_), None) => {
            return Err(super::Usage(format!("invalid turn id {:?}", a.turn_id)).into())
        }
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
