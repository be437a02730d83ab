//! The parts of paliadin that the shim (laptop) and the client (server) must
//! agree on, written once: the request grammar of PROTOCOL section 1, the
//! session-name rule, the exit codes, the envelope of section 3, the reply
//! trailer and chip rules of section 4, and the small helpers both binaries
//! need (running a child program under a deadline, private atomic files, and
//! [`process`], the one module that differs between Linux and macOS).
//!
//! This crate must never touch tmux, ssh or SQLite itself: it is pure rules
//! plus the process and file plumbing those rules need.

pub mod child;
pub mod dirs;
pub mod envelope;
pub mod error_code;
pub mod event;
pub mod exit;
pub mod fsutil;
pub mod process;
pub mod reply;
pub mod request;
pub mod session;
pub mod subscription;
pub mod text;
pub mod timefmt;

pub use exit::ExitCode;
pub use request::{MessageSource, Request, RequestError};
pub use session::SessionName;
