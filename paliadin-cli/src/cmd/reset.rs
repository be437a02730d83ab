//! `reset`: ends the session and its agent on the laptop.

use crate::cli::ResetArgs;
use crate::cmd::{call_failed, out, App};
use crate::exit;

pub fn run(app: &App, a: &ResetArgs) -> anyhow::Result<u8> {
    let session = app.session(&a.target, "cli")?;
    let client = app.client(None)?;
    match client.reset(&session) {
        Ok(()) => {
            out(&format!("reset {session}\n"))?;
            Ok(exit::OK)
        }
        Err(e) => call_failed(&format!("reset {session}"), &e, false),
    }
}
