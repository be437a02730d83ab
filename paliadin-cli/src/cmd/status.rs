//! `status`: a session's state on the laptop, as the shim reports it.

use crate::cli::StatusArgs;
use crate::cmd::{call_failed, out, App};
use crate::exit;

pub fn run(app: &App, a: &StatusArgs) -> anyhow::Result<u8> {
    let session = app.session(&a.target, "cli")?;
    let client = app.client(None)?;
    let v = match client.status(&session) {
        Ok(v) => v,
        Err(e) => return call_failed(&format!("status {session}"), &e, a.json),
    };
    if a.json {
        out(&format!("{v}\n"))?;
    } else {
        out(&super::sessions::describe(&v))?;
    }
    Ok(exit::OK)
}
