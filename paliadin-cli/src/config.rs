//! The client's configuration, read in exactly one place: defaults, then
//! `cli.toml` (XDG), then `PALIADIN_*` variables, then flags, later winning.
//! Owns the default paths (database, connection sockets). Never opens the
//! database or runs ssh.

use anyhow::{bail, Context as _};
use paliadin_core::dirs::{config_file, expand_home, xdg};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

use crate::ssh::{SshConfig, MAX_CONTROL_DIR_LEN};
use crate::transport::Transport;

/// The Go service's session prefix.
pub const DEFAULT_SESSION_PREFIX: &str = "paliad-paliadin";
/// The shim waits 60 s; the client gives ssh some more.
pub const DEFAULT_TIMEOUT_SECS: u64 = 75;

/// The keys of `cli.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub ssh_user: Option<String>,
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub session_prefix: Option<String>,
    pub db: Option<PathBuf>,
    pub transport: Option<String>,
    pub shim: Option<PathBuf>,
    pub shim_args: Option<Vec<String>>,
    pub mux: Option<bool>,
    pub timeout_secs: Option<u64>,
}

/// What the flags say (each `None` when not given).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub ssh_user: Option<String>,
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub session_prefix: Option<String>,
    pub db: Option<PathBuf>,
    pub transport: Option<String>,
    pub shim: Option<PathBuf>,
    pub no_mux: bool,
    pub timeout_secs: Option<u64>,
}

/// How turns travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ssh,
    Local,
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: Option<String>,
    pub port: u16,
    pub ssh_user: Option<String>,
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub session_prefix: String,
    pub db: PathBuf,
    pub kind: Kind,
    pub shim: PathBuf,
    pub shim_args: Vec<String>,
    pub mux: bool,
    pub timeout: Duration,
    pub control_dir: PathBuf,
}

/// `$XDG_CONFIG_HOME/paliadin/cli.toml`.
pub fn default_config_path() -> PathBuf {
    config_file("cli.toml")
}

/// `$XDG_DATA_HOME/paliadin/turns.db`.
pub fn default_db_path() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("paliadin/turns.db")
}

/// Where connection-sharing sockets live: short, private, per user.
pub fn default_control_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("paliadin-ssh")),
        Some(xdg("XDG_CACHE_HOME", ".cache").join("paliadin/ssh")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_absolute() && p.as_os_str().len() <= MAX_CONTROL_DIR_LEN)
        .unwrap_or_else(|| {
            PathBuf::from(format!(
                "/tmp/paliadin-ssh-{}",
                rustix::process::getuid().as_raw()
            ))
        })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_path(name: &str) -> Option<PathBuf> {
    env(name).map(PathBuf::from)
}

fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match env(name) {
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not valid")),
        None => Ok(None),
    }
}

fn env_bool(name: &str) -> anyhow::Result<Option<bool>> {
    Ok(match env(name).as_deref() {
        None => None,
        Some("1" | "true" | "yes" | "on") => Some(true),
        Some("0" | "false" | "no" | "off") => Some(false),
        Some(v) => bail!("{name}={v:?} is not valid: use 1 or 0"),
    })
}

impl Settings {
    /// Reads the file, the environment and the flags.
    pub fn load(o: &Overrides) -> anyhow::Result<Settings> {
        let path = o.config.clone().or_else(|| env_path("PALIADIN_CONFIG"));
        let explicit = path.is_some();
        let path = path.unwrap_or_else(default_config_path);
        let file: FileConfig = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("invalid config {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                FileConfig::default()
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read config {}", path.display()))
            }
        };
        let no_mux = if o.no_mux {
            Some(true)
        } else {
            env_bool("PALIADIN_NO_MUX")?
        };
        let kind = match o
            .transport
            .clone()
            .or_else(|| env("PALIADIN_TRANSPORT"))
            .or(file.transport)
            .as_deref()
        {
            None | Some("ssh") => Kind::Ssh,
            Some("local") => Kind::Local,
            Some(other) => bail!("unknown transport {other:?}: use ssh or local"),
        };
        let host = o
            .host
            .clone()
            .or_else(|| env("PALIADIN_HOST"))
            .or_else(|| env("PALIADIN_REMOTE_HOST"))
            .or(file.host);
        let port = match o.port {
            Some(p) => p,
            None => env_parse("PALIADIN_PORT")?
                .or(file.port)
                .unwrap_or(crate::ssh::DEFAULT_PORT),
        };
        let timeout_secs = match o.timeout_secs {
            Some(t) => t,
            None => env_parse("PALIADIN_TIMEOUT")?
                .or(file.timeout_secs)
                .unwrap_or(DEFAULT_TIMEOUT_SECS),
        };
        let session_prefix = o
            .session_prefix
            .clone()
            .or_else(|| env("PALIADIN_SESSION_PREFIX"))
            .or(file.session_prefix)
            .unwrap_or_else(|| DEFAULT_SESSION_PREFIX.into());
        Ok(Settings {
            host,
            port,
            ssh_user: o
                .ssh_user
                .clone()
                .or_else(|| env("PALIADIN_SSH_USER"))
                .or(file.ssh_user),
            key: o
                .key
                .clone()
                .or_else(|| env_path("PALIADIN_KEY"))
                .or(file.key)
                .map(|p| expand_home(&p)),
            known_hosts: o
                .known_hosts
                .clone()
                .or_else(|| env_path("PALIADIN_KNOWN_HOSTS"))
                .or(file.known_hosts)
                .map(|p| expand_home(&p)),
            session_prefix,
            db: expand_home(
                &o.db
                    .clone()
                    .or_else(|| env_path("PALIADIN_DB"))
                    .or(file.db)
                    .unwrap_or_else(default_db_path),
            ),
            kind,
            shim: expand_home(
                &o.shim
                    .clone()
                    .or_else(|| env_path("PALIADIN_SHIM"))
                    .or(file.shim)
                    .unwrap_or_else(|| "paliadin-shim".into()),
            ),
            shim_args: file.shim_args.unwrap_or_default(),
            mux: match no_mux {
                Some(n) => !n,
                None => file.mux.unwrap_or(true),
            },
            timeout: Duration::from_secs(timeout_secs.max(1)),
            control_dir: default_control_dir(),
        })
    }

    /// The transport these settings describe.
    pub fn transport(&self) -> anyhow::Result<Transport> {
        Ok(match self.kind {
            Kind::Local => Transport::Local {
                shim: self.shim.clone(),
                args: self.shim_args.clone(),
            },
            Kind::Ssh => {
                let Some(host) = &self.host else {
                    bail!(
                        "no host configured: set --host, PALIADIN_HOST or `host` in {}",
                        default_config_path().display()
                    );
                };
                let mut c = SshConfig::new(
                    host.clone(),
                    self.control_dir.clone(),
                    self.control_dir.clone(),
                );
                c.port = self.port;
                c.user = self.ssh_user.clone();
                c.key = self.key.clone();
                c.known_hosts = self.known_hosts.clone();
                c.mux = self.mux;
                Transport::Ssh(c)
            }
        })
    }
}
