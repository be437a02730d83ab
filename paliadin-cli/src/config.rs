//! The client's settings, each defined once in the [`settings!`] list
//! below: its type, help, default, flag and environment variables, and its
//! key in `cli.toml` (the field's name). From that one list come the
//! [`Layer`] (every setting an option), the flags (added to clap's command
//! by [`add_flags`]), the help text, `config show`'s table and the resolved
//! [`Settings`]. Layers are read from the file, the environment and the
//! flags, and merged by one `or`: flags, then environment, then file, then
//! defaults. Owns the default paths (database, connection sockets).
//! Never opens the database or runs ssh.
//!
//! A new setting is one entry in the list (and a line in the README's
//! table); nothing else restates it.

use paliadin_core::dirs::{config_file, expand_home, xdg};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::Failure;
use crate::ssh::{SshConfig, MAX_CONTROL_DIR_LEN};
use crate::transport::Transport;

/// The Go service's session prefix.
pub const DEFAULT_SESSION_PREFIX: &str = "paliad-paliadin";
/// The shim waits 60 s; the client gives ssh some more.
pub const DEFAULT_TIMEOUT_SECS: u64 = 75;
/// The help heading of the settings that say how to reach the laptop.
pub const CONNECTION: &str = "Connection";

/// A setting's type: read from text (a flag, a variable, `config set`),
/// shown as text (`config show`), written into `cli.toml`.
pub trait Value: Sized + Clone {
    /// The value `text` stands for, or why it is not one.
    fn parse(text: &str) -> Result<Self, String>;
    /// The value as `config show` and `config get` print it.
    fn show(&self) -> String;
    /// The value as `config set` writes it into `cli.toml`.
    fn toml(&self) -> toml_edit::Value;
    /// The value as used (paths: `~/` made `$HOME/`).
    fn finish(self) -> Self {
        self
    }
}

impl Value for String {
    fn parse(text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }
    fn show(&self) -> String {
        self.clone()
    }
    fn toml(&self) -> toml_edit::Value {
        self.as_str().into()
    }
}

impl Value for PathBuf {
    fn parse(text: &str) -> Result<PathBuf, String> {
        if text.is_empty() {
            return Err("an empty path".into());
        }
        Ok(PathBuf::from(text))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
    fn toml(&self) -> toml_edit::Value {
        self.display().to_string().into()
    }
    fn finish(self) -> PathBuf {
        expand_home(&self)
    }
}

impl Value for u16 {
    fn parse(text: &str) -> Result<u16, String> {
        match text.parse() {
            Ok(0) | Err(_) => Err(format!("{text:?} is not a port number (1 to 65535)")),
            Ok(p) => Ok(p),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
    fn toml(&self) -> toml_edit::Value {
        i64::from(*self).into()
    }
}

impl Value for bool {
    fn parse(text: &str) -> Result<bool, String> {
        match text {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("{text:?} is not true or false (1 or 0)")),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
    fn toml(&self) -> toml_edit::Value {
        (*self).into()
    }
}

/// Words, given as one text split on white space.
impl Value for Vec<String> {
    fn parse(text: &str) -> Result<Vec<String>, String> {
        Ok(text.split_whitespace().map(str::to_owned).collect())
    }
    fn show(&self) -> String {
        self.join(" ")
    }
    fn toml(&self) -> toml_edit::Value {
        self.iter()
            .map(String::as_str)
            .collect::<toml_edit::Array>()
            .into()
    }
}

/// A number of seconds, at least one: a limit of 0 would fail every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Seconds(pub u64);

impl TryFrom<i64> for Seconds {
    type Error = String;
    fn try_from(n: i64) -> Result<Seconds, String> {
        match u64::try_from(n) {
            Ok(n) if n >= 1 => Ok(Seconds(n)),
            _ => Err(format!("{n} is not a number of seconds (at least 1)")),
        }
    }
}

impl Value for Seconds {
    fn parse(text: &str) -> Result<Seconds, String> {
        text.parse::<i64>()
            .map_err(|_| format!("{text:?} is not a number of seconds (at least 1)"))
            .and_then(Seconds::try_from)
    }
    fn show(&self) -> String {
        self.0.to_string()
    }
    fn toml(&self) -> toml_edit::Value {
        i64::try_from(self.0).unwrap_or(i64::MAX).into()
    }
}

/// How turns travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Kind {
    /// Over ssh to the laptop.
    Ssh,
    /// The shim run on this machine.
    Local,
}

impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(s: String) -> Result<Kind, String> {
        Kind::parse(&s)
    }
}

impl Value for Kind {
    fn parse(text: &str) -> Result<Kind, String> {
        match text {
            "ssh" => Ok(Kind::Ssh),
            "local" => Ok(Kind::Local),
            _ => Err(format!("unknown transport {text:?}: use ssh or local")),
        }
    }
    fn show(&self) -> String {
        match self {
            Kind::Ssh => "ssh".into(),
            Kind::Local => "local".into(),
        }
    }
    fn toml(&self) -> toml_edit::Value {
        self.show().into()
    }
}

/// How a setting is given on the command line.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// `--<long>`.
    pub long: &'static str,
    /// The value's name in the help (`None`: a switch).
    pub value_name: Option<&'static str>,
    /// For a switch: the value it sets.
    pub sets: &'static str,
    /// For a switch: its own help (the setting's says what the value means).
    pub switch_help: &'static str,
    /// The subcommands that take it; empty: every command (global).
    pub on: &'static [&'static str],
    /// The help heading (`None`: the common options).
    pub heading: Option<&'static str>,
}

impl Flag {
    /// `--<long> <VALUE>` on every command.
    pub const fn value(long: &'static str, value_name: &'static str) -> Flag {
        Flag {
            long,
            value_name: Some(value_name),
            sets: "",
            switch_help: "",
            on: &[],
            heading: None,
        }
    }

    /// `--<long>` alone, which sets the value `sets`; `help` says so.
    pub const fn switch(long: &'static str, sets: &'static str, help: &'static str) -> Flag {
        Flag {
            long,
            value_name: None,
            sets,
            switch_help: help,
            on: &[],
            heading: None,
        }
    }

    /// Only on these subcommands.
    pub const fn on(mut self, on: &'static [&'static str]) -> Flag {
        self.on = on;
        self
    }

    /// Under the heading "Connection".
    pub const fn connection(mut self) -> Flag {
        self.heading = Some(CONNECTION);
        self
    }
}

/// One setting, as [`settings!`] defines it.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key in `cli.toml`, and the name `config get` takes.
    pub name: &'static str,
    /// Its help (the doc comment).
    pub help: &'static str,
    /// Its flag, if it has one.
    pub flag: Option<Flag>,
    /// Its environment variables, the first set one wins.
    pub env: &'static [&'static str],
}

impl Key {
    /// The help, one line.
    pub fn help(&self) -> String {
        paliadin_core::text::one_line(self.help, None)
    }
}

/// Every setting once. The doc comment is its help; `= <expr>` its
/// default (without one it may stay unset); then its flag and variables.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty $(= $default:expr)?, flag $flag:expr, env [$($env:literal),*];
    )*) => {
        /// One layer of settings (the file, the environment or the flags):
        /// each `None` where this layer says nothing. Its fields are the keys
        /// of `cli.toml`.
        #[derive(Debug, Default, Clone, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Layer {
            $( $(#[doc = $doc])* pub $name: Option<$ty>, )*
        }

        /// The settings in force: every layer merged, defaults applied.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: settings!(@ty $ty $(, $default)?), )*
        }

        /// Every setting, in the order of the list.
        pub const KEYS: &[Key] = &[$(Key {
            name: stringify!($name),
            help: concat!($($doc),*),
            flag: $flag,
            env: &[$($env),*],
        },)*];

        impl Layer {
            /// This layer, and where it says nothing, `other`.
            pub fn or(self, other: Layer) -> Layer {
                Layer { $($name: self.$name.or(other.$name),)* }
            }

            /// The setting `key` as text, if this layer sets it.
            pub fn get(&self, key: &str) -> Option<String> {
                match key {
                    $(stringify!($name) => self.$name.as_ref().map(Value::show),)*
                    _ => None,
                }
            }

            /// Sets `key` from text; an unknown key or a bad value is refused.
            pub fn set(&mut self, key: &str, text: &str) -> Result<(), String> {
                match key {
                    $(stringify!($name) => self.$name = Some(Value::parse(text)?),)*
                    _ => return Err(unknown_key(key)),
                }
                Ok(())
            }

            /// Refuses a value that its flag or variable would refuse (a
            /// file's `port = 0` or `key = ""` passes serde's own checks):
            /// each is read back from its text as a flag's would be.
            pub fn check(&self) -> Result<(), String> {
                $(if let Some(v) = &self.$name {
                    <$ty as Value>::parse(&Value::show(v))
                        .map_err(|e| format!("{}: {e}", stringify!($name)))?;
                })*
                Ok(())
            }

            /// The setting `key` as `cli.toml` holds it, if this layer sets it.
            pub fn toml(&self, key: &str) -> Option<toml_edit::Value> {
                match key {
                    $(stringify!($name) => self.$name.as_ref().map(Value::toml),)*
                    _ => None,
                }
            }

            /// The settings this layer makes with the defaults under it.
            pub fn resolve(self) -> Settings {
                Settings { $($name: settings!(@get self.$name $(, $default)?),)* }
            }
        }

        impl Settings {
            /// The setting `key` in force, as text; `None` when unset.
            pub fn get(&self, key: &str) -> Option<String> {
                match key {
                    $(stringify!($name) => settings!(@show self.$name $(, $default)?),)*
                    _ => None,
                }
            }
        }
    };
    (@ty $ty:ty) => { Option<$ty> };
    (@ty $ty:ty, $default:expr) => { $ty };
    (@get $v:expr) => { $v.map(Value::finish) };
    (@get $v:expr, $default:expr) => { Value::finish($v.unwrap_or_else(|| $default)) };
    (@show $v:expr) => { $v.as_ref().map(Value::show) };
    (@show $v:expr, $default:expr) => { Some(Value::show(&$v)) };
}

settings! {
    /// The laptop's host name or address.
    host: String,
        flag Some(Flag::value("host", "HOST").connection()),
        env ["PALIADIN_HOST", "PALIADIN_REMOTE_HOST"];
    /// The laptop's sshd port.
    port: u16 = crate::ssh::DEFAULT_PORT,
        flag Some(Flag::value("port", "PORT").connection()),
        env ["PALIADIN_PORT"];
    /// The user to log in as on the laptop (unset: ssh's default, your own name).
    ssh_user: String,
        flag Some(Flag::value("ssh-user", "USER").connection()),
        env ["PALIADIN_SSH_USER"];
    /// The private key whose public half the laptop's authorized_keys forces
    /// into the shim (unset: ssh's default keys).
    key: PathBuf,
        flag Some(Flag::value("key", "FILE").connection()),
        env ["PALIADIN_KEY"];
    /// The known_hosts file that pins the laptop's host key (unset: ssh's own).
    known_hosts: PathBuf,
        flag Some(Flag::value("known-hosts", "FILE").connection()),
        env ["PALIADIN_KNOWN_HOSTS"];
    /// Prefix of per-user sessions: <prefix>-<first 8 hex of the user's UUID>.
    session_prefix: String = DEFAULT_SESSION_PREFIX.into(),
        flag Some(Flag::value("session-prefix", "PREFIX")),
        env ["PALIADIN_SESSION_PREFIX"];
    /// The turn log.
    db: PathBuf = default_db_path(),
        flag Some(Flag::value("db", "FILE")),
        env ["PALIADIN_DB"];
    /// How to reach the shim: ssh, or local (run the shim on this machine).
    transport: Kind = Kind::Ssh,
        flag Some(Flag::value("transport", "ssh|local").connection()),
        env ["PALIADIN_TRANSPORT"];
    /// The shim binary for transport local (default: paliadin-shim on PATH).
    shim: PathBuf = PathBuf::from("paliadin-shim"),
        flag Some(Flag::value("shim", "PATH").connection()),
        env ["PALIADIN_SHIM"];
    /// Arguments put before the request for transport local (such as
    /// `--config FILE`); the file's key only.
    shim_args: Vec<String> = Vec::new(),
        flag None,
        env [];
    /// Reuse one ssh connection for every call.
    mux: bool = true,
        flag Some(Flag::switch("no-mux", "false", "Open a new ssh connection per call instead of reusing one (mux = false).").connection()),
        env ["PALIADIN_MUX"];
    /// Seconds before the client gives up on a turn's call (at least 1).
    timeout_secs: Seconds = Seconds(DEFAULT_TIMEOUT_SECS),
        flag Some(Flag::value("timeout", "SECS").on(&["turn", "chat"])),
        env ["PALIADIN_TIMEOUT"];
}

fn unknown_key(key: &str) -> String {
    let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    format!(
        "unknown setting {key:?}: the settings are {}",
        names.join(", ")
    )
}

/// The key named `name`, or a usage failure listing them.
pub fn key(name: &str) -> Result<&'static Key, Failure> {
    KEYS.iter()
        .find(|k| k.name == name)
        .ok_or_else(|| Failure::usage(unknown_key(name)))
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

/// The help's closing words on settings, from [`KEYS`].
pub fn help_text() -> String {
    let vars: Vec<&str> = KEYS.iter().flat_map(|k| k.env.iter().copied()).collect();
    format!(
        "Settings: defaults, then {} ($PALIADIN_CONFIG, --config), then {}, then flags; later wins. \
         `paliadin-cli config show` lists each with where it came from.",
        default_config_path().display(),
        vars.join(", ")
    )
}

/// Adds every setting's flag to clap's command: global ones to `cmd`, the
/// others to the subcommands they name. Help, value name, variables and
/// default come from the setting; a bad value is refused by clap (exit 2)
/// with the setting's own reason.
pub fn add_flags(mut cmd: clap::Command) -> clap::Command {
    let defaults = Layer::default().resolve();
    for k in KEYS {
        let Some(f) = k.flag else { continue };
        let mut help = match f.value_name {
            Some(_) => k.help(),
            None => f.switch_help.to_owned(),
        };
        if !k.env.is_empty() {
            help.push_str(&format!(" [env: {}]", k.env.join(", ")));
        }
        // A switch's default is the opposite of what it sets: not worth saying.
        let default = defaults.get(k.name).filter(|d| !d.is_empty());
        if let (Some(d), Some(_)) = (default, f.value_name) {
            help.push_str(&format!(" [default: {d}]"));
        }
        let mut arg = clap::Arg::new(k.name)
            .long(f.long)
            .help(help)
            .help_heading(f.heading);
        arg = match f.value_name {
            Some(v) => {
                let name = k.name;
                arg.value_name(v)
                    .action(clap::ArgAction::Set)
                    .value_parser(move |s: &str| {
                        Layer::default().set(name, s).map(|()| s.to_owned())
                    })
            }
            None => arg.action(clap::ArgAction::SetTrue),
        };
        if f.on.is_empty() {
            cmd = cmd.arg(arg.global(true));
        } else {
            for sub in f.on {
                cmd = cmd.mut_subcommand(*sub, |s| s.arg(arg.clone()));
            }
        }
    }
    cmd
}

/// Where a setting in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A flag on the command line (`--<long>`).
    Flag(&'static str),
    /// This environment variable.
    Env(&'static str),
    /// The config file.
    File(PathBuf),
    /// Its default.
    Default,
    /// Nothing sets it, and it has no default.
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(long) => write!(f, "flag --{long}"),
            Source::Env(v) => write!(f, "env {v}"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Default => f.write_str("default"),
            Source::Unset => f.write_str("unset"),
        }
    }
}

/// The layers read, kept apart so that each setting can say where it came from.
#[derive(Debug, Clone)]
pub struct Layers {
    pub flags: Layer,
    pub env: Layer,
    /// For each setting the environment sets, the variable that did.
    pub env_vars: EnvVars,
    pub file: Layer,
    /// The config file's path, whether it exists or not.
    pub file_path: PathBuf,
}

/// The config file: `--config`, else `$PALIADIN_CONFIG`, else the default;
/// and whether it was named (a named file must exist).
pub fn config_path(flag: Option<&Path>) -> (PathBuf, bool) {
    match flag
        .map(Path::to_path_buf)
        .or_else(|| env("PALIADIN_CONFIG").map(PathBuf::from))
    {
        Some(p) => (expand_home(&p), true),
        None => (default_config_path(), false),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Which variable set each setting the environment sets: `(key, variable)`.
pub type EnvVars = Vec<(&'static str, &'static str)>;

fn env_layer() -> Result<(Layer, EnvVars), Failure> {
    let mut layer = Layer::default();
    let mut vars = Vec::new();
    for k in KEYS {
        let Some((var, v)) = k.env.iter().find_map(|var| env(var).map(|v| (*var, v))) else {
            continue;
        };
        layer
            .set(k.name, &v)
            .map_err(|e| Failure::config(format!("{var}={v:?} is not valid: {e}")))?;
        vars.push((k.name, var));
    }
    Ok((layer, vars))
}

/// The config file's settings; none when it is missing and not named.
pub fn file_layer(path: &Path, named: bool) -> Result<Layer, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_file(&text).map_err(|e| {
            Failure::config(format!("invalid config {}: {e}", path.display()))
                .hint("fix or remove that line of the file")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(Layer::default()),
        Err(e) => Err(Failure::config(format!(
            "cannot read config {}: {e}",
            path.display()
        ))),
    }
}

/// A config file's text as a layer, every value checked as its flag's.
fn parse_file(text: &str) -> Result<Layer, String> {
    let layer: Layer = toml::from_str(text).map_err(|e| e.to_string())?;
    layer.check()?;
    Ok(layer)
}

impl Layers {
    /// Reads the environment and the file under the flags' layer.
    pub fn read(flags: Layer, config_flag: Option<&Path>) -> Result<Layers, Failure> {
        let (file_path, named) = config_path(config_flag);
        let (env, env_vars) = env_layer()?;
        let file = file_layer(&file_path, named)?;
        Ok(Layers {
            flags,
            env,
            env_vars,
            file,
            file_path,
        })
    }

    /// The settings in force: one `or` of the layers, defaults under them.
    pub fn settings(&self) -> Settings {
        self.flags
            .clone()
            .or(self.env.clone())
            .or(self.file.clone())
            .resolve()
    }

    /// Where the setting `key` in force comes from.
    pub fn source(&self, key: &str) -> Source {
        if self.flags.get(key).is_some() {
            let long = KEYS.iter().find(|k| k.name == key).and_then(|k| k.flag);
            Source::Flag(long.map_or("", |f| f.long))
        } else if let Some((_, var)) = self.env_vars.iter().find(|(k, _)| *k == key) {
            Source::Env(var)
        } else if self.file.get(key).is_some() {
            Source::File(self.file_path.clone())
        } else if Layer::default().resolve().get(key).is_some() {
            Source::Default
        } else {
            Source::Unset
        }
    }
}

/// The flags' layer from clap's matches (of the subcommand that runs, to
/// which global flags are propagated).
pub fn flag_layer(m: &clap::ArgMatches) -> Layer {
    let mut layer = Layer::default();
    for k in KEYS {
        let Some(f) = k.flag else { continue };
        let text = match f.value_name {
            Some(_) => m.try_get_one::<String>(k.name).ok().flatten().cloned(),
            None => matches!(m.try_get_one::<bool>(k.name), Ok(Some(true))).then(|| f.sets.into()),
        };
        if let Some(t) = text {
            // clap checked the value already.
            let _ = layer.set(k.name, &t);
        }
    }
    layer
}

impl Settings {
    /// The wall-clock limit of one call.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.0)
    }

    /// The transport these settings describe; a missing host is a
    /// configuration failure.
    pub fn transport(&self) -> Result<Transport, Failure> {
        Ok(match self.transport {
            Kind::Local => Transport::Local {
                shim: self.shim.clone(),
                args: self.shim_args.clone(),
            },
            Kind::Ssh => {
                let Some(host) = &self.host else {
                    return Err(Failure::config("no host configured").hint(
                        "set one with: paliadin-cli config set host <laptop> (or --host, PALIADIN_HOST), or run install/server.sh",
                    ));
                };
                let dir = default_control_dir();
                let mut c = SshConfig::new(host.clone(), dir.clone(), dir);
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

/// `config set`: writes `key = value` into the file at `path` (created
/// 0600 in a 0700 directory when missing), keeping every other line and
/// comment; atomically. `None` removes the key (`config unset`).
pub fn write_key(path: &Path, key: &Key, value: Option<&str>) -> Result<(), Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Failure::config(format!(
                "cannot read config {}: {e}",
                path.display()
            )))
        }
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Failure::config(format!("invalid config {}: {e}", path.display())))?;
    match value {
        Some(v) => {
            let mut layer = Layer::default();
            layer
                .set(key.name, v)
                .map_err(|e| Failure::usage(format!("{}: {e}", key.name)))?;
            let item = layer.toml(key.name).expect("the value just set");
            doc[key.name] = toml_edit::value(item);
        }
        None => remove_keeping_comments(&mut doc, key.name),
    }
    // What goes in must read back as a valid file.
    parse_file(&doc.to_string())
        .map_err(|e| Failure::config(format!("invalid config {}: {e}", path.display())))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        paliadin_core::fsutil::private_dir(dir)
            .map_err(|e| Failure::config(format!("cannot create {}: {e}", dir.display())))?;
    }
    paliadin_core::fsutil::write_atomic(path, doc.to_string().as_bytes(), 0o600)
        .map_err(|e| Failure::config(format!("cannot write {}: {e}", path.display())))
}

/// Removes `key` from `doc`; the comment lines above it (toml_edit keeps
/// them with the key) stay, above the key that followed it or at the end.
fn remove_keeping_comments(doc: &mut toml_edit::DocumentMut, key: &str) {
    let comments = doc
        .as_table()
        .key(key)
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|p| p.as_str())
        .filter(|p| p.contains('#'))
        .map(str::to_owned);
    let names: Vec<String> = doc.as_table().iter().map(|(k, _)| k.to_owned()).collect();
    let next = names.iter().skip_while(|k| *k != key).nth(1).cloned();
    doc.remove(key);
    let Some(comments) = comments else { return };
    match next.and_then(|n| doc.as_table_mut().key_mut(&n)) {
        Some(mut k) => {
            let own = k
                .leaf_decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .to_owned();
            k.leaf_decor_mut().set_prefix(comments + &own);
        }
        None => {
            let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
            doc.set_trailing(comments + &trailing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_merge_by_one_or_and_defaults_fill_the_rest() {
        let mut flags = Layer::default();
        flags.set("port", "2200").unwrap();
        let mut file = Layer::default();
        file.set("port", "2201").unwrap();
        file.set("host", "laptop").unwrap();
        let s = flags.or(file).resolve();
        assert_eq!((s.port, s.host.as_deref()), (2200, Some("laptop")));
        assert_eq!(s.session_prefix, DEFAULT_SESSION_PREFIX);
        assert_eq!(s.timeout_secs, Seconds(DEFAULT_TIMEOUT_SECS));
        assert!(s.mux);
        assert_eq!(s.get("ssh_user"), None);
        assert_eq!(s.get("port").as_deref(), Some("2200"));
    }

    #[test]
    fn every_value_is_checked_the_same_way_from_any_layer() {
        let mut l = Layer::default();
        assert!(l.set("timeout_secs", "0").is_err());
        assert!(l.set("port", "0").is_err());
        assert!(l.set("transport", "carrier-pigeon").is_err());
        assert!(l.set("mux", "maybe").is_err());
        assert!(l.set("no_such", "1").unwrap_err().contains("host, port"));
        assert!(toml::from_str::<Layer>("timeout_secs = 0").is_err());
        assert!(toml::from_str::<Layer>("transport = \"x\"").is_err());
        assert!(toml::from_str::<Layer>("nope = 1").is_err());
        // What serde lets through, the flag's own check does not.
        assert!(parse_file("port = 0").unwrap_err().contains("port"));
        assert!(parse_file("key = \"\"").unwrap_err().contains("empty path"));
        assert!(parse_file("port = 2222\nkey = \"~/k\"").is_ok());
        let l: Layer = toml::from_str("timeout_secs = 5\nshim_args = [\"a\", \"b\"]").unwrap();
        assert_eq!(l.timeout_secs, Some(Seconds(5)));
        assert_eq!(l.get("shim_args").as_deref(), Some("a b"));
    }

    #[test]
    fn every_key_has_help_and_a_unique_flag() {
        let mut longs = std::collections::HashSet::new();
        for k in KEYS {
            assert!(!k.help().is_empty(), "{}", k.name);
            if let Some(f) = k.flag {
                assert!(longs.insert(f.long), "{}", f.long);
            }
            for v in k.env {
                assert!(v.starts_with("PALIADIN_"), "{v}");
            }
        }
    }

    #[test]
    fn set_keeps_comments_and_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cli.toml");
        write_key(&path, key("host").unwrap(), Some("laptop")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "host = \"laptop\"\n");
        std::fs::write(&path, "# mine\nhost = \"a\" # the laptop\nport = 22\n").unwrap();
        write_key(&path, key("port").unwrap(), Some("2222")).unwrap();
        write_key(&path, key("mux").unwrap(), Some("0")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# mine\nhost = \"a\" # the laptop\n"),
            "{text}"
        );
        let l: Layer = toml::from_str(&text).unwrap();
        assert_eq!((l.port, l.mux), (Some(2222), Some(false)));
        write_key(&path, key("port").unwrap(), None).unwrap();
        write_key(&path, key("host").unwrap(), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        let l: Layer = toml::from_str(&text).unwrap();
        assert_eq!((l.port, l.host), (None, None));
        assert!(write_key(&path, key("port").unwrap(), Some("x")).is_err());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
