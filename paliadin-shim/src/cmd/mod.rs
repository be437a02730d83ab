//! One file per verb. Each `run` takes the parsed request's parts and writes
//! its data to stdout; failures come back as [`crate::error::ShimError`].

pub mod attach;
pub mod docs;
pub mod health;
pub mod poll;
pub mod reset;
pub mod run_turn;
pub mod sessions;
pub mod setup;
pub mod status;

use std::io::Write;

/// Writes `data` to stdout and flushes; a failure means nothing was delivered.
pub fn print(data: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(data)?;
    out.flush()
}
