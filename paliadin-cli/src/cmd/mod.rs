//! One file per subcommand; each `run` returns the exit status or the one
//! [`Failure`] that `main` prints. Shared here: the [`Ctx`] every command
//! starts from (the parsed line; the settings only for those that ask), the
//! [`App`] that turns settings into a client and a store, and the small
//! output helpers (stdout for data, stderr for talk, JSON through one
//! writer).

pub mod approve;
pub mod cancel;
pub mod chat;
pub mod config;
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
pub mod version;

use paliadin_core::SessionName;
use std::io::Write;

use crate::cli::{Command, Global, Target};
use paliadin_cli::client::Client;
use paliadin_cli::config::{Layers, Settings};
use paliadin_cli::store::{Store, Turn};
use paliadin_cli::Failure;

/// What every command starts from: the parsed command line.
pub struct Ctx<'a> {
    pub global: &'a Global,
    /// The matches of the subcommand that runs.
    pub matches: &'a clap::ArgMatches,
}

impl Ctx<'_> {
    /// The settings' layers: the flags given, the environment, the file.
    pub fn layers(&self) -> Result<Layers, Failure> {
        let flags = paliadin_cli::config::flag_layer(self.matches);
        Layers::read(flags, self.global.config.as_deref())
    }

    /// The settings in force, for the commands that use them.
    pub fn app(&self) -> Result<App, Failure> {
        let layers = self.layers()?;
        Ok(App {
            settings: layers.settings(),
            layers,
        })
    }
}

/// Runs the command.
pub fn run(ctx: &Ctx<'_>, command: &Command) -> Result<u8, Failure> {
    match command {
        Command::Turn(a) => turn::run(ctx, a),
        Command::Chat(a) => chat::run(ctx, a),
        Command::Health(a) => health::run(ctx, a),
        Command::Reset(a) => reset::run(ctx, a),
        Command::Poll(a) => poll::run(ctx, a),
        Command::Approve(a) => approve::run(ctx, a),
        Command::Cancel(a) => cancel::run(ctx, a),
        Command::Status(a) => status::run(ctx, a),
        Command::Sessions(a) => sessions::run(ctx, a),
        Command::Log(a) => log::run(ctx, a),
        Command::Doctor(a) => doctor::run(ctx, a),
        Command::Config(a) => config::run(ctx, a),
        Command::Version(a) => version::run(a),
        Command::Completions(a) => docs::completions(a),
        Command::Man => docs::man(),
    }
}

/// The settings in force and where they came from.
pub struct App {
    pub settings: Settings,
    pub layers: Layers,
}

impl App {
    /// Opens the turn log, creating it when missing (for the commands that
    /// write it).
    pub fn store(&self) -> Result<Store, Failure> {
        let db = &self.settings.db;
        Store::open(db).map_err(|e| {
            Failure::from(e).what(format!("cannot open the turn log {}", db.display()))
        })
    }

    /// The turn log for reading: an empty one (in memory) when there is no
    /// file yet, so that reading never creates a database.
    pub fn existing_store(&self) -> Result<Store, Failure> {
        if paliadin_core::fsutil::exists(&self.settings.db) {
            self.store()
        } else {
            Ok(Store::open_in_memory()?)
        }
    }

    /// A client stopped by Ctrl-C/SIGTERM; with the log when `logged` names
    /// what it records. A log that cannot be opened never stops the call:
    /// a warning says what will not be recorded, and the call goes on.
    /// With the log, rows left `running` by a client that is gone are
    /// completed first ([`Client::complete_stale`]), one line each on stderr.
    pub fn client(&self, logged: Option<&str>) -> Result<Client, Failure> {
        let mut client = self.client_only(logged)?;
        for (id, r) in client.complete_stale(None) {
            eprintln!("paliadin-cli: {}", stale_line(id, &r));
        }
        Ok(client)
    }

    /// [`App::client`] without completing stale rows (`poll --stale` does
    /// that itself).
    pub fn client_only(&self, logged: Option<&str>) -> Result<Client, Failure> {
        let transport = self.transport()?;
        let store = match logged {
            None => None,
            Some(what) => match self.store() {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!(
                        "paliadin-cli: warning: {what} will not be recorded: {}",
                        e.line()
                    );
                    None
                }
            },
        };
        let cancel = crate::signals::cancel_pipe()
            .map_err(|e| Failure::from(e).what("cannot install signal handlers"))?;
        Ok(Client {
            transport,
            store,
            timeout: self.settings.timeout(),
            cancel: Some(cancel),
        })
    }

    /// How calls reach the shim; a missing host or a named key or
    /// known_hosts file that is not there is a configuration failure,
    /// named before ssh would say only "Permission denied".
    pub fn transport(&self) -> Result<paliadin_cli::transport::Transport, Failure> {
        let t = self.settings.transport()?;
        if matches!(t, paliadin_cli::transport::Transport::Ssh(_)) {
            for (key, file) in [
                ("key", &self.settings.key),
                ("known_hosts", &self.settings.known_hosts),
            ] {
                if let Some(f) = file.as_ref().filter(|f| !f.exists()) {
                    return Err(Failure::config(format!(
                        "the {key} file {} does not exist ({})",
                        f.display(),
                        self.layers.source(key)
                    ))
                    .hint("check the path, or run install/server.sh"));
                }
            }
        }
        Ok(t)
    }

    /// The session a [`Target`] names; `<prefix>-<fallback>` when it names none.
    pub fn session(&self, t: &Target, fallback: &str) -> Result<SessionName, Failure> {
        let prefix = &self.settings.session_prefix;
        let name = match (&t.user, &t.session) {
            (Some(u), _) => {
                return SessionName::for_user(prefix, u)
                    .map_err(|e| Failure::usage(format!("invalid session prefix {prefix:?}: {e}")))
            }
            (None, Some(s)) => s.clone(),
            (None, None) => format!("{prefix}-{fallback}"),
        };
        session_name(&name)
    }
}

/// One line on a stale row's completion ([`Client::complete_stale`]).
pub fn stale_line(id: uuid::Uuid, r: &Result<Turn, Failure>) -> String {
    let what = format!("turn {id}, left running by a client that is gone");
    match r {
        Ok(_) => format!("{what}: completed with the laptop's reply (paliadin-cli log show {id})"),
        Err(f) => format!("{what}: {}", f.reason()),
    }
}

/// A turn id as given: the whole id, or a unique prefix of one in the log.
pub fn turn_id_of(
    store: Option<&paliadin_cli::store::Store>,
    db: &std::path::Path,
    turn_id: &str,
) -> Result<uuid::Uuid, Failure> {
    match (uuid::Uuid::parse_str(turn_id), store) {
        (Ok(id), _) => Ok(id),
        (Err(_), Some(store)) => log::resolve(store, turn_id, db),
        (Err(_), None) => Err(Failure::usage(format!("invalid turn id {turn_id:?}"))),
    }
}

/// The turn a command names (its id or a unique prefix of it, looked up in
/// the log) and its session: `--session`'s, else the turn's row's. A turn
/// the log does not hold needs its full id and `--session`.
pub fn turn_and_session(
    store: Option<&paliadin_cli::store::Store>,
    db: &std::path::Path,
    turn_id: &str,
    session: Option<&str>,
) -> Result<(uuid::Uuid, SessionName), Failure> {
    let id = turn_id_of(store, db, turn_id)?;
    let logged = match store {
        Some(store) => store.turn(id)?.map(|t| t.row.turn.session),
        None => None,
    };
    let session = match (session, logged) {
        (Some(s), _) => session_name(s)?,
        (None, Some(s)) => session_name(&s)?,
        (None, None) => {
            return Err(Failure::usage(format!(
                "turn {id} is not in the log: give its --session"
            )))
        }
    };
    Ok((id, session))
}

/// A session name from the command line; a bad one is a usage error.
pub fn session_name(name: &str) -> Result<SessionName, Failure> {
    SessionName::new(name)
        .map_err(|e| Failure::usage(format!("invalid session name {name:?}: {e}")))
}

/// Writes to stdout; a closed pipe is a failure that `main` keeps quiet.
pub fn out(text: &str) -> Result<(), Failure> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|_| o.flush())
        .map_err(|e| Failure::from(e).what("cannot write to stdout"))
}

/// Writes one JSON document on one line: every JSON output goes through
/// here, escaped by `paliadin_core::text::json_safe` so that `jq -r` of it
/// on a terminal is safe too.
pub fn out_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(v)
        .map_err(|e| Failure::new(paliadin_cli::failure::Code::Other, e.to_string()))?;
    out(&format!("{}\n", paliadin_core::text::json_safe(text)))
}

/// The warning for a turn the log could not keep.
pub fn warn_log(t: &Turn) {
    if let Some(e) = &t.log_error {
        eprintln!(
            "paliadin-cli: warning: the turn log could not record turn {}: {e}",
            t.row.turn.turn_id
        );
    }
}

/// Whether stderr is a terminal (progress and colour only then).
pub fn stderr_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stderr())
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stdout())
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether colour is allowed on stderr: a terminal there and no NO_COLOR.
pub fn stderr_color() -> bool {
    !no_color() && stderr_is_tty()
}

/// Whether colour is allowed: a terminal on stdout and no NO_COLOR.
pub fn color() -> bool {
    !no_color() && stdout_is_tty()
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
