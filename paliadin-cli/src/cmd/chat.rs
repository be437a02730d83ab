//! `chat`: manual conversations in a terminal. (Filled in by the chat work.)

use crate::cli::ChatArgs;
use crate::cmd::App;

pub fn run(_app: &App, _a: &ChatArgs) -> anyhow::Result<u8> {
    anyhow::bail!("chat is not built yet")
}
