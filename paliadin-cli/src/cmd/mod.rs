//! One file per subcommand; each `run` returns the exit status. Shared here:
//! the [`App`] that turns flags into settings, a client and a store, and the
//! small output helpers (stdout for data, stderr for talk).

pub mod chat;
pub mod docs;
pub mod doctor;
pub mod health;
pub mod log;
pub mod poll;
pub mod progress;
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
            settings: Settings::load(&o).map_err(|e| ConfigError(one_line(&format!("{e:#}"))))?,
        })
    }

    /// Opens the turn log.
    pub fn store(&self) -> anyhow::Result<Store> {
        Store::open(&self.settings.db)
            .with_context(|| format!("cannot open the turn log {}", self.settings.db.display()))
    }

    /// A client stopped by Ctrl-C/SIGTERM; with the log when `logged` names
    /// what it records. A log that cannot be opened never stops the call:
    /// a warning says what will not be recorded, and the call goes on.
    /// With the log, rows left `running` by a client that is gone are
    /// completed first ([`Client::complete_stale`]), one line each on stderr.
    pub fn client(&self, logged: Option<&str>) -> anyhow::Result<Client> {
        let mut client = self.client_only(logged)?;
        for (id, r) in client.complete_stale(None) {
            eprintln!("paliadin-cli: {}", stale_line(id, &r));
        }
        Ok(client)
    }

    /// [`App::client`] without completing stale rows (`poll --stale` does
    /// that itself).
    pub fn client_only(&self, logged: Option<&str>) -> anyhow::Result<Client> {
        let transport = self.transport()?;
        let store = match logged {
            None => None,
            Some(what) => match self.store() {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!(
                        "paliadin-cli: warning: {what} will not be recorded: {}",
                        one_line(&format!("{e:#}"))
                    );
                    None
                }
            },
        };
        Ok(Client {
            transport,
            store,
            timeout: self.settings.timeout,
            cancel: Some(crate::signals::cancel_pipe().context("cannot install signal handlers")?),
        })
    }

    /// How calls reach the shim; a missing host is a [`ConfigError`].
    pub fn transport(&self) -> anyhow::Result<crate::transport::Transport> {
        let t = self
            .settings
            .transport()
            .map_err(|e| ConfigError(one_line(&format!("{e:#}"))))?;
        // Named here, before ssh would say only "Permission denied".
        if matches!(t, crate::transport::Transport::Ssh(_)) {
            for (flag, file) in [
                ("--key", &self.settings.key),
                ("--known-hosts", &self.settings.known_hosts),
            ] {
                if let Some(f) = file.as_ref().filter(|f| !f.exists()) {
                    return Err(ConfigError(format!(
                        "{flag} file {} does not exist: check the path (or run install/server.sh)",
                        f.display()
                    ))
                    .into());
                }
            }
        }
        Ok(t)
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

/// One line on a stale row's completion ([`Client::complete_stale`]).
pub fn stale_line(id: uuid::Uuid, r: &Result<crate::client::TurnResult, CallError>) -> String {
    let what = format!("turn {id}, left running by a client that is gone");
    match r {
        Ok(t) if t.still_running => format!(
            "{what}: still running on the laptop; collect its reply with: paliadin-cli poll {id}"
        ),
        Ok(t) => match t.error_code {
            None => {
                format!("{what}: completed with the laptop's reply (paliadin-cli log show {id})")
            }
            Some(c) => format!(
                "{what}: {c}: {}",
                t.error_detail.as_deref().unwrap_or_default()
            ),
        },
        Err(e) => format!(
            "{what}: {}: {}; collect its reply later with: paliadin-cli poll {id}",
            e.code, e.detail
        ),
    }
}

/// Wrong usage: printed like any error, but exit 2 (`invalid_input`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A broken or missing configuration: exit 1 (`config_error`), and for
/// `health` the Nagios UNKNOWN.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Something asked for is not there (a turn id): exit 1 (`not_found`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// The `error_code` and exit status of a command that failed before or
/// outside a call to the shim. Besides the codes of PROTOCOL section 6:
/// `config_error`, `log_error` (the turn log), `not_found` and `failure`.
pub fn classify(e: &anyhow::Error) -> (&'static str, u8) {
    if e.downcast_ref::<Usage>().is_some() {
        return ("invalid_input", crate::exit::USAGE);
    }
    if e.downcast_ref::<NotFound>().is_some() {
        return ("not_found", crate::exit::FAILURE);
    }
    if e.downcast_ref::<ConfigError>().is_some() {
        return ("config_error", crate::exit::FAILURE);
    }
    if e.chain()
        .any(|c| c.downcast_ref::<crate::store::StoreError>().is_some())
    {
        return ("log_error", crate::exit::FAILURE);
    }
    ("failure", crate::exit::FAILURE)
}

/// The one JSON object a `--json` command prints when it fails.
pub fn json_error(code: &str, error: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({ "error_code": code, "error": one_line(error) })
    )
}

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

/// The one-line report of a failed call (and with `json` its JSON object on
/// stdout), and its exit status.
pub fn call_failed(what: &str, e: &CallError, json: bool) -> anyhow::Result<u8> {
    eprintln!("paliadin-cli: {what}: {}: {}", e.code, e.detail);
    if json {
        out(&json_error(e.code.as_str(), &e.detail))?;
    }
    Ok(crate::exit::of(e.code))
}

/// Whether stderr is a terminal (progress and colour only then).
pub fn stderr_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stderr())
}

/// Whether colour is allowed on stderr: a terminal there and no NO_COLOR.
pub fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stderr_is_tty()
}

/// Whether colour is allowed: a terminal on stdout and no NO_COLOR.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && rustix::termios::isatty(rustix::stdio::stdout())
}

/// The width to fit tables to: the terminal's when stdout is one (`COLUMNS`
/// wins, as for `ls`), `None` when piped (nothing is cut).
pub fn stdout_width() -> Option<usize> {
    let fd = rustix::stdio::stdout();
    if !rustix::termios::isatty(fd) {
        return None;
    }
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(c);
    }
    rustix::termios::tcgetwinsize(fd)
        .ok()
        .map(|w| w.ws_col as usize)
        .filter(|&w| w > 0)
}
