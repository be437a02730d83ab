//! The shim's configuration: defaults, then the TOML file, then flags, later
//! winning. Read in exactly one place ([`Config::load`]); never reads the
//! environment for anything but HOME, the XDG directories and
//! `PALIADIN_SHIM_CONFIG`.

use anyhow::{bail, Context as _};
use paliadin_core::dirs::{config_file, expand_home, home, xdg};
use paliadin_core::request::Limits;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Options;

/// The keys of `shim.toml`; each is also a flag in kebab case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub agent: Option<Vec<String>>,
    pub agent_hooks: Option<bool>,
    pub agent_env: Option<std::collections::BTreeMap<String, String>>,
    pub workdir: Option<PathBuf>,
    pub tmux_socket: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub wait_secs: Option<u64>,
    pub ready_timeout_secs: Option<u64>,
    pub max_message_bytes: Option<usize>,
    pub ready_pattern: Option<String>,
    pub submit_retry_ms: Option<u64>,
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct Config {
    /// The agent's argv (without the `--settings` the shim adds).
    pub agent: Vec<String>,
    /// Whether to start the agent with the shim's hook settings.
    pub agent_hooks: bool,
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
}

/// Where the config file is read from when `--config` is not given.
pub fn default_config_path() -> PathBuf {
    config_file("shim.toml")
}

impl Config {
    /// Defaults, then the file (`--config`, else `PALIADIN_SHIM_CONFIG`,
    /// else the XDG default when it exists), then flags.
    pub fn load(opts: &Options) -> anyhow::Result<Config> {
        let path = match &opts.config {
            Some(p) => Some(p.clone()),
            None => Some(default_config_path()).filter(|p| p.exists()),
        };
        let file: FileConfig = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid config {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let agent = match &opts.agent {
            Some(line) => shlex::split(line).context("--agent: unbalanced quotes")?,
            None => file.agent.unwrap_or_else(|| vec!["claude".into()]),
        };
        if agent.is_empty() || agent[0].is_empty() {
            bail!("the agent command is empty");
        }
        let max = opts.max_message_bytes.or(file.max_message_bytes);
        let mut agent_env = file.agent_env.unwrap_or_default();
        for kv in &opts.agent_env {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--agent-env {kv:?}: want NAME=VALUE"))?;
            agent_env.insert(k.to_owned(), v.to_owned());
        }
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
        Ok(Config {
            agent,
            agent_hooks: opts.agent_hooks.or(file.agent_hooks).unwrap_or(true),
            agent_env: agent_env.into_iter().collect(),
            workdir: expand_home(&opts.workdir.clone().or(file.workdir).unwrap_or_else(home)),
            tmux_socket: opts
                .tmux_socket
                .clone()
                .or(file.tmux_socket)
                .unwrap_or_else(|| "paliadin".into()),
            state_dir: expand_home(
                &opts
                    .state_dir
                    .clone()
                    .or(file.state_dir)
                    .unwrap_or_else(|| xdg("XDG_STATE_HOME", ".local/state").join("paliadin")),
            ),
            wait: Duration::from_secs(opts.wait_secs.or(file.wait_secs).unwrap_or(60)),
            ready_timeout: Duration::from_secs(
                opts.ready_timeout_secs
                    .or(file.ready_timeout_secs)
                    .unwrap_or(30),
            ),
            limits: Limits::capped(max),
            ready_pattern: opts
                .ready_pattern
                .clone()
                .or(file.ready_pattern)
                .filter(|p| !p.is_empty()),
            submit_retry: Duration::from_millis(
                opts.submit_retry_ms
                    .or(file.submit_retry_ms)
                    .unwrap_or(2000),
            ),
        })
    }
}
