//! The shim's configuration, defined once: [`Layer`] is every setting as an
//! option, and the flags (clap), the keys of `shim.toml` (serde, both ways),
//! their help and their defaults ([`Layer::defaults`]) all come from it. The
//! configuration in force is one `or` of layers, flags over the file over the
//! defaults, resolved into a [`Config`] in [`Config::load`]. Never reads the
//! environment for anything but HOME, the XDG directories and
//! `PALIADIN_SHIM_CONFIG`.

use anyhow::{bail, Context as _};
use paliadin_core::dirs::{config_file, expand_home, home, xdg};
use paliadin_core::request::Limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a layer's field lies over the same field of a lower layer.
trait Over {
    fn over(self, lower: Self) -> Self;
}

/// A setting: the upper layer's when it has one.
impl<T> Over for Option<T> {
    fn over(self, lower: Self) -> Self {
        self.or(lower)
    }
}

/// A list: the lower layer's, then the upper's (later entries win).
impl<T> Over for Vec<T> {
    fn over(self, mut lower: Self) -> Self {
        lower.extend(self);
        lower
    }
}

/// Defines [`Layer`] and its `or` from one list of fields, so no field can
/// be left out of the merge.
macro_rules! layer {
    ($(#[$meta:meta])* pub struct Layer { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct Layer { $($(#[$fmeta])* pub $field: $ty,)* }

        impl Layer {
            /// `self` over `lower`: each setting of `self` wins, lists add up.
            pub fn or(self, lower: Layer) -> Layer {
                Layer { $($field: Over::over(self.$field, lower.$field),)* }
            }
        }
    };
}

layer! {
    /// Every setting of the shim, each optional: one layer of configuration
    /// (the defaults, the file, the flags). Each field is a key of
    /// `shim.toml` and, in kebab case, a flag; its doc is the flag's help.
    #[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Layer {
        /// The agent's command line, split into words as a shell would (no shell runs); in the file, an array of words.
        #[arg(long, value_name = "COMMAND")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub agent: Option<Argv>,
        /// Start the agent with the shim's hook settings (--settings).
        #[arg(long, value_name = "BOOL")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub agent_hooks: Option<bool>,
        /// Run the agent's commands in Claude Code's sandbox (reads of HOME but the workdir, the shim's state and tmux denied); needed once Bash is allowed.
        #[arg(long, value_name = "BOOL")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub agent_sandbox: Option<bool>,
        /// An environment variable for the agent, NAME=VALUE (repeatable; adds to the file's `agent_env` table).
        #[arg(long, value_name = "NAME=VALUE")]
        #[serde(default, with = "env_table", skip_serializing_if = "Vec::is_empty")]
        pub agent_env: Vec<EnvVar>,
        /// The agent's working directory.
        #[arg(long, value_name = "DIR")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub workdir: Option<PathBuf>,
        /// The shim's own tmux server (tmux -L).
        #[arg(long, value_name = "NAME")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tmux_socket: Option<String>,
        /// Sessions, replies and hook records (yours, mode 0700).
        #[arg(long, value_name = "DIR")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub state_dir: Option<PathBuf>,
        /// Seconds a turn waits for its reply before exit 124.
        #[arg(long, value_name = "SECS")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub wait_secs: Option<u64>,
        /// Seconds a starting agent may take to become ready.
        #[arg(long, value_name = "SECS")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ready_timeout_secs: Option<u64>,
        /// Largest message accepted, in bytes (lowers the 64 KiB argument and 1 MiB stdin limits).
        #[arg(long, value_name = "BYTES")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_message_bytes: Option<usize>,
        /// For an agent without hooks: text on its pane that means it is ready.
        #[arg(long, value_name = "TEXT")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ready_pattern: Option<String>,
        /// Milliseconds to wait for the agent to confirm a submission before pressing Enter again.
        #[arg(long, value_name = "MS")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub submit_retry_ms: Option<u64>,
        /// Start the agent on a conversation id of the shim's (Claude Code's --session-id, later --resume), so an idle session can sleep and wake on it; needs agent_hooks.
        #[arg(long, value_name = "BOOL")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub agent_resume: Option<bool>,
        /// Seconds a session may sit idle before its agent is stopped (asleep: the next turn resumes its conversation); 0 = never. Needs agent_resume.
        #[arg(long, value_name = "SECS")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub idle_sleep_secs: Option<u64>,
        /// Ask the person on the other end before a tool call that needs a yes, waiting this many seconds for the answer (no answer = deny); 0 = never ask (the default: such a call is denied). Runs the agent with --permission-mode default; needs agent_hooks.
        #[arg(long, value_name = "SECS")]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub approve_secs: Option<u64>,
    }
}

/// An argv: words on the command line (split as a shell would, no shell
/// runs), an array of strings in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Argv(pub Vec<String>);

impl std::str::FromStr for Argv {
    type Err = String;
    fn from_str(line: &str) -> Result<Argv, String> {
        shlex::split(line)
            .map(Argv)
            .ok_or_else(|| "unbalanced quotes".into())
    }
}

/// One `NAME=VALUE` for the agent's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar(pub String, pub String);

impl std::str::FromStr for EnvVar {
    type Err = String;
    fn from_str(kv: &str) -> Result<EnvVar, String> {
        kv.split_once('=')
            .map(|(k, v)| EnvVar(k.to_owned(), v.to_owned()))
            .ok_or_else(|| format!("{kv:?}: want NAME=VALUE"))
    }
}

/// `agent_env` is a table in the file.
mod env_table {
    use super::EnvVar;
    use serde::{Deserialize as _, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(vars: &[EnvVar], s: S) -> Result<S::Ok, S::Error> {
        let table: BTreeMap<&str, &str> = vars.iter().map(|v| (&*v.0, &*v.1)).collect();
        s.collect_map(table)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EnvVar>, D::Error> {
        let table = BTreeMap::<String, String>::deserialize(d)?;
        Ok(table.into_iter().map(|(k, v)| EnvVar(k, v)).collect())
    }
}

impl Layer {
    /// The lowest layer: what holds when neither the file nor a flag says.
    pub fn defaults() -> Layer {
        Layer {
            agent: Some(Argv(vec!["claude".into()])),
            agent_hooks: Some(true),
            // Off unless set (setup's --allow-bash sets it).
            agent_sandbox: None,
            agent_env: Vec::new(),
            workdir: Some(home()),
            tmux_socket: Some("paliadin".into()),
            state_dir: Some(xdg("XDG_STATE_HOME", ".local/state").join("paliadin")),
            wait_secs: Some(60),
            ready_timeout_secs: Some(30),
            // The protocol's own limits (paliadin_core::request::Limits).
            max_message_bytes: None,
            ready_pattern: None,
            submit_retry_ms: Some(2000),
            agent_resume: Some(true),
            // An idle claude holds ~120-160 MB of its own (~200-250 MB
            // resident) and wakes in about 0.2 s more than a cold start:
            // half an hour keeps a conversation someone is still having
            // warm and frees the laptop of those who left.
            idle_sleep_secs: Some(1800),
            approve_secs: Some(0),
        }
    }

    /// The layer `path` holds (a `shim.toml`).
    pub fn read(path: &Path) -> anyhow::Result<Layer> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// The layer as a `shim.toml`: only the keys it sets.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a layer is always TOML")
    }
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct Config {
    /// The agent's argv (without the `--settings` the shim adds).
    pub agent: Vec<String>,
    /// Whether to start the agent with the shim's hook settings.
    pub agent_hooks: bool,
    /// Whether those settings put its commands in Claude Code's sandbox.
    pub agent_sandbox: bool,
    /// Environment variables set for the agent (never those the shim removes).
    pub agent_env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub tmux_socket: String,
    pub state_dir: PathBuf,
    /// How long a turn waits for its reply, start to end.
    pub wait: Duration,
    /// How long a starting agent may take to become ready.
    pub ready_timeout: Duration,
    pub limits: Limits,
    /// For an agent without hooks: text on the pane that means "ready".
    pub ready_pattern: Option<String>,
    /// How long to wait for `UserPromptSubmit` before pressing Enter again.
    pub submit_retry: Duration,
    /// Whether the agent is started on a conversation id of the shim's
    /// (`--session-id`, then `--resume`): with hooks only.
    pub agent_resume: bool,
    /// How long a session may idle before its agent is put to sleep; `None`
    /// for never (also without `agent_resume`).
    pub idle_sleep: Option<Duration>,
    /// How long a tool call that needs a yes waits for a person's answer
    /// (`approve`); `None`: nobody is asked (also without hooks).
    pub approve: Option<Duration>,
}

/// Where the config file is read from when `--config` is not given.
pub fn default_config_path() -> PathBuf {
    config_file("shim.toml")
}

impl Config {
    /// `flags` over the file (`config`, which is `--config` or
    /// `PALIADIN_SHIM_CONFIG`, else the XDG default when it exists) over the
    /// defaults.
    pub fn load(config: Option<&Path>, flags: &Layer) -> anyhow::Result<Config> {
        let path = match config {
            Some(p) => Some(p.to_owned()),
            None => Some(default_config_path()).filter(|p| p.exists()),
        };
        let file = match &path {
            Some(p) => Layer::read(p)?,
            None => Layer::default(),
        };
        Config::resolve(flags.clone().or(file).or(Layer::defaults()))
    }

    /// The merged layer, checked and made concrete.
    pub fn resolve(l: Layer) -> anyhow::Result<Config> {
        let agent = l.agent.map(|a| a.0).unwrap_or_default();
        if agent.first().is_none_or(String::is_empty) {
            bail!("the agent command is empty");
        }
        // Later entries (the flags') win.
        let agent_env: BTreeMap<String, String> =
            l.agent_env.into_iter().map(|v| (v.0, v.1)).collect();
        for k in agent_env.keys() {
            let plain = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                bail!("agent_env: {k:?} is not a variable name");
            }
            if crate::tmux::REMOVED_FROM_AGENT.contains(&k.as_str()) || k.starts_with("PALIADIN_") {
                bail!("agent_env: {k} is the shim's to set or remove");
            }
        }
        let path = |p: Option<PathBuf>| expand_home(&p.unwrap_or_default());
        let agent_hooks = l.agent_hooks.unwrap_or_default();
        let agent_resume = agent_hooks && l.agent_resume.unwrap_or_default();
        Ok(Config {
            agent,
            agent_hooks,
            agent_sandbox: l.agent_sandbox.unwrap_or_default(),
            agent_env: agent_env.into_iter().collect(),
            workdir: path(l.workdir),
            tmux_socket: l.tmux_socket.unwrap_or_default(),
            state_dir: path(l.state_dir),
            wait: Duration::from_secs(l.wait_secs.unwrap_or_default()),
            ready_timeout: Duration::from_secs(l.ready_timeout_secs.unwrap_or_default()),
            limits: Limits::capped(l.max_message_bytes),
            ready_pattern: l.ready_pattern.filter(|p| !p.is_empty()),
            submit_retry: Duration::from_millis(l.submit_retry_ms.unwrap_or_default()),
            idle_sleep: Some(Duration::from_secs(l.idle_sleep_secs.unwrap_or_default()))
                .filter(|d| !d.is_zero() && agent_resume),
            agent_resume,
            approve: Some(Duration::from_secs(l.approve_secs.unwrap_or_default()))
                .filter(|d| !d.is_zero() && agent_hooks),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_over_the_defaults_and_env_adds_up() {
        let file: Layer = toml::from_str(
            "wait_secs = 5\ntmux_socket = \"file\"\nagent = [\"a\", \"b c\"]\n[agent_env]\nX = \"1\"\nY = \"file\"\n",
        )
        .unwrap();
        let flags = Layer {
            wait_secs: Some(7),
            agent_env: vec!["Y=flag".parse().unwrap()],
            ..Layer::default()
        };
        let c = Config::resolve(flags.or(file).or(Layer::defaults())).unwrap();
        assert_eq!(c.wait, Duration::from_secs(7));
        assert_eq!(c.tmux_socket, "file");
        assert_eq!(c.agent, ["a", "b c"]);
        assert_eq!(
            c.agent_env,
            [("X".into(), "1".into()), ("Y".into(), "flag".into())]
        );
        assert_eq!(c.ready_timeout, Duration::from_secs(30), "the default");
        assert!(c.agent_hooks);
        assert!(c.agent_resume);
        assert_eq!(c.idle_sleep, Some(Duration::from_secs(1800)), "the default");
        let never = |l: Layer| Config::resolve(l.or(Layer::defaults())).unwrap().idle_sleep;
        assert_eq!(never(toml::from_str("idle_sleep_secs = 0").unwrap()), None);
        assert_eq!(never(toml::from_str("agent_resume = false").unwrap()), None);
        assert_eq!(
            never(toml::from_str("agent_hooks = false").unwrap()),
            None,
            "no resume without hooks"
        );
    }

    #[test]
    fn a_layer_round_trips_through_toml_with_only_its_keys() {
        let l = Layer {
            agent: Some("claude --permission-mode dontAsk".parse().unwrap()),
            agent_env: vec!["CLAUDE_CODE_MAX_RETRIES=3".parse().unwrap()],
            wait_secs: Some(60),
            ..Layer::default()
        };
        let text = l.to_toml();
        assert_eq!(
            text,
            "agent = [\"claude\", \"--permission-mode\", \"dontAsk\"]\nwait_secs = 60\n\n[agent_env]\nCLAUDE_CODE_MAX_RETRIES = \"3\"\n"
        );
        assert_eq!(toml::from_str::<Layer>(&text).unwrap(), l);
        assert_eq!(Layer::default().to_toml(), "");
        let full = Layer::defaults();
        assert_eq!(toml::from_str::<Layer>(&full.to_toml()).unwrap(), full);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(toml::from_str::<Layer>("no_such_key = 1").is_err());
        assert!("a 'b".parse::<Argv>().is_err());
        assert!("NOVALUE".parse::<EnvVar>().is_err());
        let bad = |l: Layer| {
            Config::resolve(l.or(Layer::defaults()))
                .unwrap_err()
                .to_string()
        };
        let env = |kv: &str| Layer {
            agent_env: vec![kv.parse().unwrap()],
            ..Layer::default()
        };
        assert!(bad(env("1X=a")).contains("not a variable name"));
        assert!(bad(env("PALIADIN_SESSION=a")).contains("the shim's"));
        assert!(bad(env("ANTHROPIC_API_KEY=a")).contains("the shim's"));
        let empty = Layer {
            agent: Some(Argv(vec![])),
            ..Layer::default()
        };
        assert!(bad(empty).contains("empty"));
    }
}
