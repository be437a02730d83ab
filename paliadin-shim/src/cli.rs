//! Every clap type of the shim. The request itself is not a clap
//! subcommand: it is protocol words, parsed by `paliadin_core::request`.

use clap::Parser;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Requests (PROTOCOL section 1), from SSH_ORIGINAL_COMMAND when set, else from REQUEST:
  health <session>                           start the session if missing; print ok
  run-turn <session> <turn-id> <b64|->       type one turn, print the reply
  run-turn-events <session> <turn-id> <b64|->   the same, its steps as JSON lines, the reply last
  reset <session>                            end the session and its agent
  poll <session> <turn-id>                   the reply of a turn again, or 124 while it runs
  status <session>                           one JSON object
  sessions                                   one JSON object per session
  version                                    the version
Local only:
  attach <session>                           attach this terminal to the session's pane
  hook <Event>                               the handler the agent's hook settings run
  completions <bash|zsh|fish|elvish|powershell>   a completion script for this shell
  man                                        this manual page, in roff

Exit status: 0 done, 1 other failure, 2 invalid request (nothing typed), 69 agent
unavailable, 75 blocked on a person, 76 the agent reported a failure (or left a reply
that does not count), 124 no reply within the wait (poll collects it later).";

/// The laptop side of paliadin: one tmux session per user with the agent in it.
#[derive(Debug, Parser)]
#[command(name = "paliadin-shim", version, after_help = AFTER_HELP)]
pub struct Options {
    /// Config file (TOML). Default: $PALIADIN_SHIM_CONFIG, else $XDG_CONFIG_HOME/paliadin/shim.toml if it exists.
    #[arg(long, env = "PALIADIN_SHIM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The agent's command line, split into words as a shell would (no shell runs). Default: claude.
    #[arg(long, value_name = "COMMAND")]
    pub agent: Option<String>,
    /// Start the agent with the shim's hook settings (--settings). Default: true.
    #[arg(long, value_name = "BOOL")]
    pub agent_hooks: Option<bool>,
    /// An environment variable for the agent, NAME=VALUE (repeatable; adds to `agent_env` in the config file).
    #[arg(long, value_name = "NAME=VALUE")]
    pub agent_env: Vec<String>,
    /// The agent's working directory. Default: $HOME.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The shim's own tmux server (tmux -L). Default: paliadin.
    #[arg(long, value_name = "NAME")]
    pub tmux_socket: Option<String>,
    /// Sessions, replies and hook records. Default: $XDG_STATE_HOME/paliadin.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Seconds a turn waits for its reply before exit 124. Default: 60.
    #[arg(long, value_name = "SECS")]
    pub wait_secs: Option<u64>,
    /// Seconds a starting agent may take to become ready. Default: 30.
    #[arg(long, value_name = "SECS")]
    pub ready_timeout_secs: Option<u64>,
    /// Largest message accepted, in bytes (lowers the 64 KiB argument and 1 MiB stdin limits).
    #[arg(long, value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// For an agent without hooks: text on its pane that means it is ready.
    #[arg(long, value_name = "TEXT")]
    pub ready_pattern: Option<String>,
    /// Milliseconds to wait for the agent to confirm a submission before pressing Enter again. Default: 2000.
    #[arg(long, value_name = "MS")]
    pub submit_retry_ms: Option<u64>,
    /// The request (ignored when SSH_ORIGINAL_COMMAND is set).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "REQUEST"
    )]
    pub request: Vec<String>,
}
