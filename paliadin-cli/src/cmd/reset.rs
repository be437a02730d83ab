//! `reset`: ends the session and its agent on the laptop.

use crate::cli::ResetArgs;
use crate::cmd::{out, Ctx};
use paliadin_cli::{exit, Failure};

pub fn run(ctx: &Ctx<'_>, a: &ResetArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    let session = app.session(&a.target, "cli")?;
    if app.client(None)?.reset(&session)? {
        out(&format!("reset {session}\n"))?;
    } else {
        out(&format!("reset {session}: there was no such session\n"))?;
    }
    Ok(exit::OK)
}
