//! One file per subcommand; each `run` returns the exit status. Shared here:
//! the [`App`] that turns flags into settings, a client and a store, and the
//! small output helpers (stdout for data, stderr for talk).

pub mod chat;
pub mod health;
pub mod log;
pub mod poll;
pub mod reset;
pub mod sessions;
pub mod status;
pub mod turn;

use anyhow::Context as _;
use paliadin_core::SessionName;
use std::io::Write;

use crate::cli::{Global, Target};
use crate::client::{CallError, Client};
use crate::config::{Overrides, Settings};
use crate::store::Store;

/// What every command starts from.
pub struct App {
    pub settings: Settings,
}

impl App {
    pub fn new(g: &Global, timeout_secs: Option<u64>) -> anyhow::Result<App> {
        let o = Overrides {
            config: g.config.clone(),
            host: g.host.clone(),
            port: g.port,
            ssh_user: g.ssh_user.clone(),
            key: g.key.clone(),
            known_hosts: g.known_hosts.clone(),
            session_prefix: g.session_prefix.clone(),
            db: g.db.clone(),
            transport: g.transport.clone(),
            shim: g.shim.clone(),
            no_mux: g.no_mux,
            timeout_secs,
        };
        Ok(App {
            settings: Settings::load(&o)?,
        })
    }

    /// Opens the turn log.
    pub fn store(&self) -> anyhow::Result<Store> {
        Store::open(&self.settings.db)
            .with_context(|| format!("cannot open the turn log {}", self.settings.db.display()))
    }

    /// A client; with the log when `logged`, and stopped by Ctrl-C/SIGTERM.
    pub fn client(&self, logged: bool) -> anyhow::Result<Client> {
        let store = if logged { Some(self.store()?) } else { None };
        Ok(Client {
            transport: self.settings.transport()?,
            store,
            timeout: self.settings.timeout,
            cancel: Some(crate::signals::cancel_pipe().context("cannot install signal handlers")?),
        })
    }

    /// The session a [`Target`] names; `fallback` when it names none.
    pub fn session(&self, t: &Target, fallback: &str) -> anyhow::Result<SessionName> {
        let prefix = &self.settings.session_prefix;
        let name = match (&t.user, &t.session) {
            (Some(u), _) => {
                return SessionName::for_user(prefix, u)
                    .map_err(|e| Usage(format!("invalid session prefix {prefix:?}: {e}")).into())
            }
            (None, Some(s)) => s.clone(),
            (None, None) => format!("{prefix}-{fallback}"),
        };
        session_name(&name)
    }
}

/// Wrong usage: printed like any error, but exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A session name from the command line; a bad one is a usage error.
pub fn session_name(name: &str) -> anyhow::Result<SessionName> {
    SessionName::new(name).map_err(|e| Usage(format!("invalid session name {name:?}: {e}")).into())
}

/// Several lines (an error's causes) as one.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes to stdout; a closed pipe is not an error worth a message.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|_| o.flush())
        .context("cannot write to stdout")
}

/// The one-line report of a failed call, and its exit status.
pub fn call_failed(what: &str, e: &CallError) -> u8 {
    eprintln!("paliadin-cli: {what}: {}: {}", e.code, e.detail);
    crate::exit::of(e.code)
}

/// Whether stderr is a terminal (progress and colour only then).
pub fn stderr_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stderr())
}

/// Whether colour is allowed: a terminal on stdout and no NO_COLOR.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && rustix::termios::isatty(rustix::stdio::stdout())
}
