//! paliadin-cli as a library: run turns against `paliadin-shim` (over ssh or
//! locally) and keep every turn in SQLite. The [`client::Client`] is the
//! entry point for Rust callers; the binary is a thin layer of commands
//! over it. A turn is one record ([`store::Turn`]); a failure one type
//! ([`failure::Failure`]).

pub mod cancel;
pub mod client;
pub mod config;
pub mod exit;
pub mod failure;
pub mod localtime;
pub mod outcome;
pub mod ssh;
pub mod store;
pub mod transport;

pub use client::{Client, TurnRequest};
pub use failure::Failure;
pub use store::{Turn, TurnRow};
