//! The laptop side of paliadin as a library: the modules the
//! `paliadin-shim` binary is made of, so that the benchmarks (and tests) use
//! the very code the shim runs (its tmux command chain, its state layout)
//! instead of a copy. `main.rs` only reads the request and picks the verb.
//! Nothing here is a stable API for anyone else.

pub mod agent;
pub mod approve;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod dirfd;
pub mod error;
pub mod hookauth;
pub mod hooks;
pub mod limit;
pub mod outcome;
pub mod output;
pub mod policy;
pub mod sandbox;
pub mod setup;
pub mod sleep;
pub mod state;
pub mod status;
pub mod statusline;
pub mod tmux;
pub mod usage;
pub mod wait;
