//! `status`: a session's state on the laptop, as the shim reports it.

use crate::cli::StatusArgs;
use crate::cmd::{out, out_json, Ctx};
use paliadin_cli::{exit, Failure};

pub fn run(ctx: &Ctx<'_>, a: &StatusArgs) -> Result<u8, Failure> {
    let app = ctx.app()?;
    let session = app.session(&a.target, "cli")?;
    let v = app.client(None)?.status(&session)?;
    if a.json {
        out_json(&v)?;
    } else {
        out(&super::sessions::describe(&v))?;
    }
    Ok(exit::OK)
}
