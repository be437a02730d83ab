//! One file per verb. Each `run` takes the parsed request's parts and writes
//! its data to stdout (through [`crate::output`]); failures come back as
//! [`crate::error::ShimError`]. No command imports another: what two share
//! lives below `cmd/`.

pub mod approve;
pub mod attach;
pub mod cancel;
pub mod docs;
pub mod health;
pub mod poll;
pub mod reset;
pub mod run_turn;
pub mod sessions;
pub mod setup;
pub mod status;
